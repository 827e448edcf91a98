package hsm_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// tpm2-pkcs11 refuses RSA key templates that say CKA_SIGN or CKA_VERIFY
// false; its profile leaves them to the token, so keygen works there, and
// the RSA KEK round-trips with each OAEP padding. It has no AES or ECDH
// mechanism for a KEK, which keygen says.
func TestTPM2PKCS11(t *testing.T) {
	for _, typ := range []string{hsm.KeyRSA2048, hsm.KeyRSA3072} {
		t.Run(typ, func(t *testing.T) {
			tok := softhsmtest.NewTPM2(t)
			ki := generate(t, tok.URI("kek"), typ)
			if !slices.Contains(ki.Usage, "decrypt") || !slices.Contains(ki.Usage, "sign") {
				t.Fatalf("usage %v: want decrypt, and sign (the token sets it)", ki.Usage)
			}
			for _, padding := range []string{"", "oaep-sha1", "oaep-sha256", "oaep-sha384"} {
				var extra []string
				if padding != "" {
					extra = append(extra, "x-padding="+padding)
				}
				kek, err := hsm.OpenURI(ctx, tok.URI("kek", extra...))
				if err != nil {
					t.Fatal(err)
				}
				if kek.Mechanism() != hsm.MechRSAOAEP || (padding == "" && !strings.Contains(fmt.Sprint(kek), "oaep-sha256")) {
					t.Fatalf("%v: want rsa-oaep, by default with oaep-sha256", kek)
				}
				roundTrip(t, kek)
			}
		})
	}
	t.Run("no-aes-no-ecdh", func(t *testing.T) {
		tok := softhsmtest.NewTPM2(t)
		for typ, says := range map[string]string{hsm.KeyAES256: "use an RSA KEK", hsm.KeyECP256: "CKM_ECDH1_DERIVE"} {
			if _, err := hsm.Generate(ctx, tok.URI(typ), typ); !errors.Is(err, hsm.ErrMechanism) || !strings.Contains(err.Error(), says) {
				t.Errorf("%s: %v, want ErrMechanism saying %q", typ, err, says)
			}
		}
	})
	// Under the generic profile, which asks for CKA_SIGN false, the token
	// refuses the key: the profile is what makes keygen work.
	t.Run("generic-profile", func(t *testing.T) {
		tok := softhsmtest.NewTPM2(t)
		if _, err := hsm.Generate(ctx, tok.URI("kek", "x-profile=generic"), hsm.KeyRSA2048); err == nil {
			t.Fatal("tpm2-pkcs11 made an RSA key with CKA_SIGN and CKA_VERIFY false; the tpm2 profile's KeygenOmit may be unneeded")
		}
	})
}
