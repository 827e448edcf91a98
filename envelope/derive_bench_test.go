package envelope_test

import (
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
