package resolver

import (
	"context"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// tpmKind handles tpm: URIs (package tpm).
var tpmKind = kind{
	open: func(ctx context.Context, uri string, o Options) (envelope.KEK, error) {
		return tpm.OpenURI(ctx, uri, tpmOptions(o)...)
	},
	generate: func(ctx context.Context, uri, keyType string, o Options) (string, error) {
		return tpm.Generate(ctx, uri, keyType, tpmOptions(o)...)
	},
	publicKey: func(ctx context.Context, uri string, o Options) ([]byte, error) {
		return tpm.PublicKeyPEM(ctx, uri, tpmOptions(o)...)
	},
}

// tpmOptions passes o's default device and PIN callback to package tpm.
func tpmOptions(o Options) []tpm.Option {
	opts := []tpm.Option{tpm.WithDevice(o.TPMDevice)}
	if o.PIN != nil {
		opts = append(opts, tpm.WithPIN(func(ctx context.Context, what string) (string, error) {
			return o.PIN(ctx, tpm.Scheme, what)
		}))
	}
	return opts
}
