package rawecdh

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// The key agreement schemas, as key URIs name them.
const (
	schemaEphemeral = "ephemeral" // the ESDK's EphemeralPrivateKeyToStaticPublicKey
	schemaDiscovery = "discovery" // PublicKeyDiscovery
	schemaStatic    = "static"    // RawPrivateKeyToStaticPublicKey
)

// KEK is a software raw ECDH keyring: one of the three ESDK schemas. It is
// immutable and safe for concurrent use. A KEK built from unusable keys (nil,
// not on P-256, P-384 or P-521, or a static pair on two curves) claims no
// EDK, and its Wrap and Unwrap fail with ErrBadKey.
type KEK struct {
	schema    string
	cv        *curve
	priv      *ecdh.PrivateKey // discovery: the recipient's; static: the sender's; ephemeral: nil
	recipient *ecdh.PublicKey  // ephemeral and static: the configured one; discovery: priv's
	own       []byte           // compressed public key of priv (nil for ephemeral)
	peer      []byte           // compressed recipient key (ephemeral, static)
	err       error            // why the keys are unusable
}

// NewEphemeral returns an encrypt-only KEK: each Wrap agrees a key between
// a fresh key pair on the recipient's curve and recipient.
func NewEphemeral(recipient *ecdh.PublicKey) *KEK {
	k := &KEK{schema: schemaEphemeral, recipient: recipient}
	k.cv, k.err = checkKey("recipient", recipient)
	if k.err == nil {
		k.peer = Compressed(recipient)
	}
	return k
}

// NewDiscovery returns a decrypt-only KEK: it opens the EDKs whose
// recipient is the public key of recipient, whoever the sender.
func NewDiscovery(recipient *ecdh.PrivateKey) *KEK {
	k := &KEK{schema: schemaDiscovery, priv: recipient}
	if recipient == nil {
		k.err = fmt.Errorf("%w: no recipient private key", ErrBadKey)
		return k
	}
	k.recipient = recipient.PublicKey()
	k.cv, k.err = checkKey("recipient", k.recipient)
	if k.err == nil {
		k.own = Compressed(k.recipient)
	}
	return k
}

// NewStatic returns a KEK that wraps from sender to recipient and opens
// the EDKs between the two in either direction (the MPL filter): its own
// and those the recipient's static keyring made for sender.
func NewStatic(sender *ecdh.PrivateKey, recipient *ecdh.PublicKey) *KEK {
	k := &KEK{schema: schemaStatic, priv: sender, recipient: recipient}
	if sender == nil {
		k.err = fmt.Errorf("%w: no sender private key", ErrBadKey)
		return k
	}
	scv, err := checkKey("sender", sender.PublicKey())
	if err == nil {
		k.cv, err = checkKey("recipient", recipient)
	}
	if err == nil && scv != k.cv {
		err = fmt.Errorf("%w: the sender key is on %s, the recipient key on %s", ErrBadKey, scv.name, k.cv.name)
	}
	if k.err = err; err == nil {
		k.own, k.peer = Compressed(sender.PublicKey()), Compressed(recipient)
	}
	return k
}

// String names the KEK in errors: curve, schema and the first bytes of its
// keys' compressed forms.
func (k *KEK) String() string {
	if k.err != nil {
		return fmt.Sprintf("raw-ecdh:schema=%s (unusable keys)", k.schema)
	}
	short := func(b []byte) string { return hex.EncodeToString(b[:9]) + "…" }
	s := fmt.Sprintf("raw-ecdh:curve=%s;schema=%s", k.cv.name, k.schema)
	switch k.schema {
	case schemaEphemeral:
		return s + " (recipient " + short(k.peer) + ")"
	case schemaDiscovery:
		return s + " (recipient " + short(k.own) + ")"
	}
	return s + " (sender " + short(k.own) + ", recipient " + short(k.peer) + ")"
}

// Curve returns the KEK's curve, nil if its keys are unusable.
func (k *KEK) Curve() ecdh.Curve {
	if k.err != nil {
		return nil
	}
	return k.cv.ecdh
}

// PublicKey returns the public half of the private key the KEK holds (the
// recipient's for discovery, the sender's for static: what a peer encrypts
// to), or for ephemeral, which holds none, the recipient key it encrypts
// to. It is nil if the KEK's keys are unusable.
func (k *KEK) PublicKey() *ecdh.PublicKey {
	switch {
	case k.err != nil:
		return nil
	case k.priv != nil:
		return k.priv.PublicKey()
	}
	return k.recipient
}

