package envelope_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/hsmenv/hsmenv/internal/fipstest"

	"github.com/hsmenv/hsmenv/envelope"
)

// TestFIPSMode runs a round trip of both suites, a ranged read and a
// raw AES KEK in a child process with GODEBUG=fips140=on (Go's FIPS 140-3
// mode, docs/threat-model.md): every primitive hsmenv uses must come from
// the module and be allowed there.
func TestFIPSMode(t *testing.T) {
	if !fipstest.InChild(t, "TestFIPSMode") {
		return
	}
	ctx := context.Background()
	kr := aesKeyring(t, "fips")
	pt := randBytes(300_000)
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Suite: suite, FrameSize: 4096, Context: envelope.EncryptionContext{"a": "b"}})
		if err != nil {
			t.Fatalf("%v encrypt: %v", suite, err)
		}
		got, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%v decrypt: %v", suite, err)
		}
		if suite == envelope.SuiteCommit {
			rr, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), kr, envelope.DecryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, 5000)
			if _, err := rr.ReadAt(p, 123_456); err != nil || !bytes.Equal(p, pt[123_456:128_456]) {
				t.Fatalf("range in FIPS mode: %v", err)
			}
			rr.Close()
		}
	}
}
