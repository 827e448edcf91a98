package envelope_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha512"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// BenchmarkDeriveKeys is the per-message key schedule of suite 0478: HKDF
// extract, then the content and commit keys.
func BenchmarkDeriveKeys(b *testing.B) {
	dek, id := make([]byte, 32), make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := envelope.DeriveKeys(envelope.SuiteCommit, dek, id); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHKDFMatchesStandard: the key schedule of the committing suites equals
// crypto/hkdf's HKDF-SHA512 (RFC 5869) for random inputs.
func TestHKDFMatchesStandard(t *testing.T) {
	for range 100 {
		dek, id := randBytes(32), randBytes(32)
		for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
			content, commit, err := envelope.DeriveKeys(suite, dek, id)
			if err != nil {
				t.Fatal(err)
			}
			prk, _ := hkdf.Extract(sha512.New, dek, id)
			info := string([]byte{byte(suite >> 8), byte(suite)}) + "DERIVEKEY"
			wantContent, _ := hkdf.Expand(sha512.New, prk, info, 32)
			wantCommit, _ := hkdf.Expand(sha512.New, prk, "COMMITKEY", 32)
			if !bytes.Equal(content, wantContent) || !bytes.Equal(commit, wantCommit) {
				t.Fatalf("suite %s: keys differ from crypto/hkdf", suite)
			}
		}
	}
}
