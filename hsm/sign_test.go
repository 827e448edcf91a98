package hsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// An EC P-256 signing key in a token signs in the token: the signature
// verifies under its public key; a derive-only key (hsmenv keygen's) is
// refused.
func TestSigner(t *testing.T) {
	tool := softhsmtest.Require(t, "OpenSC (pkcs11-tool)", "pkcs11-tool")
	tok := softhsmtest.New(t, softhsmtest.Options{})
	cmd := exec.Command(tool, "--module", tok.Module, "--token-label", tok.Label, "--login", "--pin", tok.PIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "authority", "--usage-sign")
	cmd.Env = append(os.Environ(), tok.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	s, err := hsm.OpenSigner(ctx, tok.URI("authority"))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("approved policy"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("the token's signature does not verify under its public key")
	}
	digest[0] ^= 1
	if ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("the signature verifies another digest")
	}
	generate(t, tok.URI("derive-only"), hsm.KeyECP256)
	if _, err := hsm.OpenSigner(ctx, tok.URI("derive-only")); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("a derive-only key: %v", err)
	}
}
