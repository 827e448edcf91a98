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
		return hsm.OpenURI(ctx, uri)
	},
	generate: func(ctx context.Context, uri, keyType string, o Options) (string, error) {
		ki, err := hsm.Generate(ctx, uri, keyType)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("generated %s %s-%d %q (id %x): sensitive=%v extractable=%v usage=%s",
			ki.Class, ki.Type, ki.Bits, ki.Label, ki.ID, ki.Sensitive, ki.Extractable, strings.Join(ki.Usage, ",")), nil
	},
	publicKey: func(ctx context.Context, uri string, o Options) ([]byte, error) {
		return hsm.PublicKeyPEM(ctx, uri)
	},
	list: func(ctx context.Context, uri string, o Options) ([]hsm.KeyInfo, error) {
		return hsm.List(ctx, uri)
	},
}
