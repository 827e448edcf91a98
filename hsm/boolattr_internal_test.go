package hsm

import (
	"errors"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestUnreadableExtractableCountsAsExtractable: a token that does not
// answer CKA_EXTRACTABLE (error, empty or odd-sized value) used to pass as
// non-extractable.
func TestUnreadableExtractableCountsAsExtractable(t *testing.T) {
	attr := func(v []byte) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{{Type: pkcs11.CKA_EXTRACTABLE, Value: v}}
	}
	for _, c := range []struct {
		name string
		a    []*pkcs11.Attribute
		err  error
		want bool
	}{
		{"false", attr([]byte{0}), nil, false},
		{"true", attr([]byte{1}), nil, true},
		{"CKR_ATTRIBUTE_TYPE_INVALID", nil, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID), true},
		{"CKR_ATTRIBUTE_SENSITIVE", attr(nil), pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE), true},
		{"empty value", attr(nil), nil, true},
		{"no attribute", nil, nil, true},
		{"8-byte value", attr(make([]byte, 8)), nil, true},
		{"other error", attr([]byte{0}), errors.New("device error"), true},
	} {
		if got := boolAttr(c.a, c.err, true); got != c.want {
			t.Errorf("%s: extractable = %v, want %v", c.name, got, c.want)
		}
	}
}
