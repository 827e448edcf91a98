package resolver

import (
	"context"
	"fmt"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
)

// pkcs11Kind handles pkcs11: URIs (package hsm).
var pkcs11Kind = kind{
	open: func(ctx context.Context, uri string, o Options) (envelope.KEK, error) {
		kek, err := hsm.OpenURI(ctx, uri, pkcs11Options(o)...)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return kek, nil
	},
	generate: func(ctx context.Context, uri, keyType string, o Options) (string, error) {
		ki, err := hsm.Generate(ctx, uri, keyType, pkcs11Options(o)...)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("generated %s %s-%d %q (id %x): sensitive=%v extractable=%v usage=%s",
			ki.Class, ki.Type, ki.Bits, ki.Label, ki.ID, ki.Sensitive, ki.Extractable, strings.Join(ki.Usage, ",")), nil
	},
	publicKey: func(ctx context.Context, uri string, o Options) ([]byte, error) {
		return hsm.PublicKeyPEM(ctx, uri, pkcs11Options(o)...)
	},
	list: func(ctx context.Context, uri string, o Options) ([]hsm.KeyInfo, error) {
		return hsm.List(ctx, uri, pkcs11Options(o)...)
	},
}

// pkcs11Options passes o's PIN function (asked with scheme "pkcs11") and
// default module on to package hsm.
func pkcs11Options(o Options) []hsm.Option {
	var opts []hsm.Option
	if o.PIN != nil {
		opts = append(opts, hsm.WithPIN(func(ctx context.Context, what string) (string, error) {
			return o.PIN(ctx, hsm.Scheme, what)
		}))
	}
	if o.PKCS11Module != "" {
		opts = append(opts, hsm.WithModule(o.PKCS11Module))
	}
	return opts
}
