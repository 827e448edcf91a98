package resolver

import (
	"context"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// tpmKind handles tpm: URIs (package tpm).
var tpmKind = kind{
	open: func(ctx context.Context, uri string, o Options) (envelope.KEK, error) {
		return tpm.OpenURI(ctx, uri)
	},
	generate: func(ctx context.Context, uri, keyType string, o Options) (string, error) {
		return tpm.Generate(ctx, uri, keyType)
	},
	publicKey: func(ctx context.Context, uri string, o Options) ([]byte, error) {
		return tpm.PublicKeyPEM(ctx, uri)
	},
}
