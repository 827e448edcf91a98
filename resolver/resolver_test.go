package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/keyuri/pintest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
)

var ctx = context.Background()

// leakCases are the URIs of issue 9 whose error messages showed a PIN (the
// first Redact hid only the first literal "pin-value=" up to the next ';',
// '&' or '?'), with the PIN pieces that must never show, each checked raw,
// percent-decoded and percent-encoded. Module, device and key paths do not
// exist: every open fails (or succeeds without touching a device).
var leakCases = []struct {
	name, uri string
	secrets   []string
}{
	{"encoded name", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin%2Dvalue=S3cretA1", []string{"S3cretA1"}},
	{"encoded name, path", "pkcs11:token=t;pin%2dvalue=S3cretA2;object=o?module-path=/nonexistent/p11.so", []string{"S3cretA2"}},
	{"second pin-value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=S3cretB1&pin-value=S3cretB2", []string{"S3cretB1", "S3cretB2"}},
	{"second pin-value, other name between", "pkcs11:token=t;object=o?pin-value=S3cretB3&module-path=/nonexistent/p11.so&pin-value=S3cretB4", []string{"S3cretB3", "S3cretB4"}},
	{"';' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=Ab1Xy;Cd2Zw", []string{"Ab1Xy;Cd2Zw", "Cd2Zw"}},
	{"'?' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=Ab3Xy?Cd4Zw", []string{"Ab3Xy?Cd4Zw", "Cd4Zw"}},
	{"'&' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=Ab5Xy&Cd6Zw", []string{"Ab5Xy", "Cd6Zw"}},
	{"'&' in a query PIN, then more", "pkcs11:token=t;object=o?pin-value=Ab7Xy&Cd8Zw&module-path=/nonexistent/p11.so", []string{"Ab7Xy", "Cd8Zw"}},
	{"PIN in the path", "pkcs11:token=x;pin-value=S3cretC1", []string{"S3cretC1"}},
	{"PIN in the path, then object", "pkcs11:token=x;pin-value=S3cretC2;object=o?module-path=/nonexistent/p11.so", []string{"S3cretC2"}},
	{"';' in a path PIN", "pkcs11:token=x;pin-value=Ab9Xy;Cd0Zw?module-path=/nonexistent/p11.so", []string{"Ab9Xy", "Cd0Zw"}},
	{"'?' in a path PIN", "pkcs11:token=x;pin-value=Ef1Gh?Ij2Kl", []string{"Ef1Gh", "Ij2Kl"}},
	{"'?' in a path PIN, then query", "pkcs11:token=x;object=o;pin-value=Ef3Gh?Ij4Kl&module-path=/nonexistent/p11.so", []string{"Ef3Gh", "Ij4Kl"}},
	{"percent-encoded value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=S%33cretD1", []string{"S3cretD1"}},
	{"percent-encoded value, every byte", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=%53%33%63%72%65%74%44%32", []string{"S3cretD2"}},
	{"bad escape in the value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=S3cr%zzetE1", []string{"S3cr%zzetE1", "S3cr", "zzetE1", "%zz"}},
	{"bad escape at the end of the value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=S3cretE2%4", []string{"S3cretE2"}},
	{"bad escape elsewhere", "pkcs11:token=t%zz;object=o?module-path=/nonexistent/p11.so&pin-value=S3cretE3", []string{"S3cretE3"}},
	{"duplicate attribute", "pkcs11:token=t;token=u;object=o?module-path=/nonexistent/p11.so&pin-value=S3cretF1", []string{"S3cretF1"}},
	{"duplicate pin-value in the path", "pkcs11:token=t;pin-value=S3cretF2;pin-value=S3cretF3", []string{"S3cretF2", "S3cretF3"}},
	{"upper-case name", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&PIN-VALUE=S3cretG1", []string{"S3cretG1"}},
	{"upper-case encoded name", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&Pin%2DValue=S3cretG2", []string{"S3cretG2"}},
	{"'=' escaped in the name, query", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value%3DS3cretH1", []string{"S3cretH1"}},
	{"'=' escaped in the name, path", "pkcs11:token=t;pin-value%3DS3cretH2;object=o?module-path=/nonexistent/p11.so", []string{"S3cretH2"}},
	{"'=' escaped in the name, then a value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value%3DS3cretH3=x", []string{"S3cretH3"}},
	{"pin-source and pin-value", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-source=file:/x&pin-value=S3cretH4", []string{"S3cretH4"}},
	{"no scheme", "token=x;pin-value=S3cretI1", []string{"S3cretI1"}},
	{"no scheme, PIN first", "pin-value=S3cretI2", []string{"S3cretI2"}},
	{"not a scheme before ':'", "pin-value=S3cretI3:x", []string{"S3cretI3"}},
	{"not a scheme, PIN after ':'", "a b:token=t?pin-value=S3cretI4", []string{"S3cretI4"}},
	{"unknown scheme", "foo:token=t?pin-value=S3cretJ1", []string{"S3cretJ1"}},
	{"tpm, duplicate", "tpm:seal?device=/nonexistent/tpm&pin-value=S3cretK1&pin-value=S3cretK2", []string{"S3cretK1", "S3cretK2"}},
	{"tpm, ';' in the PIN", "tpm:seal;pin=yes?device=/nonexistent/tpm&pin-value=Mn1Op;Qr2St", []string{"Mn1Op;Qr2St", "Qr2St"}},
	{"';' before pin-value in the query", "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so;pin-value=S3cretM1", []string{"S3cretM1"}},
	{"'&' before pin-value in the path", "pkcs11:token=t&pin-value=S3cretM3;object=o?module-path=/nonexistent/p11.so", []string{"S3cretM3"}},
	{"tpm, '&' in the PIN", "tpm:seal;pin=yes?device=/nonexistent/tpm&pin-value=Mn3Op&Qr4St", []string{"Mn3Op", "Qr4St"}},
	{"tpm, PIN in the path", "tpm:seal;pin-value=S3cretK3?device=/nonexistent/tpm", []string{"S3cretK3"}},
	{"tpm key file", "tpm:key-file=/nonexistent/k.tpmkey?device=/nonexistent/tpm&pin%2Dvalue=S3cretK4", []string{"S3cretK4"}},
	{"raw-aes, unknown attribute", "raw-aes:namespace=n;name=k?key-file=/nonexistent/key&pin-value=S3cretL1", []string{"S3cretL1"}},
	{"raw-rsa, encoded name", "raw-rsa:namespace=n;name=k;padding=oaep-sha256?public-key=/nonexistent/pub&pin%2Dvalue=S3cretL2", []string{"S3cretL2"}},
}

// TestErrorsHidePIN opens every leaking URI through what the CLI calls
// (resolver.OpenKEKs/OpenKEK, GenerateKey, PublicKeyPEM, ListKeys) and
// through each scheme's parser: no error text shows any piece of the PIN.
func TestErrorsHidePIN(t *testing.T) {
	o := resolver.Options{TPMDevice: "/nonexistent/tpm"} // no tpm: URI reaches the host's TPM
	for _, c := range leakCases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, v any, err error) {
				t.Helper()
				if err != nil {
					if err := pintest.NoSecret(what+" error", err.Error(), c.secrets); err != nil {
						t.Error(err)
					}
				} else if v != nil {
					if err := pintest.NoSecret(what+" result", fmt.Sprint(v), c.secrets); err != nil {
						t.Error(err)
					}
				}
			}
			kek, err := resolver.OpenKEK(ctx, c.uri, o)
			check("OpenKEK", kek, err)
			keks, err := resolver.OpenKEKs(ctx, o, c.uri)
			check("OpenKEKs", keks, err)
			_, err = resolver.GenerateKey(ctx, c.uri, "aes-256", o)
			check("GenerateKey", nil, err)
			_, err = resolver.PublicKeyPEM(ctx, c.uri, o)
			check("PublicKeyPEM", nil, err)
			_, err = resolver.ListKeys(ctx, c.uri, o)
			check("ListKeys", nil, err)
			_, err = keyuri.Parse(c.uri)
			check("keyuri.Parse", nil, err)
			u, err := hsm.ParseURI(c.uri)
			check("hsm.ParseURI", u, err)
			tu, err := tpm.ParseURI(c.uri)
			check("tpm.ParseURI", tu, err)
			k, err := rawaes.OpenURI(ctx, c.uri)
			check("rawaes.OpenURI", k, err)
			k, err = rawrsa.OpenURI(ctx, c.uri)
			check("rawrsa.OpenURI", k, err)
		})
	}
}

// TestErrorsStillSayWhat: the redacted errors still name the key and what
// is wrong.
func TestErrorsStillSayWhat(t *testing.T) {
	for _, c := range []struct {
		uri  string
		want []string
		is   error
	}{
		{"pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=1234&pin-value=5678", []string{`attribute "pin-value" appears twice`, "pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=***&pin-value=***"}, keyuri.ErrSyntax},
		{"pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=12&34", []string{"pin-value=***&***", "%26"}, keyuri.ErrSyntax},
		{"pkcs11:token=t;object=o?module-path=/nonexistent/p11.so&pin-value=12;34", []string{"/nonexistent/p11.so"}, hsm.ErrModule},
		{"foo:bar=1?pin-value=1234", []string{`"foo"`, "raw-aes", "pin-value=***"}, resolver.ErrUnknownScheme},
		{"pin-value=1234:x", []string{"no scheme"}, keyuri.ErrSyntax},
		{"raw-aes:namespace=n;name=k?key-file=/nonexistent/key&pin-value=1234", []string{`unknown query attribute "pin-value"`, "key raw-aes:namespace=n;name=k: "}, keyuri.ErrSyntax},
	} {
		_, err := resolver.OpenKEK(ctx, c.uri, resolver.Options{})
		if !errors.Is(err, c.is) {
			t.Errorf("OpenKEK(%q) = %v, want %v", c.uri, err, c.is)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("OpenKEK(%q) = %v, want it to say %q", c.uri, err, w)
			}
		}
		if strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), "5678") {
			t.Errorf("OpenKEK(%q) = %v shows the PIN", c.uri, err)
		}
	}
}

