package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/resolver"
)

// TestPKCS11Options: Options.PKCS11Module and Options.PIN reach pkcs11:
// keys whose URI has no module-path and no PIN, for every operation; the
// PIN function is asked with the scheme and the token's name.
func TestPKCS11Options(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	uri := "pkcs11:token=" + tok.Label + ";object=kek"
	if _, err := resolver.OpenKEK(ctx, uri, resolver.Options{}); !errors.Is(err, hsm.ErrNoModule) {
		t.Fatalf("no module: %v, want hsm.ErrNoModule", err)
	}
	if _, err := resolver.GenerateKey(ctx, uri, hsm.KeyRSA2048, resolver.Options{PKCS11Module: tok.Module}); !errors.Is(err, hsm.ErrPIN) {
		t.Fatalf("no PIN: %v, want hsm.ErrPIN", err)
	}
	var asked []string
	o := resolver.Options{PKCS11Module: tok.Module, PIN: func(_ context.Context, scheme, what string) (string, error) {
		asked = append(asked, scheme+" "+what)
		return tok.PIN, nil
	}}
	if _, err := resolver.GenerateKey(ctx, uri, hsm.KeyRSA2048, o); err != nil {
		t.Fatal(err)
	}
	if _, err := resolver.OpenKEK(ctx, uri, o); err != nil {
		t.Fatal(err)
	}
	if _, err := resolver.PublicKeyPEM(ctx, uri, o); err != nil {
		t.Fatal(err)
	}
	if keys, err := resolver.ListKeys(ctx, uri, o); err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %d keys, %v", len(keys), err)
	}
	want := fmt.Sprintf("pkcs11 token %q (SoftHSM v2)", tok.Label)
	if len(asked) != 1 || asked[0] != want {
		t.Fatalf("PIN asked %q, want once %q (one login)", asked, want)
	}
}
