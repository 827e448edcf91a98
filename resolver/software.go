package resolver

import (
	"context"
	"crypto/x509"
	"encoding/pem"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// softwareOpen adapts the opener of a key held in files, which needs no
// Options.
func softwareOpen(open func(context.Context, string) (envelope.KEK, error)) func(context.Context, string, Options) (envelope.KEK, error) {
	return func(ctx context.Context, uri string, _ Options) (envelope.KEK, error) { return open(ctx, uri) }
}

// rawRSAPublicKey returns the public half of a raw-rsa key as PEM SPKI.
func rawRSAPublicKey(ctx context.Context, uri string, _ Options) ([]byte, error) {
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

// rawECDHPublicKey returns, as PEM SPKI, the public half of the private key
// a raw-ecdh URI names (discovery: the recipient's, static: the sender's),
// or for ephemeral the recipient key it encrypts to.
func rawECDHPublicKey(ctx context.Context, uri string, _ Options) ([]byte, error) {
	kek, err := rawecdh.OpenURI(ctx, uri)
	if err != nil {
		return nil, err
	}
	return rawecdh.MarshalPublicKeyPEM(kek.(*rawecdh.KEK).PublicKey())
}
