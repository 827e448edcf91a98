package ageplugin

import (
	"context"
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"filippo.io/age"
	"filippo.io/age/tag"
	"filippo.io/hpke"

	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// The p256tag stanza, as filippo.io/age/tag writes it: -> p256tag TAG ENC,
// body the file key sealed with HPKE (DHKEM(P-256), HKDF-SHA256,
// ChaCha20-Poly1305) under the label.
const (
	p256TagStanza = "p256tag"
	p256TagLabel  = "age-encryption.org/p256tag"
	p256TagLen    = 4
	p256EncLen    = 65 // uncompressed point
	fileKeyLen    = 16
	p256BodyLen   = fileKeyLen + 16 // ChaCha20-Poly1305 tag
)

// compress returns the SEC 1 compressed form of a P-256 public key.
func compress(pub *ecdh.PublicKey) ([]byte, error) {
	if pub.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: not a P-256 key", ErrEncoding)
	}
	return rawecdh.Compressed(pub), nil
}

// decompress parses a compressed P-256 point.
func decompress(b []byte) (*ecdh.PublicKey, error) {
	pub, err := rawecdh.Decompress(ecdh.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("%w: not a compressed P-256 point", ErrEncoding)
	}
	return pub, nil
}

// tagRecipient returns age's tagged P-256 recipient of pub: what age 1.3
// encrypts to natively, and what the plugin wraps with for age1hsmenv1
// P-256 recipients, so both write the same stanza.
func tagRecipient(pub *ecdh.PublicKey) (*tag.Recipient, error) {
	p, err := compress(pub)
	if err != nil {
		return nil, err
	}
	return tag.NewClassicRecipient(p)
}

// ecdhKey is a KEK whose private key agrees secrets in its device: hsm's EC
// KEKs and tpm's ECC key files.
type ecdhKey interface {
	ECDH(ctx context.Context, peer *ecdh.PublicKey) ([]byte, error)
}

// deviceKeyExchanger is an ecdh.KeyExchanger whose ECDH runs in the device
// under ctx, for HPKE. It keeps the secrets it returned so that the caller
// can zero them once HPKE is done with them.
type deviceKeyExchanger struct {
	ctx  context.Context
	pub  *ecdh.PublicKey
	key  ecdhKey
	mu   sync.Mutex
	seen [][]byte
	err  error // the device's, if ECDH failed
}

func (d *deviceKeyExchanger) PublicKey() *ecdh.PublicKey { return d.pub }
func (d *deviceKeyExchanger) Curve() ecdh.Curve          { return d.pub.Curve() }
func (d *deviceKeyExchanger) ECDH(peer *ecdh.PublicKey) ([]byte, error) {
	z, err := d.key.ECDH(d.ctx, peer)
	if err != nil {
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		return nil, err
	}
	d.mu.Lock()
	d.seen = append(d.seen, z)
	d.mu.Unlock()
	return z, nil
}

// zero clears every secret ECDH returned.
func (d *deviceKeyExchanger) zero() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, z := range d.seen {
		clear(z)
	}
	d.seen = nil
}

// errTagMismatch means a p256tag stanza is for another recipient.
var errTagMismatch = errors.New("p256tag stanza for another recipient")

// p256Stanza is a p256tag stanza checked for shape.
type p256Stanza struct {
	tag, enc, body []byte
}

// parseP256Stanza checks a p256tag stanza's shape, as age's tag package
// writes it, and that its tag is r's.
func parseP256Stanza(s *age.Stanza, r *tag.Recipient) (*p256Stanza, error) {
	if len(s.Args) != 2 {
		return nil, fmt.Errorf("malformed p256tag stanza: %d arguments, want 2", len(s.Args))
	}
	t, err := decodeArg(s.Args[0])
	if err != nil || len(t) != p256TagLen {
		return nil, fmt.Errorf("malformed p256tag stanza: the tag is not %d bytes of base64", p256TagLen)
	}
	enc, err := decodeArg(s.Args[1])
	if err != nil || len(enc) != p256EncLen {
		return nil, fmt.Errorf("malformed p256tag stanza: the encapsulated key is not %d bytes of base64", p256EncLen)
	}
	if len(s.Body) != p256BodyLen {
		return nil, fmt.Errorf("malformed p256tag stanza: a %d-byte body, want %d", len(s.Body), p256BodyLen)
	}
	want, err := r.Tag(enc)
	if err != nil {
		return nil, fmt.Errorf("p256tag stanza: %v", err)
	}
	if subtle.ConstantTimeCompare(t, want) != 1 {
		return nil, errTagMismatch
	}
	return &p256Stanza{tag: t, enc: enc, body: s.Body}, nil
}

// errStanzaAltered reports a p256tag stanza that the device key's ECDH did
// not open.
var errStanzaAltered = errors.New("the p256tag stanza for this key does not open (was the file altered?)")

// openP256 opens a p256tag stanza with the device key: HPKE with the
// device as the DHKEM private key. A device failure is returned as it is;
// a stanza that does not decrypt is errStanzaAltered.
func openP256(ctx context.Context, pub *ecdh.PublicKey, key ecdhKey, s *p256Stanza) ([]byte, error) {
	kx := &deviceKeyExchanger{ctx: ctx, pub: pub, key: key}
	defer kx.zero()
	priv, err := hpke.NewDHKEMPrivateKey(kx)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(s.enc, priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(p256TagLabel))
	if err != nil {
		if kx.err != nil {
			return nil, kx.err
		}
		return nil, fmt.Errorf("%w: %v", errStanzaAltered, err)
	}
	fileKey, err := r.Open(nil, s.body)
	if err != nil {
		return nil, errStanzaAltered
	}
	return fileKey, nil
}

// decodeArg decodes a stanza argument as age does: unpadded standard
// base64, canonical, with no line breaks (which encoding/base64 would skip).
func decodeArg(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\n\r") {
		return nil, errors.New("unexpected newline in argument")
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}
