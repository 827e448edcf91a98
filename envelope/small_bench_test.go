package envelope_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
)

// instantKEK "wraps" by copying: a KEK that costs nothing, so a benchmark
// through it measures the host's own work per message (issue 10: at most
// 5 µs). It is for benchmarks only: it protects nothing.
type instantKEK struct{}

func (instantKEK) Wrap(_ context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	return envelope.EncryptedDataKey{ProviderID: "instant", ProviderInfo: []byte("k"), Ciphertext: bytes.Clone(dek)}, nil
}

func (instantKEK) Claims(edk envelope.EncryptedDataKey) bool { return edk.ProviderID == "instant" }

func (instantKEK) Unwrap(_ context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	return bytes.Clone(edk.Ciphertext), nil
}

// BenchmarkSmallMessage measures 1 KiB messages on one goroutine: with a
// cached data key (the KEK called once), and uncached through instantKEK
// (everything but the KEK call: key draw, HKDF, header, frames, parsing).
func BenchmarkSmallMessage(b *testing.B) {
	ctx := context.Background()
	pt := make([]byte, 1024)
	ec := envelope.EncryptionContext{"tenant": "bench", "purpose": "small-messages"}
	opts := envelope.EncryptOptions{Context: ec}
	cached, err := envelope.NewCachingKeyring(envelope.CacheOptions{MaxAge: time.Hour, MaxMessages: math.MaxUint32}, instantKEK{})
	if err != nil {
		b.Fatal(err)
	}
	uncached := envelope.NewKeyring(instantKEK{})
	report := func(b *testing.B) { b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s") }
	for _, c := range []struct {
		name string
		kr   *envelope.Keyring
	}{{"cached", cached}, {"uncached-instant-kek", uncached}} {
		b.Run(c.name+"/encrypt", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Encrypt(ctx, pt, c.kr, opts); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		msg, err := envelope.Encrypt(ctx, pt, c.kr, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/decrypt", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := envelope.Decrypt(ctx, msg, c.kr, envelope.DecryptOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}
