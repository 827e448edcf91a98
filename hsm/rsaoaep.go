package hsm

import (
	"context"
	"crypto/rsa"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// rsaOAEP is an RSA KEK: it wraps on the host with the public key and
// unwraps with the private key in the token, its EDKs in the ESDK raw RSA
// layout (provider id the namespace, provider info the key name), so any
// ESDK raw RSA keyring with the same key pair and padding reads them.
type rsaOAEP struct {
	*keyRef
	pub     *rsa.PublicKey
	padding string         // oaep-sha1..oaep-sha512 or pkcs1
	host    rawrsa.Padding // the same padding, for wrapping on the host
}

// String names the KEK and its padding in errors (no PIN).
func (k *rsaOAEP) String() string {
	return fmt.Sprintf("%s (%s, %s)", k.uri.describe(), k.mech, k.padding)
}

// PublicKey returns the RSA key's public half, as the token reported it
// when the KEK was opened.
func (k *rsaOAEP) PublicKey() *rsa.PublicKey { return k.pub }

// Wrap encrypts dek with the public key, on the host; ctx is not used and
// the token is not reached.
func (k *rsaOAEP) Wrap(_ context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	ct, err := k.host.Encrypt(k.pub, dek)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: []byte(k.name), Ciphertext: ct}, nil
}

// Claims reports whether edk names this key's namespace and name.
func (k *rsaOAEP) Claims(edk envelope.EncryptedDataKey) bool {
	return edk.ProviderID == k.namespace && string(edk.ProviderInfo) == k.name
}

// Unwrap decrypts the data key with the private key in the token.
func (k *rsaOAEP) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	if !k.Claims(edk) {
		return nil, k.notClaimed()
	}
	mech, err := oaepMechanism(k.padding)
	if err != nil {
		return nil, err
	}
	var dek []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		if err := k.tok.mod.ctx.DecryptInit(h, []*pkcs11.Mechanism{mech}, key); err != nil {
			return opError("C_DecryptInit (RSA "+k.padding+")", err)
		}
		dek, err = k.tok.mod.ctx.Decrypt(h, edk.Ciphertext)
		return unwrapError("C_Decrypt (RSA "+k.padding+")", err)
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}
