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

// pinSpan is where a pin-value's raw value sits in a URI.
type pinSpan struct{ start, end int }

// pinValues finds every pin-value attribute of s the simple way, apart
// from the code under test: after the first ':' (or from the start when
// there is none), a path split at ';' up to the first '?', a query split at
// '&' after it, each part a name (percent-decoded: "pin-value") and a value
// after its first '='.
func pinValues(s string) []pinSpan {
	var out []pinSpan
	start := strings.IndexByte(s, ':') + 1
	path, query, hasQuery := strings.Cut(s[start:], "?")
	sections := []struct {
		text string
		off  int
		sep  string
	}{{path, start, ";"}}
	if hasQuery {
		sections = append(sections, struct {
			text string
			off  int
			sep  string
		}{query, start + len(path) + 1, "&"})
	}
	for _, sec := range sections {
		off := sec.off
		for _, p := range strings.Split(sec.text, sec.sep) {
			if name, _, ok := strings.Cut(p, "="); ok {
				if n, err := url.PathUnescape(name); err == nil && n == "pin-value" {
					out = append(out, pinSpan{off + len(name) + 1, off + len(p)})
				}
			}
			off += len(p) + len(sec.sep)
		}
	}
	return out
}

// withPlaceholders returns s with every pin-value's value replaced by a
// placeholder of the same kind: empty stays empty, one that decodes becomes
// "Z", one that does not becomes "%Z". What a URI's messages show must not
// change.
func withPlaceholders(s string, spans []pinSpan) string {
	for i := len(spans) - 1; i >= 0; i-- {
		sp := spans[i]
		v := s[sp.start:sp.end]
		p := "Z"
		if v == "" {
			p = ""
		} else if _, err := url.PathUnescape(v); err != nil {
			p = "%Z"
		}
		s = s[:sp.start] + p + s[sp.end:]
	}
	return s
}

// secretForms returns the forms of the pin-values of s that must not show:
// raw, decoded and re-encoded.
func secretForms(s string, spans []pinSpan) []string {
	var out []string
	for _, sp := range spans {
		raw := s[sp.start:sp.end]
		out = append(out, raw)
		if d, err := url.PathUnescape(raw); err == nil {
			out = append(out, d, url.PathEscape(d), url.QueryEscape(d))
		}
	}
	return out
}

// checkHidden fails if shown (a message about s) shows a pin-value of s:
// it must be what the message about the placeholder URI is, and a secret
// form may appear only where the placeholder message has it too (an object
// label equal to the PIN, say).
func checkHidden(t *testing.T, what, shown, placeholder string, forms []string) {
	t.Helper()
	if shown != placeholder {
		t.Fatalf("%s depends on a pin-value:\n%s\nwith the pin-values replaced:\n%s", what, shown, placeholder)
	}
	for _, f := range forms {
		if f != "" && strings.Contains(shown, f) && !strings.Contains(placeholder, f) {
			t.Fatalf("%s shows the pin-value %q: %s", what, f, shown)
		}
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
		spans := pinValues(s)
		forms := secretForms(s, spans)
		s2 := withPlaceholders(s, spans)

		checkHidden(t, "Redact", keyuri.Redact(s), keyuri.Redact(s2), forms)
		u, err := keyuri.Parse(s)
		u2, err2 := keyuri.Parse(s2)
		checkHidden(t, "the Parse error", errText(err), errText(err2), forms)
		if err != nil {
			if u != nil {
				t.Fatalf("Parse failed (%v) and returned %+v", err, u)
			}
			return
		}
		path, query := []string{"token", "object", "name"}, []string{"module-path", "device"}
		checkHidden(t, "the Check error", errText(u.Check(path, query)), errText(u2.Check(path, query)), forms)

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
		ospans := pinValues(out)
		checkHidden(t, "Redact(String())", keyuri.Redact(out), keyuri.Redact(withPlaceholders(out, ospans)), secretForms(out, ospans))
		for _, m := range []map[string]string{u.Path, u.Query} {
			if v, ok := m["pin-value"]; ok && v != "" && strings.Contains(keyuri.Redact(out), url.PathEscape(v)) && !strings.Contains(keyuri.Redact(withPlaceholders(out, ospans)), url.PathEscape(v)) {
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
