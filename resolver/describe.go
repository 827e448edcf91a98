package resolver

import (
	"fmt"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// WrapInfo is implemented by every KEK OpenKEK returns: it says how the KEK
// wraps data keys, for diagnostics (hsmenv check). mechanism names the
// algorithm and where it runs ("CKM_AES_GCM in the token",
// "RSA-OAEP-SHA256 on the host"), layout the EDK layout ("ESDK raw AES",
// "hsmenv-tpm-seal"), and unwraps is false for encrypt-only KEKs (a public
// key without its private half).
type WrapInfo interface {
	WrapInfo() (mechanism, layout string, unwraps bool)
}

// Describe returns kek's WrapInfo; for a KEK without one (a caller's own)
// the mechanism is its String, if any, the layout is empty, and it is
// taken to unwrap.
func Describe(kek envelope.KEK) (mechanism, layout string, unwraps bool) {
	if w, ok := kek.(WrapInfo); ok {
		return w.WrapInfo()
	}
	if s, ok := kek.(fmt.Stringer); ok {
		return s.String(), "", true
	}
	return "mechanism not known", "", true
}

// forms lists, for the schemes whose URIs take several forms, each form.
var forms = map[string][]string{tpm.Scheme: tpm.Forms}

// Kinds lists the kinds of KEK OpenKEK opens, as URI prefixes: each
// scheme, or each of its forms ("tpm:seal", "tpm:key-file", "tpm:ek"),
// sorted by scheme.
func Kinds() []string {
	var out []string
	for _, s := range Schemes() {
		if f, ok := forms[s]; ok {
			for _, form := range f {
				out = append(out, s+":"+form)
			}
			continue
		}
		out = append(out, s)
	}
	return out
}