func TestOpenTestdataKeys(t *testing.T) {
	for _, uri := range []string{
		"raw-aes:namespace=hsmenv-test;name=aes256?key-file=testdata/keys/aes256.key",
		"raw-rsa:namespace=hsmenv-test;name=rsa2048;padding=oaep-sha256?public-key=testdata/keys/rsa2048.pub&private-key=testdata/keys/rsa2048.pem",
	} {
		if _, err := resolver.OpenKEK(ctx, uri, resolver.Options{}); err != nil {
			t.Errorf("OpenKEK(%q): %v", uri, err)
		}
	}
}

// TestTPMOptions: Options.TPMDevice and Options.PIN reach tpm: keys. A key
// without device= and without a PIN in its URI is sealed on the default
// device with the callback's PIN; the callback is asked with the scheme and
// the key's name.
func TestTPMOptions(t *testing.T) {
	sw := tpmtest.Start(t)
	var asked []string
	o := resolver.Options{TPMDevice: sw.Device(), PIN: func(_ context.Context, scheme, what string) (string, error) {
		asked = append(asked, scheme+" "+what)
		return "1234", nil
	}}
	kek, err := resolver.OpenKEK(ctx, "tpm:seal;pin=yes", o)
	if err != nil {
		t.Fatal(err)
	}
	dek := []byte("0123456789abcdef0123456789abcdef")
	edk, err := kek.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || !strings.HasPrefix(asked[0], tpm.Scheme+" tpm:seal;pin=yes?device="+sw.Device()) {
		t.Fatalf("the PIN callback was asked %q", asked)
	}
	direct, err := resolver.OpenKEK(ctx, "tpm:seal?device="+sw.Device()+"&pin-value=1234", resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := direct.Unwrap(ctx, edk, nil); err != nil || string(got) != string(dek) {
		t.Fatalf("not sealed on %s with the callback's PIN: %v", sw.Device(), err)
	}
	desc, err := resolver.GenerateKey(ctx, "tpm:seal", "", o)
	if err != nil || !strings.Contains(desc, sw.Device()) {
		t.Fatalf("keygen on the default device: %q, %v", desc, err)
	}
}
