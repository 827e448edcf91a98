package keyuri_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/keyuri/pintest"
)

// leakCase is a URI whose error messages or redacted form once showed a PIN,
// and the PIN pieces that must never show (each checked raw, decoded and
// percent-encoded).
type leakCase struct {
	name, uri string
	secrets   []string
}

// LeakCases are the URIs of issue 9: the first Redact hid only the first
// literal "pin-value=" up to the next ';', '&' or '?'.
var leakCases = []leakCase{
	{"encoded name", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin%2Dvalue=S3cretA1", []string{"S3cretA1"}},
	{"encoded name, path", "pkcs11:token=t;pin%2dvalue=S3cretA2;object=o", []string{"S3cretA2"}},
	{"second pin-value", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=S3cretB1&pin-value=S3cretB2", []string{"S3cretB1", "S3cretB2"}},
	{"second pin-value, other name between", "pkcs11:token=t?pin-value=S3cretB3&module-path=/m.so&pin-value=S3cretB4", []string{"S3cretB3", "S3cretB4"}},
	{"';' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=Ab1Xy;Cd2Zw", []string{"Ab1Xy;Cd2Zw", "Cd2Zw"}},
	{"'?' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=Ab3Xy?Cd4Zw", []string{"Ab3Xy?Cd4Zw", "Cd4Zw"}},
	{"'&' in a query PIN", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=Ab5Xy&Cd6Zw", []string{"Ab5Xy", "Cd6Zw"}},
	{"'&' in a query PIN, then more", "pkcs11:token=t;object=o?pin-value=Ab7Xy&Cd8Zw&module-path=/m.so", []string{"Ab7Xy", "Cd8Zw"}},
	{"PIN in the path", "pkcs11:token=x;pin-value=S3cretC1", []string{"S3cretC1"}},
	{"PIN in the path, then object", "pkcs11:token=x;pin-value=S3cretC2;object=o?module-path=/m.so", []string{"S3cretC2"}},
	{"';' in a path PIN", "pkcs11:token=x;pin-value=Ab9Xy;Cd0Zw?module-path=/m.so", []string{"Ab9Xy", "Cd0Zw"}},
	{"'?' in a path PIN", "pkcs11:token=x;pin-value=Ef1Gh?Ij2Kl", []string{"Ef1Gh", "Ij2Kl"}},
	{"'?' in a path PIN, then query", "pkcs11:token=x;pin-value=Ef3Gh?Ij4Kl&module-path=/m.so", []string{"Ef3Gh", "Ij4Kl"}},
	{"percent-encoded value", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=S%33cretD1", []string{"S3cretD1"}},
	{"percent-encoded value, every byte", "pkcs11:token=t?module-path=/m.so&pin-value=%53%33%63%72%65%74%44%32", []string{"S3cretD2"}},
	{"bad escape in the value", "pkcs11:token=t;object=o?module-path=/nonexistent.so&pin-value=S3cr%zzetE1", []string{"S3cr%zzetE1", "S3cr", "zzetE1", "%zz"}},
	{"bad escape at the end of the value", "pkcs11:token=t?pin-value=S3cretE2%4", []string{"S3cretE2"}},
	{"bad escape elsewhere", "pkcs11:token=t%zz;object=o?module-path=/m.so&pin-value=S3cretE3", []string{"S3cretE3"}},
	{"duplicate attribute", "pkcs11:token=t;token=u?module-path=/m.so&pin-value=S3cretF1", []string{"S3cretF1"}},
	{"duplicate pin-value in the path", "pkcs11:token=t;pin-value=S3cretF2;pin-value=S3cretF3", []string{"S3cretF2", "S3cretF3"}},
	{"upper-case name", "pkcs11:token=t?module-path=/m.so&PIN-VALUE=S3cretG1", []string{"S3cretG1"}},
	{"upper-case encoded name", "pkcs11:token=t?module-path=/m.so&Pin%2DValue=S3cretG2", []string{"S3cretG2"}},
	{"'=' escaped in the name, query", "pkcs11:token=t?module-path=/m.so&pin-value%3DS3cretH1", []string{"S3cretH1"}},
	{"'=' escaped in the name, path", "pkcs11:token=t;pin-value%3DS3cretH2;object=o", []string{"S3cretH2"}},
	{"'=' escaped in the name, then a value", "pkcs11:token=t?pin-value%3DS3cretH3=x", []string{"S3cretH3"}},
	{"no scheme", "token=x;pin-value=S3cretI1", []string{"S3cretI1"}},
	{"no scheme, PIN first", "pin-value=S3cretI2", []string{"S3cretI2"}},
	{"not a scheme before ':'", "pin-value=S3cretI3:x", []string{"S3cretI3"}},
	{"not a scheme, PIN after ':'", "a b:token=t?pin-value=S3cretI4", []string{"S3cretI4"}},
	{"unknown scheme", "foo:token=t?pin-value=S3cretJ1", []string{"S3cretJ1"}},
	{"tpm, duplicate", "tpm:seal?device=/nonexistent/tpm&pin-value=S3cretK1&pin-value=S3cretK2", []string{"S3cretK1", "S3cretK2"}},
	// Issue 15: a PIN after the path separator in the query, or the query
	// separator in the path, was shown in clear.
	{"';' before pin-value in the query", "pkcs11:token=t;object=o?module-path=/m.so;pin-value=S3cretM1", []string{"S3cretM1"}},
	{"';' before encoded pin-value in the query", "pkcs11:token=t?module-path=/m.so;PIN%2Dvalue=S3cretM2", []string{"S3cretM2"}},
	{"'&' before pin-value in the path", "pkcs11:token=t&pin-value=S3cretM3;object=o?module-path=/m.so", []string{"S3cretM3"}},
	{"tpm, ';' in the PIN", "tpm:seal;pin=yes?device=/nonexistent/tpm&pin-value=Mn1Op;Qr2St", []string{"Mn1Op;Qr2St", "Qr2St"}},
	{"raw-aes, unknown attribute", "raw-aes:namespace=n;name=k?key-file=/nonexistent/key&pin-value=S3cretL1", []string{"S3cretL1"}},
	{"raw-rsa, encoded name", "raw-rsa:namespace=n;name=k;padding=oaep-sha256?public-key=/nonexistent/pub&pin%2Dvalue=S3cretL2", []string{"S3cretL2"}},
}

func TestRedactHidesEveryPIN(t *testing.T) {
	for _, c := range leakCases {
		t.Run(c.name, func(t *testing.T) {
			r := keyuri.Redact(c.uri)
			if err := pintest.NoSecret("Redact", r, c.secrets); err != nil {
				t.Error(err)
			}
			if !strings.Contains(r, "***") {
				t.Errorf("Redact(%q) = %q, hides nothing", c.uri, r)
			}
		})
	}
}

func TestParseErrorsHidePINs(t *testing.T) {
	for _, c := range leakCases {
		t.Run(c.name, func(t *testing.T) {
			u, err := keyuri.Parse(c.uri)
			if err != nil {
				if !errors.Is(err, keyuri.ErrSyntax) {
					t.Errorf("error does not wrap ErrSyntax: %v", err)
				}
				if err := pintest.NoSecret("Parse error", err.Error(), c.secrets); err != nil {
					t.Error(err)
				}
				return
			}
			// A URI that parses: what callers show of it is hidden.
			if err := pintest.NoSecret("Redact(String())", keyuri.Redact(u.String()), c.secrets); err != nil {
				t.Error(err)
			}
			if err := u.Check([]string{"token", "object"}, []string{"module-path"}); err != nil {
				if err := pintest.NoSecret("Check error", err.Error(), c.secrets); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"pkcs11:token=t;object=o?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin", "pkcs11:token=t;object=o?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin"},
		{"pkcs11:token=t?pin-value=1234&module-path=/m.so", "pkcs11:token=t?pin-value=***&module-path=/m.so"},
		{"pkcs11:token=t?pin-value=12;34&module-path=/m.so", "pkcs11:token=t?pin-value=***&module-path=/m.so"},
		{"pkcs11:token=t?pin-value=12&34&module-path=/m.so", "pkcs11:token=t?pin-value=***&***&module-path=/m.so"},
		{"pkcs11:token=t;pin-value=12?34&module-path=/m.so", "pkcs11:token=t;pin-value=***?***&module-path=/m.so"},
		{"pkcs11:token=t?pin-value=&module-path=/m.so", "pkcs11:token=t?pin-value=***&module-path=/m.so"},
		{"pkcs11:token=t?pin%2Dvalue=1&pin-value=2", "pkcs11:token=t?pin%2Dvalue=***&pin-value=***"},
		{"pkcs11:token=t?pin-value%3D1234&x=1", "pkcs11:token=t?***&x=1"},
		{"tpm:seal;pin=yes?device=/dev/tpmrm0", "tpm:seal;pin=yes?device=/dev/tpmrm0"},
		{"/home/me/key.bin", "/home/me/key.bin"},
		{"token=t;pin-value=1234", "token=***"},
		{"pin-value=1234:x", "***"},
		{"", ""},
	} {
		if got := keyuri.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	u, err := keyuri.Parse("TPM:seal;pcrs=sha256:0,7;x-name=a%3Bb?device=tcp://h:1&pin-value=a%26b;c")
	if err != nil {
		t.Fatal(err)
	}
	want := &keyuri.URI{
		Scheme: "tpm",
		Path:   map[string]string{"pcrs": "sha256:0,7", "x-name": "a;b"},
		Query:  map[string]string{"device": "tcp://h:1", "pin-value": "a&b;c"},
		Opaque: []string{"seal"},
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("Parse = %+v, want %+v", u, want)
	}
	for _, bad := range []string{
		"",
		":x",
		"no-scheme",
		"1pkcs11:token=t",
		"pk cs11:token=t",
		"pkcs11:token=%zz",
		"pkcs11:to%zzken=t",
		"pkcs11:token=a;token=b",
		"pkcs11:token=t?module-path",
		"pkcs11:token=t;pin-value=12;34",   // the rest of a PIN in the path
		"pkcs11:token=t?pin-value=12&34",   // the rest of a PIN in the query
		"pkcs11:token=t;pin-value%3D1234",  // a word that mentions pin-value
		"pkcs11:token=t?x-pin-value=1",     // a name that mentions pin-value
		"pkcs11:token=t?pin-value%3D1=2",   // the same, with a value
		"pkcs11:token=t?pin-value=%zz1234", // the value's bad escape is not shown
	} {
		_, err := keyuri.Parse(bad)
		if !errors.Is(err, keyuri.ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "1234") {
			t.Errorf("Parse(%q): %v shows the PIN", bad, err)
		}
	}
}

// An opaque word that needs escaping used to be formatted raw, so that the
// formatted URI parsed into other words.
func TestStringRoundTrip(t *testing.T) {
	for _, s := range []string{
		"tpm:se%3Bal;pin=yes",
		"tpm:a%3Db;x=1",
		"tpm:%3F?device=x",
		"pkcs11:token=a%20b;id=%00%01%FF?module-path=/x%3Fy&pin-value=p%26q%3Br",
		"raw-aes:namespace=n;name=k?key-file=%2Ftmp%2Fkey",
	} {
		u, err := keyuri.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		back, err := keyuri.Parse(u.String())
		if err != nil || !reflect.DeepEqual(back, u) {
			t.Errorf("Parse(%q).String() = %q parses to %+v (%v), want %+v", s, u.String(), back, err, u)
		}
	}
}

func TestSchemeOf(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"PKCS11:token=t", "pkcs11", true},
		{"raw-aes:x", "raw-aes", true},
		{"a+b.c-d:x", "a+b.c-d", true},
		{"pin-value=1234:x", "", false},
		{"1x:y", "", false},
		{":y", "", false},
		{"no-colon", "", false},
	} {
		got, ok := keyuri.SchemeOf(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("SchemeOf(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// A value that holds another attribute after the other section's separator
// is refused with a hint naming the attribute and the rule; a ';' or '&'
// that is not followed by a known attribute stays part of the value.
func TestCheckSeparatorHint(t *testing.T) {
	known := []string{"token", "object"}
	query := []string{"module-path", "pin-source"}
	for _, c := range []struct{ uri, want string }{
		{"pkcs11:token=t;object=o?module-path=/m.so;pin-source=file:/p", `"module-path" holds ";pin-source=": query attributes (after '?') are separated by '&'`},
		{"pkcs11:token=t&object=o?module-path=/m.so", `"token" holds "&object=": path attributes are separated by ';'`},
		{"pkcs11:token=t;object=o?module-path=/m.so;pin-value=1234", `a value holds ;pin-value=: query attributes (after '?') are separated by '&'`},
		{"pkcs11:token=t;object=a&b?module-path=/a;b.so", ""},
	} {
		u, err := keyuri.Parse(c.uri)
		if err == nil {
			err = u.Check(known, query)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.uri, err)
		case c.want != "" && (!errors.Is(err, keyuri.ErrSyntax) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want ErrSyntax saying %q", c.uri, err, c.want)
		case err != nil && strings.Contains(err.Error(), "1234"):
			t.Errorf("%s: %v shows the PIN", c.uri, err)
		}
	}
}

// TestWrapNamesOnce: Wrap names the key by its path part, without the
// query or a PIN, and does not name it again around an error that does.
func TestWrapNamesOnce(t *testing.T) {
	uri := "pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234"
	base := errors.New("boom")
	err := keyuri.Wrap(uri, base)
	if err.Error() != "key pkcs11:token=t;object=o: boom" || !errors.Is(err, base) {
		t.Fatalf("Wrap = %q", err)
	}
	if again := keyuri.Wrap(uri, fmt.Errorf("outer: %w", err)); strings.Count(again.Error(), "pkcs11:") != 1 {
		t.Fatalf("Wrap twice = %q", again)
	}
	if keyuri.Wrap(uri, nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
}
