package ageplugin

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"filippo.io/age"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/resolver"
)

// StanzaType is the type of the stanzas age1hsmenv1 URI recipients write:
// "-> hsmenv", no arguments, body the EDK (see the package doc).
const StanzaType = "hsmenv"

// StanzaContext is the encryption context a KEK wraps age file keys
// under, so that an age stanza's EDK cannot stand in for a message's (KEKs
// that bind a context: AES-GCM, raw ECDH) and the other way round.
var StanzaContext = envelope.EncryptionContext{"age-encryption.org/hsmenv": "file key"}

// maxStanzaBody bounds an hsmenv stanza's body before it is parsed: three
// 16-bit fields.
const maxStanzaBody = 3 * (2 + 65535)

// lazyKEK opens the KEK of a URI on first use, once; the error of a failed
// open is kept.
type lazyKEK struct {
	ctx  context.Context
	uri  string
	opts resolver.Options

	once sync.Once
	kek  envelope.KEK
	err  error
}

func (l *lazyKEK) get() (envelope.KEK, error) {
	l.once.Do(func() {
		l.kek, l.err = resolver.OpenKEK(l.ctx, l.uri, l.opts)
	})
	return l.kek, l.err
}

// uriRecipient wraps file keys with the KEK of a URI into hsmenv stanzas.
type uriRecipient struct{ kek *lazyKEK }

var _ age.Recipient = (*uriRecipient)(nil)

// Wrap wraps fileKey with the KEK, opening it on the first call.
func (r *uriRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	kek, err := r.kek.get()
	if err != nil {
		return nil, err
	}
	edk, err := kek.Wrap(r.kek.ctx, fileKey, StanzaContext)
	if err != nil {
		return nil, err // KEK errors name the key
	}
	body, err := edk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return []*age.Stanza{{Type: StanzaType, Body: body}}, nil
}

// parseKEKStanza returns the EDK of an hsmenv stanza.
func parseKEKStanza(s *age.Stanza) (envelope.EncryptedDataKey, error) {
	var edk envelope.EncryptedDataKey
	if len(s.Args) != 0 {
		return edk, fmt.Errorf("malformed hsmenv stanza: %d arguments, want none", len(s.Args))
	}
	if len(s.Body) > maxStanzaBody {
		return edk, fmt.Errorf("malformed hsmenv stanza: a %d-byte body", len(s.Body))
	}
	if err := edk.UnmarshalBinary(s.Body); err != nil {
		return edk, fmt.Errorf("malformed hsmenv stanza: %w", err)
	}
	return edk, nil
}

// errNotClaimed means no stanza was for the identity's key.
var errNotClaimed = errors.New("no stanza for this key")
