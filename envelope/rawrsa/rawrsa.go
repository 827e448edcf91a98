// Package rawrsa is a software RSA KEK with the EDK layout of the AWS
// Encryption SDK's raw RSA keyring: provider id = namespace, provider info =
// key name, ciphertext = the RSA-encrypted data key. A public key alone
// wraps (encrypt-only); unwrapping needs the private key.
//
// The padding helpers are shared with the hardware KEKs that keep this
// layout (PKCS#11 and TPM RSA keys wrap on the host with the public key).
package rawrsa

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	_ "crypto/sha1" // registers SHA-1 for OAEP
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// Scheme is the key URI scheme of this package.
const Scheme = "raw-rsa"

// ErrBadKey reports key material, names or padding the keyring cannot use.
var ErrBadKey = errors.New("raw RSA key")

// Padding is an RSA encryption padding of the ESDK raw RSA keyring.
type Padding int

// The paddings. OAEP uses MGF1 with the same hash and no label.
const (
	PKCS1 Padding = iota + 1
	OAEPSHA1
	OAEPSHA256
	OAEPSHA384
	OAEPSHA512
)

var paddingNames = map[Padding]string{
	PKCS1: "pkcs1", OAEPSHA1: "oaep-sha1", OAEPSHA256: "oaep-sha256", OAEPSHA384: "oaep-sha384", OAEPSHA512: "oaep-sha512",
}

// String returns the URI name of the padding, e.g. "oaep-sha256".
func (p Padding) String() string {
	if s, ok := paddingNames[p]; ok {
		return s
	}
	return fmt.Sprintf("Padding(%d)", int(p))
}