// Wrap wraps dek for the recipient, binding ec (the message's full
// encryption context) through the KDF and the AES-GCM AAD. The ephemeral
// schema draws a fresh key pair per call; discovery cannot wrap (ErrSchema).
// ctx is unused: nothing leaves the process.
func (k *KEK) Wrap(_ context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	if k.err != nil {
		return envelope.EncryptedDataKey{}, k.err
	}
	priv := k.priv
	switch k.schema {
	case schemaDiscovery:
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: %s is decrypt-only (the discovery schema has no recipient to encrypt to; use ephemeral or static)", ErrSchema, k)
	case schemaEphemeral:
		var err error
		if priv, err = k.cv.ecdh.GenerateKey(rand.Reader); err != nil {
			return envelope.EncryptedDataKey{}, fmt.Errorf("raw-ecdh: making the ephemeral key: %w", err)
		}
	}
	z, err := priv.ECDH(k.recipient)
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: ECDH: %v", ErrBadKey, err)
	}
	defer clear(z)
	return Seal(z, priv.PublicKey(), k.recipient, dek, ec)
}

// Claims reports whether edk is a raw-ecdh EDK on the KEK's curve whose
// keys are the KEK's, comparing bytes only: discovery claims the EDKs whose
// recipient is its key; static those between its two keys in either
// direction; ephemeral those to its recipient (which it then refuses to
// unwrap with ErrSchema, as the ESDK does on decrypt).
func (k *KEK) Claims(edk envelope.EncryptedDataKey) bool {
	if k.err != nil || edk.ProviderID != ProviderID {
		return false
	}
	cv, rc, sc, err := splitInfo(edk.ProviderInfo)
	if err != nil || cv != k.cv {
		return false
	}
	switch k.schema {
	case schemaEphemeral:
		return bytes.Equal(rc, k.peer)
	case schemaDiscovery:
		return bytes.Equal(rc, k.own)
	}
	return bytes.Equal(sc, k.own) && bytes.Equal(rc, k.peer) || bytes.Equal(sc, k.peer) && bytes.Equal(rc, k.own)
}

// Unwrap returns the data key of an EDK the KEK claims, checking the
// points of its provider info, the commitment key and the AES-GCM tag under
// ec, the message's full encryption context. Ephemeral cannot unwrap
// (ErrSchema). The caller owns and zeroes the result. ctx is unused.
func (k *KEK) Unwrap(_ context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	if k.err != nil {
		return nil, k.err
	}
	if k.schema == schemaEphemeral {
		return nil, fmt.Errorf("%w: %s is encrypt-only (the ephemeral schema holds no private key; use discovery or static)", ErrSchema, k)
	}
	if !k.Claims(edk) {
		return nil, fmt.Errorf("%w: the EDK is not for %s", ErrBadKey, k)
	}
	info, err := ParseInfo(edk.ProviderInfo)
	if err != nil {
		return nil, err
	}
	peer := k.recipient // static: the other party, whichever role it had
	if k.schema == schemaDiscovery {
		peer = info.Sender
	}
	z, err := k.priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDH: %v", ErrBadKey, err)
	}
	defer clear(z)
	return Open(z, info, edk, ec)
}

// maxPEM bounds a key file read: a P-521 PKCS#8 PEM is under 400 bytes.
const maxPEM = 8 << 10

// OpenURI opens one of
//
//	raw-ecdh:curve=p256|p384|p521;schema=ephemeral?recipient-public-key=PEM
//	raw-ecdh:curve=...;schema=discovery?recipient-private-key=PEM
//	raw-ecdh:curve=...;schema=static?sender-private-key=PEM&recipient-public-key=PEM
//
// where each PEM is a file path: public keys SubjectPublicKeyInfo ("PUBLIC
// KEY"), private keys PKCS#8 ("PRIVATE KEY"), read through a size bound.
// A key on another curve than curve= is refused (ErrBadKey), as is an
// attribute the schema does not take. ctx is unused.
func OpenURI(_ context.Context, uri string) (envelope.KEK, error) {
	u, err := keyuri.Parse(uri)
	if err != nil {
		return nil, err
	}
	const (
		recipientPub  = "recipient-public-key"
		recipientPriv = "recipient-private-key"
		senderPriv    = "sender-private-key"
	)
	if err := u.Check([]string{"curve", "schema"}, []string{recipientPub, recipientPriv, senderPriv}); err != nil {
		return nil, err
	}
	name, err := u.Require("curve")
	if err != nil {
		return nil, err
	}
	c, err := Curve(name)
	if err != nil {
		return nil, err
	}
	schema, err := u.Require("schema")
	if err != nil {
		return nil, err
	}
	var pubAttr, privAttr string // the files the schema takes
	switch schema {
	case schemaEphemeral:
		pubAttr = recipientPub
	case schemaDiscovery:
		privAttr = recipientPriv
	case schemaStatic:
		privAttr, pubAttr = senderPriv, recipientPub
	default:
		return nil, fmt.Errorf("%w: schema %q (one of ephemeral, discovery, static)", ErrSchema, schema)
	}
	for _, attr := range []string{recipientPub, recipientPriv, senderPriv} {
		if _, given := u.Query[attr]; given && attr != pubAttr && attr != privAttr {
			return nil, fmt.Errorf("%w: %s: schema=%s does not take %s", keyuri.ErrSyntax, Scheme, schema, attr)
		}
	}
	for _, attr := range []string{privAttr, pubAttr} {
		if attr != "" && u.Query[attr] == "" {
			return nil, fmt.Errorf("%w: %s: schema=%s needs %s", keyuri.ErrSyntax, Scheme, schema, attr)
		}
	}
	var pub *ecdh.PublicKey
	var priv *ecdh.PrivateKey
	if pubAttr != "" {
		if pub, err = readKey(u.Query[pubAttr], ParsePublicKeyPEM, c); err != nil {
			return nil, err
		}
	}
	if privAttr != "" {
		if priv, err = readKey(u.Query[privAttr], ParsePrivateKeyPEM, c); err != nil {
			return nil, err
		}
	}
	switch schema {
	case schemaEphemeral:
		return NewEphemeral(pub), nil
	case schemaDiscovery:
		return NewDiscovery(priv), nil
	}
	return NewStatic(priv, pub), nil
}

