package pintest

import (
	"reflect"
	"strings"
	"testing"
)

func TestSwap(t *testing.T) {
	for _, c := range []struct {
		in, placeholder string
		forms           []string
	}{
		{"pkcs11:token=t;object=o", "pkcs11:token=t;object=o", nil},
		{"pkcs11:token=t?pin-value=1234&module-path=/m.so", "pkcs11:token=t?pin-value=Z&module-path=/m.so", []string{"1234", "1234", "1234", "1234"}},
		{"pkcs11:token=t?pin-value=", "pkcs11:token=t?pin-value=", []string{"", "", "", ""}},
		{"pkcs11:token=t?pin-value=S3cr%zz", "pkcs11:token=t?pin-value=%Z", []string{"S3cr%zz"}},
		{"pkcs11:token=t?pin-value=a%20b", "pkcs11:token=t?pin-value=Z", []string{"a%20b", "a b", "a%20b", "a+b"}},
		{"pkcs11:pin%2Dvalue=1;x=y?PIN-Value=2&pin-value", "pkcs11:pin%2Dvalue=Z;x=y?PIN-Value=Z&pin-value", []string{"1", "1", "1", "1", "2", "2", "2", "2"}},
		{"pin-value=S3cretI2", "pin-value=Z", []string{"S3cretI2", "S3cretI2", "S3cretI2", "S3cretI2"}},
		{"x:pin-value=a=b?pin-value=c;d", "x:pin-value=Z?pin-value=Z", []string{"a=b", "a=b", "a=b", "a%3Db", "c;d", "c;d", "c%3Bd", "c%3Bd"}},
		{"x:pin-value%zz=1", "x:pin-value%zz=1", nil},
	} {
		p, forms := Swap(c.in)
		if p != c.placeholder || !reflect.DeepEqual(forms, c.forms) {
			t.Errorf("Swap(%q) = %q, %q; want %q, %q", c.in, p, forms, c.placeholder, c.forms)
		}
	}
}

func TestReplace(t *testing.T) {
	got, raws := Replace("tpm:seal;pin-value=a?device=d&pin-value=&Pin%2dValue=%zz", func(raw string) string { return "<" + raw + ">" })
	if want := "tpm:seal;pin-value=<a>?device=d&pin-value=<>&Pin%2dValue=<%zz>"; got != want {
		t.Errorf("Replace = %q, want %q", got, want)
	}
	if want := []string{"a", "", "%zz"}; !reflect.DeepEqual(raws, want) {
		t.Errorf("raw values %q, want %q", raws, want)
	}
}

func TestCheck(t *testing.T) {
	if err := Check("m", "pin-value=***", "pin-value=***", []string{"1234"}); err != nil {
		t.Error(err)
	}
	if err := Check("m", "object=1234 pin-value=***", "object=1234 pin-value=***", []string{"1234"}); err != nil {
		t.Errorf("a form the placeholder message shows too: %v", err)
	}
	if err := Check("m", "pin-value=1234", "pin-value=Z", []string{"1234"}); err == nil || !strings.Contains(err.Error(), "m depends on a pin-value") {
		t.Errorf("a message with the PIN: %v", err)
	}
}

func TestNoSecret(t *testing.T) {
	if err := NoSecret("m", "pin-value=***", []string{"S3cret", "a b"}); err != nil {
		t.Error(err)
	}
	for _, c := range []struct{ text, secret, shown string }{
		{"x S3cret y", "S3cret", `"S3cret"`},
		{"x a%20b y", "a b", `"a%20b"`},
		{"x a+b y", "a b", `"a+b"`},
		{"x a b y", "a%20b", `"a b"`},
	} {
		if err := NoSecret("m", c.text, []string{"", c.secret}); err == nil || !strings.Contains(err.Error(), "m shows "+c.shown) {
			t.Errorf("NoSecret(%q, %q) = %v, want it to name %s", c.text, c.secret, err, c.shown)
		}
	}
}
