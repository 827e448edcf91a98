package hsm_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/kektemplate"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// A key imported from known bytes (the test harness, kektemplate) gets the
// attributes Generate gives a key made for the same mechanism, and opens
// with that mechanism.
func TestImportedKeyLikeGenerated(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, c := range []struct {
		mech string
		use  kektemplate.Usage
	}{{hsm.MechAESGCM, kektemplate.AESEncrypt}, {hsm.MechAESKW, kektemplate.AESWrap}} {
		gen := generate(t, tok.URI("gen-"+c.mech, "x-mechanism="+c.mech), hsm.KeyAES256)
		key := make([]byte, 32)
		rand.Read(key)
		tok.ImportAESKey(t, "imp-"+c.mech, key, c.use)
		keys, err := hsm.List(ctx, tok.URI("imp-"+c.mech))
		if err != nil || len(keys) != 1 {
			t.Fatalf("List: %v %v", keys, err)
		}
		imp := keys[0]
		// CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE are false for
		// any key created from its bytes.
		same := func(k hsm.KeyInfo) string {
			return fmt.Sprint(k.Class, k.Type, k.Bits, k.Token, k.Sensitive, k.Extractable, k.Usage)
		}
		if same(imp) != same(*gen) {
			t.Fatalf("%s: imported %+v, generated %+v", c.mech, imp, *gen)
		}
		kek, err := hsm.OpenURI(ctx, tok.URI("imp-"+c.mech))
		if err != nil {
			t.Fatal(err)
		}
		if kek.Mechanism() != c.mech {
			t.Fatalf("imported key for %s opens with %s", c.mech, kek.Mechanism())
		}
		roundTrip(t, kek)
	}
}

// TestGenerateFailureNamesTokenAndKey: a token that refuses to make the key
// (NSS without a database holds no token objects) is one error naming the
// key type, the label and the token, with the PKCS#11 reason.
func TestGenerateFailureNamesTokenAndKey(t *testing.T) {
	nss := softhsmtest.NewNSS(t)
	_, err := hsm.Generate(context.Background(), nss.URI("no-room"), hsm.KeyECP256)
	if err == nil {
		t.Fatal("NSS without a database made a token object")
	}
	t.Log(err)
	for _, want := range []string{"generating the ec-p256 key", "object=no-room", "token", "CKR_"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not say %q", err, want)
		}
	}
}
