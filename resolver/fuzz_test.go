package resolver_test

// FuzzOpenKEK: opening a key URI through the resolver (as the CLI does) never
// panics, and no error or opened KEK shows a pin-value of the URI. The seed
// corpus is testdata/fuzz/FuzzOpenKEK (a URI of every scheme, with the test
// keys of testdata/keys, and the leaking ones of issue 9);
// TestWriteFuzzCorpus regenerates it:
//
//	HSMENV_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./resolver/
//
// Run it with
//
//	go test -run '^$' -fuzz '^FuzzOpenKEK$' -fuzztime 60s ./resolver/
//
// A URI that would load a PKCS#11 module or read a file outside this
// directory (an absolute path, "..") is only parsed, not opened: a fuzzer
// must not dlopen arbitrary libraries or read /dev/zero.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/keyuri/pintest"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
)

var fuzzSeeds = []string{
	"raw-aes:namespace=hsmenv-test;name=aes256?key-file=testdata/keys/aes256.key",
	"raw-aes:namespace=hsmenv-test;name=aes256?key-file=testdata/keys/aes256.key&pin-value=1234",
	"raw-aes:namespace=aws-kms;name=aes256?key-file=testdata/keys/aes256.key",
	"raw-aes:namespace=n;name=k?key-file=testdata/keys/rsa2048.pem",
	"raw-rsa:namespace=hsmenv-test;name=rsa2048;padding=oaep-sha256?public-key=testdata/keys/rsa2048.pub&private-key=testdata/keys/rsa2048.pem",
	"raw-rsa:namespace=hsmenv-test;name=rsa2048;padding=pkcs1?public-key=testdata/keys/rsa2048.pub",
	"raw-rsa:namespace=hsmenv-test;name=rsa2048;padding=oaep-sha1?private-key=testdata/keys/aes256.key",
	"pkcs11:token=hsmenv?module-path=nonexistent/libsofthsm2.so&pin-value=1234",
	"pkcs11:token=hsmenv;object=aes-kek;x-mechanism=aes-kw?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
	"pkcs11:token=My%20Token;slot-id=1;type=private-key;x-padding=oaep-sha256?x-max-sessions=4&x-allow-extractable=maybe&pin-value=1234",
	"pkcs11:token=t?module-path=m.so&pin-source=file:p&pin-value=1234",
	"tpm:seal;pcrs=sha256:0,7;pin=yes?device=tcp://127.0.0.1:2321&pin-value=1234",
	"tpm:seal?device=unix:///run/swtpm.sock&pin-source=file:/run/pin",
	"tpm:seal;srk=000b0000000000000000000000000000000000000000000000000000000000000000?device=tcp://127.0.0.1:1",
	"tpm:key-file=testdata/keys/rsa2048.pem;x-namespace=ns;x-name=k?device=tcp://127.0.0.1:2321&pin-value=1234",
	"tpm:seal;key-file=x?device=ftp://x",
	"foo:bar?pin-value=1234",
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set HSMENV_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenKEK")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range fuzzSeeds {
		write(fmt.Sprintf("seed-%02d", i), s)
	}
	for i, c := range leakCases {
		write(fmt.Sprintf("leak-%02d", i), c.uri)
	}
}

// safeToOpen reports whether opening uri stays away from module loading
// and from files outside this directory.
func safeToOpen(uri string) bool {
	k, err := keyuri.Parse(uri)
	if err != nil {
		return true // every opener fails in keyuri.Parse
	}
	for _, m := range []map[string]string{k.Path, k.Query} {
		for _, v := range m {
			if filepath.IsAbs(v) || strings.Contains(v, "..") || strings.HasPrefix(v, "~") {
				return false
			}
		}
	}
	if k.Scheme == hsm.Scheme {
		// hsm.Open loads the module once the URI parses and names an
		// object.
		u, err := hsm.ParseURI(uri)
		return err != nil || (u.Object == "" && len(u.ID) == 0)
	}
	return true
}

// opened describes what an open returned, for comparison.
func opened(v any, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%T %v", v, v)
}

func FuzzOpenKEK(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, c := range leakCases {
		f.Add(c.uri)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		other, forms := pintest.Swap(uri)
		var shown, shownOther []string
		try := func(what string, fn func(string) (any, error)) {
			shown = append(shown, what+": "+opened(fn(uri)))
			shownOther = append(shownOther, what+": "+opened(fn(other)))
		}
		scheme, _ := keyuri.SchemeOf(uri)
		if safeToOpen(uri) {
			try("OpenKEK", func(s string) (any, error) {
				return resolver.OpenKEK(ctx, s, resolver.Options{TPMDevice: "tcp://127.0.0.1:9"})
			})
			// hsm.PublicKeyPEM loads the module of any URI that parses,
			// tpm.PublicKeyPEM reaches the TPM.
			_, perr := hsm.ParseURI(uri)
			if scheme != tpm.Scheme && (scheme != hsm.Scheme || perr != nil) {
				try("PublicKeyPEM", func(s string) (any, error) {
					_, err := resolver.PublicKeyPEM(ctx, s, resolver.Options{})
					return nil, err
				})
			}
		}
		if scheme != hsm.Scheme && scheme != tpm.Scheme {
			try("GenerateKey", func(s string) (any, error) { return resolver.GenerateKey(ctx, s, "aes-256", resolver.Options{}) })
			try("ListKeys", func(s string) (any, error) { _, err := resolver.ListKeys(ctx, s, resolver.Options{}); return nil, err })
		}
		try("hsm.ParseURI", func(s string) (any, error) { return hsm.ParseURI(s) })
		try("tpm.ParseURI", func(s string) (any, error) { return tpm.ParseURI(s) })
		if safeToOpen(uri) {
			try("rawaes.OpenURI", func(s string) (any, error) { return rawaes.OpenURI(ctx, s) })
			try("rawrsa.OpenURI", func(s string) (any, error) { return rawrsa.OpenURI(ctx, s) })
		}
		for i := range shown {
			if err := pintest.Check("what the URI shows", shown[i], shownOther[i], forms); err != nil {
				t.Fatal(err)
			}
		}
	})
}
