package rawecdh_test

import (
	"bytes"
	"crypto/fips140"
	"os"
	"os/exec"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// TestFIPSMode wraps and unwraps on every curve in a child process with
// GODEBUG=fips140=on: key generation, ECDH, HMAC-SHA384 and AES-GCM must
// all come from Go's FIPS 140-3 module and be allowed there.
func TestFIPSMode(t *testing.T) {
	if os.Getenv("HSMENV_FIPS_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestFIPSMode$", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", "HSMENV_FIPS_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("fips140 enabled")) {
			t.Fatalf("FIPS child: %v\n%s", err, out)
		}
		return
	}
	if !fips140.Enabled() {
		t.Fatal("GODEBUG=fips140=on did not enable FIPS 140-3 mode")
	}
	t.Log("fips140 enabled")
	for _, name := range []string{"p256", "p384", "p521"} {
		c := mustCurve(t, name)
		r, s := genKey(t, c), genKey(t, c)
		for _, enc := range []*rawecdh.KEK{rawecdh.NewEphemeral(r.PublicKey()), rawecdh.NewStatic(s, r.PublicKey())} {
			msg, err := envelope.Encrypt(ctx, []byte("fips"), envelope.NewKeyring(enc), envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA, Context: envelope.EncryptionContext{"a": "b"}})
			if err != nil {
				t.Fatalf("%v: %v", enc, err)
			}
			if got, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(rawecdh.NewDiscovery(r)), envelope.DecryptOptions{}); err != nil || string(got) != "fips" {
				t.Fatalf("%v: %v", enc, err)
			}
		}
	}
}
