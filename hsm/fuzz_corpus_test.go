package hsm_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// TestWriteProviderInfoCorpus writes the FuzzProviderInfo seeds
// (fuzz_test.go) from real EDKs: a SoftHSM2 token wraps a data key with a
// KEK of each mechanism it has (AES-GCM, AES key wrap with and without
// padding, RSA-OAEP), and each EDK becomes a corpus file (provider id,
// provider info, ciphertext, key name). Run with
// HSMENV_WRITE_FUZZ_CORPUS=1; without it, it checks that the corpus holds
// an EDK of every mechanism and that a token claims its own EDKs.
func TestWriteProviderInfoCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzProviderInfo")
	if os.Getenv("HSMENV_WRITE_FUZZ_CORPUS") == "" {
		for _, mech := range []string{hsm.MechAESGCM, hsm.MechAESKW, hsm.MechAESKWP, hsm.MechRSAOAEP} {
			files, _ := filepath.Glob(filepath.Join(dir, "softhsm-"+mech+"-*"))
			if len(files) == 0 {
				t.Errorf("no SoftHSM2 %s seed in %s", mech, dir)
			}
		}
		return
	}
	tok := softhsmtest.New(t, softhsmtest.Options{})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ object, typ, mech string }{
		{"aes-gcm-kek", hsm.KeyAES256, hsm.MechAESGCM},
		{"aes-kw-kek", hsm.KeyAES256, hsm.MechAESKW},
		{"aes-kwp-kek", hsm.KeyAES256, hsm.MechAESKWP},
		{"rsa2048-kek", hsm.KeyRSA2048, hsm.MechRSAOAEP},
	} {
		uri := tok.URI(c.object, "x-mechanism="+c.mech)
		generate(t, uri, c.typ)
		kek, err := hsm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{16, 24, 32} {
			dek := bytes.Repeat([]byte{byte(n)}, n)
			ec := envelope.EncryptionContext{"purpose": "fuzz-seed"}
			edk, err := kek.Wrap(ctx, dek, ec)
			if err != nil {
				t.Fatalf("%s: %v", c.mech, err)
			}
			if !kek.Claims(edk) {
				t.Fatalf("%s does not claim its own EDK", c.mech)
			}
			if got, err := kek.Unwrap(ctx, edk, ec); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("%s: unwrap: %v", c.mech, err)
			}
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			fmt.Fprintf(&b, "string(%q)\n[]byte(%q)\n[]byte(%q)\nstring(%q)\n", edk.ProviderID, edk.ProviderInfo, edk.Ciphertext, c.object)
			name := fmt.Sprintf("softhsm-%s-dek%d", c.mech, n)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