// ParsePadding parses a URI padding name.
func ParsePadding(s string) (Padding, error) {
	for p, name := range paddingNames {
		if name == strings.ToLower(s) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: padding %q (one of pkcs1, oaep-sha1, oaep-sha256, oaep-sha384, oaep-sha512)", ErrBadKey, s)
}

// Hash returns the OAEP hash, or 0 for PKCS#1 v1.5.
func (p Padding) Hash() crypto.Hash {
	switch p {
	case OAEPSHA1:
		return crypto.SHA1
	case OAEPSHA256:
		return crypto.SHA256
	case OAEPSHA384:
		return crypto.SHA384
	case OAEPSHA512:
		return crypto.SHA512
	}
	return 0
}

// Encrypt encrypts msg to pub with padding p.
func (p Padding) Encrypt(pub *rsa.PublicKey, msg []byte) ([]byte, error) {
	if p == PKCS1 {
		//lint:ignore SA1019 the ESDK raw RSA keyring's PKCS#1 v1.5 padding, kept for interoperability (docs/format.md)
		return rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	}
	h := p.Hash()
	if h == 0 {
		return nil, fmt.Errorf("%w: unknown padding %v", ErrBadKey, p)
	}
	return rsa.EncryptOAEP(h.New(), rand.Reader, pub, msg, nil)
}

// PKCS1KeySize is the only data key length a PKCS#1 v1.5 unwrap returns
// (that of the 256-bit suites, which hsmenv and every ESDK v2 message use).
const PKCS1KeySize = 32

// Decrypt decrypts ct with priv and padding p.
//
// PKCS#1 v1.5 uses implicit rejection (RFC 3218 §2.3.2, against
// Bleichenbacher's attack): a bad padding, a plaintext that is not a
// PKCS1KeySize-byte key and a wrong key are told apart neither by error nor
// by timing: Decrypt returns a random key, and the message's key commitment
// (or, for legacy suites, its header tag) fails later as for any wrong key.
// Only a ciphertext whose length is not the key's is an error; one that is
// not below the modulus (public information too, e.g. another key's EDK)
// also yields the random key, so every EDK of the right size fails alike.
func (p Padding) Decrypt(priv *rsa.PrivateKey, ct []byte) ([]byte, error) {
	if p == PKCS1 {
		if len(ct) != priv.Size() {
			return nil, fmt.Errorf("%w: the EDK is %d bytes, an RSA-%d ciphertext is %d", ErrBadKey, len(ct), priv.N.BitLen(), priv.Size())
		}
		key := make([]byte, PKCS1KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		//lint:ignore SA1019 implicit rejection is the safe way to read the ESDK's PKCS#1 v1.5 EDKs (see above)
		_ = rsa.DecryptPKCS1v15SessionKey(nil, priv, ct, key) // fails only for ct >= N: key stays random
		return key, nil
	}
	h := p.Hash()
	if h == 0 {
		return nil, fmt.Errorf("%w: unknown padding %v", ErrBadKey, p)
	}
	return rsa.DecryptOAEP(h.New(), nil, priv, ct, nil)
}

// KEK wraps data keys with RSA.
type KEK struct {
	namespace, name string
	pub             *rsa.PublicKey
	priv            *rsa.PrivateKey
	padding         Padding
}

// New returns a KEK. pub may be nil if priv is given; priv may be nil for an
// encrypt-only KEK.
func New(namespace, name string, pub *rsa.PublicKey, priv *rsa.PrivateKey, padding Padding) (*KEK, error) {
	if err := rawaes.CheckNames(namespace, name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if _, ok := paddingNames[padding]; !ok {
		return nil, fmt.Errorf("%w: unknown padding %v", ErrBadKey, padding)
	}
	if pub == nil && priv == nil {
		return nil, fmt.Errorf("%w: neither a public nor a private key", ErrBadKey)
	}
	if pub == nil {
		pub = &priv.PublicKey
	}
	if priv != nil && !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("%w: the public and private keys are not a pair", ErrBadKey)
	}
	return &KEK{namespace: namespace, name: name, pub: pub, priv: priv, padding: padding}, nil
}

// String names the KEK in errors.
func (k *KEK) String() string {
	return fmt.Sprintf("raw-rsa:namespace=%s;name=%s;padding=%v", k.namespace, k.name, k.padding)
}

// PublicKey returns the RSA public key.
func (k *KEK) PublicKey() *rsa.PublicKey { return k.pub }

// Wrap encrypts dek to the public key. The ESDK raw RSA layout does not bind
// the encryption context; the header authentication still does.
func (k *KEK) Wrap(_ context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	ct, err := k.padding.Encrypt(k.pub, dek)
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: []byte(k.name), Ciphertext: ct}, nil
}

// Claims reports whether edk names this key.
func (k *KEK) Claims(edk envelope.EncryptedDataKey) bool {
	return edk.ProviderID == k.namespace && string(edk.ProviderInfo) == k.name
}

// Unwrap decrypts an EDK with the private key.
func (k *KEK) Unwrap(_ context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	if k.priv == nil {
		return nil, fmt.Errorf("%w: no private key (encrypt-only: give private-key= to decrypt)", ErrBadKey)
	}
	dek, err := k.padding.Decrypt(k.priv, edk.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: RSA %v unwrap failed: wrong key or padding, or the EDK was altered", ErrBadKey, k.padding)
	}
	return dek, nil
}

// OpenURI opens raw-rsa:namespace=NS;name=NAME;padding=P?public-key=PEM&private-key=PEM,
// where each PEM is a file path; either key may be absent, not both.
func OpenURI(_ context.Context, uri string) (envelope.KEK, error) {
	u, err := keyuri.Parse(uri)
	if err != nil {
		return nil, err
	}
	if err := u.Check([]string{"namespace", "name", "padding"}, []string{"public-key", "private-key"}); err != nil {
		return nil, err
	}
	var fields [3]string
	for i, name := range []string{"namespace", "name", "padding"} {
		if fields[i], err = u.Require(name); err != nil {
			return nil, err
		}
	}
	padding, err := ParsePadding(fields[2])
	if err != nil {
		return nil, err
	}
	var pub *rsa.PublicKey
	var priv *rsa.PrivateKey
	if path := u.Query["public-key"]; path != "" {
		if pub, err = ReadPublicKey(path); err != nil {
			return nil, err
		}
	}
	if path := u.Query["private-key"]; path != "" {
		if priv, err = ReadPrivateKey(path); err != nil {
			return nil, err
		}
	}
	if pub == nil && priv == nil {
		return nil, fmt.Errorf("%w: %s needs public-key= or private-key=", ErrBadKey, Scheme)
	}
	return New(fields[0], fields[1], pub, priv, padding)
}

// maxPEM bounds a key file read.
const maxPEM = 64 << 10

func readPEM(path string) (*pem.Block, error) {
	b, err := secretfile.Read(path, maxPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: key file %v", ErrBadKey, err)
	}
	defer clear(b)
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: %s holds no PEM block", ErrBadKey, path)
	}
	return block, nil
}

// ReadPublicKey reads an RSA public key from a PEM file (SPKI "PUBLIC KEY" or
// PKCS#1 "RSA PUBLIC KEY").
func ReadPublicKey(path string) (*rsa.PublicKey, error) {
	block, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: %s holds a %q, not a public key", ErrBadKey, path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKey, path, err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds a %T, not an RSA key", ErrBadKey, path, key)
	}
	return pub, nil
}

// ReadPrivateKey reads an RSA private key from a PEM file (PKCS#8
// "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY").
func ReadPrivateKey(path string) (*rsa.PrivateKey, error) {
	block, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	defer clear(block.Bytes)
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: %s holds a %q, not a private key", ErrBadKey, path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKey, path, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s holds a %T, not an RSA key", ErrBadKey, path, key)
	}
	return priv, nil
}
