package keyuri_test

// FuzzKeyURI: Parse and Redact never panic, never show a pin-value (in its
// error text or redacted form), and what Parse accepts formats back to
// itself. The seed corpus is testdata/fuzz/FuzzKeyURI (realistic URIs of
// every scheme and the leaking ones of issue 9); TestWriteFuzzCorpus
// regenerates it:
//
//	HSMENV_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/keyuri/
//
// Run it with
//
//	go test -run '^$' -fuzz '^FuzzKeyURI$' -fuzztime 60s ./internal/keyuri/

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/keyuri/pintest"
)

// fuzzSeeds are realistic key URIs: the README's and the tests', one of each
// attribute, and odd spellings.
var fuzzSeeds = []string{
	"raw-aes:namespace=hsmenv;name=recovery?key-file=/etc/hsmenv/recovery.key",
	"raw-rsa:namespace=hsmenv;name=escrow;padding=oaep-sha256?public-key=/etc/hsmenv/escrow.pub&private-key=/etc/hsmenv/escrow.pem",
	"pkcs11:token=hsmenv;object=aes-kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin",
	"pkcs11:token=My%20Token;object=rsa3072;type=private-key;x-padding=oaep-sha256?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
	"pkcs11:serial=0123456789abcdef;id=%01%02%ff;x-namespace=ns;x-name=kek?module-path=/m.so&x-max-sessions=4&x-allow-extractable=yes",
	"pkcs11:slot-id=7;manufacturer=SoftHSM%20project;object=k;x-mechanism=aes-kwp?module-path=/m.so&x-profile=yubihsm2&x-init-args=configdir%3D%27%27",
	"pkcs11:token=NSS%20Generic%20Crypto%20Services;object=k?module-path=/usr/lib/x86_64-linux-gnu/libsoftokn3.so",
	"tpm:seal;pcrs=sha256:0,7;pin=yes?device=/dev/tpmrm0&pin-value=1234",
	"tpm:seal?device=tcp://127.0.0.1:2321&pin-source=file:/run/pin",
	"tpm:key-file=/var/lib/hsmenv/rsa.tpmkey;x-namespace=hsmenv;x-name=rsa?device=unix:///run/swtpm.sock",
	"TPM:seal;;pin=yes?&device=x&&",
	"pkcs11:",
	"pkcs11:?",
	"x:=;%3D=%3D?%26=%3B",
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set HSMENV_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzKeyURI")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
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

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func FuzzKeyURI(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, c := range leakCases {
		f.Add(c.uri)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s2, forms := pintest.Swap(s)
		check := func(what, shown, placeholder string) {
			t.Helper()
			if err := pintest.Check(what, shown, placeholder, forms); err != nil {
				t.Fatal(err)
			}
		}

		check("Redact", keyuri.Redact(s), keyuri.Redact(s2))
		u, err := keyuri.Parse(s)
		u2, err2 := keyuri.Parse(s2)
		check("the Parse error", errText(err), errText(err2))
		if err != nil {
			if u != nil {
				t.Fatalf("Parse failed (%v) and returned %+v", err, u)
			}
			return
		}
		path, query := []string{"token", "object", "name"}, []string{"module-path", "device"}
		check("the Check error", errText(u.Check(path, query)), errText(u2.Check(path, query)))

		// What parses formats back to itself.
		out := u.String()
		back, err := keyuri.Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, whose String %q does not parse: %v", s, u, out, err)
		}
		if !reflect.DeepEqual(back, u) {
			t.Fatalf("Parse(%q) = %+v; String() = %q parses to %+v", s, u, out, back)
		}
		if again := back.String(); again != out {
			t.Fatalf("String is not canonical: %q, then %q", out, again)
		}
		if u.Scheme != strings.ToLower(u.Scheme) || u.Scheme == "" {
			t.Fatalf("scheme %q", u.Scheme)
		}

		// The formatted URI's pin-values are hidden as well.
		out2, oforms := pintest.Swap(out)
		if err := pintest.Check("Redact(String())", keyuri.Redact(out), keyuri.Redact(out2), oforms); err != nil {
			t.Fatal(err)
		}
		for _, m := range []map[string]string{u.Path, u.Query} {
			if v, ok := m["pin-value"]; ok && v != "" && strings.Contains(keyuri.Redact(out), url.PathEscape(v)) && !strings.Contains(keyuri.Redact(out2), url.PathEscape(v)) {
				t.Fatalf("Redact(%q) shows the pin-value %q", out, v)
			}
		}

		// A URI without a word of a PIN is shown as it is.
		if !strings.Contains(strings.ToLower(s), "pin") && !strings.Contains(s, "%") {
			if r := keyuri.Redact(s); r != s {
				t.Fatalf("Redact(%q) = %q, hides something that is no PIN", s, r)
			}
		}
	})
}
