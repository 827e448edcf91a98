package ageplugin

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"

	"filippo.io/age"
	"filippo.io/age/tag"

	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
)

// Identity is the age identity of a Key: it opens p256tag stanzas of its
// P-256 key and hsmenv stanzas its KEK claims, with the device. The device
// is reached only when a stanza is for the key (a p256tag stanza whose tag
// is the key's, or any hsmenv stanza, which only the KEK can tell apart).
type Identity struct {
	key  Key
	kek  *lazyKEK
	tagR *tag.Recipient // nil unless key.P256 is set
}

var _ age.Identity = (*Identity)(nil)

// NewIdentity returns the identity of k. ctx bounds every device call the
// identity makes, and goes to o.PIN when a PIN is needed; o also gives the
// default module and device.
func NewIdentity(ctx context.Context, k Key, o resolver.Options) (*Identity, error) {
	if err := CheckURI(k.URI); err != nil {
		return nil, err
	}
	id := &Identity{key: k, kek: &lazyKEK{ctx: ctx, uri: k.URI, opts: o}}
	if k.P256 != nil {
		var err error
		if id.tagR, err = tagRecipient(k.P256); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// Recipient returns the recipient an identity encrypts to when age is
// given the identity as a recipient (age -e -i): the tagged P-256
// recipient of a P-256 key, else the KEK's.
func (id *Identity) Recipient() age.Recipient {
	if id.tagR != nil {
		return id.tagR
	}
	return &uriRecipient{kek: id.kek}
}

// Unwrap returns the file key from the first stanza the key opens. It
// returns age.ErrIncorrectIdentity when no stanza is for the key, and an
// error naming the key when the first that is does not open (a wrong PIN, the
// device gone, an altered stanza, or a device key that is not the one the
// identity was made for).
func (id *Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		var fileKey []byte
		var err error
		switch {
		case s.Type == p256TagStanza && id.tagR != nil:
			fileKey, err = id.unwrapP256(s)
		case s.Type == StanzaType:
			fileKey, err = id.unwrapKEK(s)
		default:
			continue
		}
		if errors.Is(err, errTagMismatch) || errors.Is(err, errNotClaimed) {
			continue
		}
		// The first stanza for the key decides: a wrong PIN or a device
		// that is gone would fail the same way on the next one.
		return fileKey, err
	}
	return nil, age.ErrIncorrectIdentity
}

// errorf is an error about the identity's key, naming it once (keyuri.Wrap
// leaves an error that names it already alone).
func (id *Identity) errorf(format string, a ...any) error {
	return keyuri.Wrap(id.key.URI, fmt.Errorf(format, a...))
}

// unwrapP256 opens a p256tag stanza whose tag is the key's.
func (id *Identity) unwrapP256(s *age.Stanza) ([]byte, error) {
	st, err := parseP256Stanza(s, id.tagR)
	if errors.Is(err, errTagMismatch) {
		return nil, err
	} else if err != nil {
		return nil, id.errorf("%w", err)
	}
	kek, err := id.kek.get()
	if err != nil {
		return nil, err
	}
	dev, ok := kek.(ecdhKey)
	if !ok {
		return nil, id.errorf("the key is not an EC key: it cannot open p256tag stanzas")
	}
	if pub, _ := resolver.PublicKeyOf(kek).(*ecdh.PublicKey); pub == nil || !pub.Equal(id.key.P256) {
		return nil, id.errorf("the device's key is not the P-256 key this identity was made for (was the key replaced?)")
	}
	fileKey, err := openP256(id.kek.ctx, id.key.P256, dev, st)
	if err != nil {
		return nil, id.errorf("%w", err)
	}
	return fileKey, nil
}

// unwrapKEK opens an hsmenv stanza the KEK claims.
func (id *Identity) unwrapKEK(s *age.Stanza) ([]byte, error) {
	edk, err := parseKEKStanza(s)
	if err != nil {
		return nil, id.errorf("%w", err)
	}
	kek, err := id.kek.get()
	if err != nil {
		return nil, err
	}
	if !kek.Claims(edk) {
		return nil, errNotClaimed
	}
	fileKey, err := kek.Unwrap(id.kek.ctx, edk, StanzaContext)
	if err != nil {
		return nil, id.errorf("%w", err)
	}
	if len(fileKey) != fileKeyLen {
		clear(fileKey)
		return nil, id.errorf("the hsmenv stanza holds a %d-byte file key, age's are %d", len(fileKey), fileKeyLen)
	}
	return fileKey, nil
}
