package resolver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/tpm"
)

// ErrNotSupported reports a key operation the URI's kind of key does not
// have (e.g. generating a raw software key in a device).
var ErrNotSupported = fmt.Errorf("not supported for this kind of key")

// scheme returns the URI's scheme, "" if it has none (errors then show the
// URI through keyuri.Redact only).
func scheme(uri string) string {
	s, _ := keyuri.SchemeOf(uri)
	return s
}

// GenerateKey makes a new KEK where the URI says, of type keyType (aes-256,
// rsa-3072, rsa-2048, ...), and returns a description of it.
func GenerateKey(ctx context.Context, uri, keyType string) (string, error) {
	switch scheme(uri) {
	case hsm.Scheme:
		ki, err := hsm.Generate(ctx, uri, keyType)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("generated %s %s-%d %q (id %x): sensitive=%v extractable=%v usage=%s",
			ki.Class, ki.Type, ki.Bits, ki.Label, ki.ID, ki.Sensitive, ki.Extractable, strings.Join(ki.Usage, ",")), nil
	case tpm.Scheme:
		return tpm.Generate(ctx, uri, keyType)
	}
	return "", fmt.Errorf("keygen %s: %w", keyuri.Redact(uri), ErrNotSupported)
}

// PublicKeyPEM returns the PEM SPKI of an asymmetric KEK, for producers that
// wrap data keys without the device.
func PublicKeyPEM(ctx context.Context, uri string) ([]byte, error) {
	switch scheme(uri) {
	case hsm.Scheme:
		return hsm.PublicKeyPEM(ctx, uri)
	case tpm.Scheme:
		return tpm.PublicKeyPEM(ctx, uri)
	case rawrsa.Scheme:
		kek, err := rawrsa.OpenURI(ctx, uri)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(kek.(*rawrsa.KEK).PublicKey())
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	}
	return nil, fmt.Errorf("pubkey %s: %w (only asymmetric keys have a public half)", keyuri.Redact(uri), ErrNotSupported)
}

// ListKeys lists the keys of the device a URI names.
func ListKeys(ctx context.Context, uri string) ([]hsm.KeyInfo, error) {
	switch scheme(uri) {
	case hsm.Scheme:
		return hsm.List(ctx, uri)
	}
	return nil, fmt.Errorf("keys list %s: %w", keyuri.Redact(uri), ErrNotSupported)
}
