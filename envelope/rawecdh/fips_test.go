package rawecdh_test

import (
	"testing"

	"github.com/hsmenv/hsmenv/internal/fipstest"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// TestFIPSMode wraps and unwraps on every curve in a child process with
// GODEBUG=fips140=on: key generation, ECDH, HMAC-SHA384 and AES-GCM must
// all come from Go's FIPS 140-3 module and be allowed there.
func TestFIPSMode(t *testing.T) {
	if !fipstest.InChild(t, "TestFIPSMode") {
		return
	}
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
