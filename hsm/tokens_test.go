package hsm_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// wrapInfo is resolver.WrapInfo (resolver imports hsm).
type wrapInfo interface {
	WrapInfo() (mechanism, layout string, unwraps bool)
}

// Every KEK OpenURI returns says how it wraps, in the token's terms.
func TestWrapInfo(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, c := range []struct{ keyType, extra, mech, layout string }{
		{hsm.KeyAES256, "", "CKM_AES_GCM in the token", "ESDK raw AES"},
		{hsm.KeyAES256, "x-mechanism=aes-kw", "CKM_AES_KEY_WRAP (RFC 3394) in the token", hsm.ProviderKW},
		{hsm.KeyAES256, "x-mechanism=aes-kwp", "CKM_AES_KEY_WRAP_PAD (RFC 5649) in the token", hsm.ProviderKW},
		{hsm.KeyRSA2048, "", "RSA-OAEP-SHA1: CKM_RSA_PKCS_OAEP in the token, wrap on the host", "ESDK raw RSA"},
		{hsm.KeyECP384, "", "ECDH P-384: CKM_ECDH1_DERIVE in the token, wrap on the host", "ESDK raw ECDH"},
	} {
		uri := tok.URI(c.keyType+c.extra, c.extra)
		generate(t, uri, c.keyType)
		kek, err := hsm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := kek.(wrapInfo)
		if !ok {
			t.Fatalf("%s has no WrapInfo", kek)
		}
		if m, l, u := w.WrapInfo(); m != c.mech || l != c.layout || !u {
			t.Errorf("%s: WrapInfo() = %q, %q, %v; want %q, %q", kek, m, l, u, c.mech, c.layout)
		}
	}
}

// ListSlots describes the token without logging in, with the URI prefix
// that opens it; its capabilities follow the mechanisms the token lists.
func TestListSlots(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Mechanisms: []string{"CKM_AES_GCM", "CKM_AES_KEY_GEN", "CKM_RSA_PKCS_OAEP", "CKM_RSA_PKCS_KEY_PAIR_GEN"}})
	slots, err := hsm.ListSlots(tok.Module, true)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(slots, func(s hsm.SlotInfo) bool { return s.Token != nil && s.Token.Label == tok.Label })
	if i < 0 {
		t.Fatalf("token %s not listed: %+v", tok.Label, slots)
	}
	ti := slots[i].Token
	if ti.URI != "pkcs11:token="+tok.Label+"?module-path="+tok.Module || ti.Profile != "softhsm2" || !strings.HasPrefix(ti.Model, "SoftHSM") {
		t.Errorf("token: %+v", ti)
	}
	c := ti.Capabilities
	if c == nil || !slices.Equal(c.KEKs, []string{"aes-gcm", "rsa-oaep (oaep-sha1)"}) || !slices.Equal(c.Keygen, []string{"aes-256", "rsa-2048", "rsa-3072"}) {
		t.Errorf("capabilities: %+v", c)
	}
	generate(t, ti.URI[:strings.Index(ti.URI, "?")]+";object=k?module-path="+tok.Module+"&pin-source=file:"+tok.PINFile, hsm.KeyAES256)
	if _, err := hsm.ListSlots(t.TempDir()+"/missing.so", false); err == nil {
		t.Error("ListSlots of a missing module")
	}
}

func TestTokenFlagNames(t *testing.T) {
	got := hsm.TokenFlagNames(pkcs11.CKF_USER_PIN_LOCKED | pkcs11.CKF_TOKEN_INITIALIZED | pkcs11.CKF_WRITE_PROTECTED | pkcs11.CKF_USER_PIN_FINAL_TRY | 1<<31)
	if !slices.Equal(got, []string{"initialized", "user-pin-locked", "user-pin-final-try", "write-protected"}) {
		t.Errorf("TokenFlagNames = %v", got)
	}
	if got := hsm.TokenFlagNames(0); got == nil || len(got) != 0 {
		t.Errorf("TokenFlagNames(0) = %#v, want empty, not nil (JSON [])", got)
	}
}