// readKey reads a PEM key file through the size bound, parses it and checks
// it is on c.
func readKey[K interface{ Curve() ecdh.Curve }](path string, parse func([]byte) (K, error), c ecdh.Curve) (K, error) {
	var zero K
	b, err := secretfile.Read(path, maxPEM)
	if err != nil {
		return zero, fmt.Errorf("%w: key file %v", ErrBadKey, err)
	}
	defer clear(b)
	key, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("%w (%s)", err, path)
	}
	if key.Curve() != c {
		have, _ := CurveName(key.Curve())
		want, _ := CurveName(c)
		return zero, fmt.Errorf("%w: %s holds a %s key; the URI says curve=%s", ErrBadKey, path, have, want)
	}
	return key, nil
}

// pemBlock decodes the one PEM block of b, of type want, with nothing but
// white space after it.
func pemBlock(b []byte, want string) (*pem.Block, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		clear(block.Bytes)
		return nil, fmt.Errorf("%w: data after the PEM block (one key per file)", ErrBadKey)
	}
	if block.Type != want {
		clear(block.Bytes)
		return nil, fmt.Errorf("%w: a %q PEM block, not %q", ErrBadKey, block.Type, want)
	}
	return block, nil
}

// ParsePublicKeyPEM parses a "PUBLIC KEY" PEM block (DER
// SubjectPublicKeyInfo, what the ESDK takes as a recipient public key) of a
// point on P-256, P-384 or P-521; the point is validated. Errors wrap
// ErrBadKey.
func ParsePublicKeyPEM(b []byte) (*ecdh.PublicKey, error) {
	block, err := pemBlock(b, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ek, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, not a P-256, P-384 or P-521 key", ErrBadKey, key)
	}
	pub, err := ek.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if _, err := checkKey("public", pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalPublicKeyPEM returns pub as a "PUBLIC KEY" PEM block (DER
// SubjectPublicKeyInfo). It fails with ErrBadKey for a key not on P-256,
// P-384 or P-521.
func MarshalPublicKeyPEM(pub *ecdh.PublicKey) ([]byte, error) {
	if _, err := checkKey("public", pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM parses a "PRIVATE KEY" PEM block (unencrypted PKCS#8,
// what the ESDK takes as a private key) on P-256, P-384 or P-521. SEC 1 "EC
// PRIVATE KEY" files are refused: convert them with
// `openssl pkcs8 -topk8 -nocrypt`. Errors wrap ErrBadKey; the DER is zeroed.
func ParsePrivateKeyPEM(b []byte) (*ecdh.PrivateKey, error) {
	block, err := pemBlock(b, "PRIVATE KEY")
	if err != nil {
		if block, _ := pem.Decode(b); block != nil && block.Type == "EC PRIVATE KEY" {
			clear(block.Bytes)
			return nil, fmt.Errorf("%w: a SEC 1 \"EC PRIVATE KEY\"; the ESDK takes PKCS#8 (openssl pkcs8 -topk8 -nocrypt)", ErrBadKey)
		}
		return nil, err
	}
	defer clear(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, not a P-256, P-384 or P-521 key", ErrBadKey, key)
	}
	priv, err := ek.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if _, err := checkKey("private", priv.PublicKey()); err != nil {
		return nil, err
	}
	return priv, nil
}

var _ envelope.KEK = (*KEK)(nil)
