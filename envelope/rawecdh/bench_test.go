package rawecdh

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// The benchmarks report ops/s of the software KEK on P-256 and P-384:
// Wrap (ephemeral: a key pair, one ECDH, the KDF, AES-GCM), Unwrap
// (discovery: two point decompressions, one ECDH, the KDF, AES-GCM), and
// beside them the bare cost of one crypto/ecdh ECDH plus the KDF, which
// bounds both.

var benchContext = envelope.EncryptionContext{"purpose": "bench", "aws-crypto-public-key": "A0ADx1w7j+2kgmHWmQzscUbXqMKZ5OdNuJvbM7Ps1QVc6Ll1CdOV3n2cljh9mgF/XQ=="}

func benchCurves(b *testing.B, run func(b *testing.B, c ecdh.Curve)) {
	for _, name := range []string{"p256", "p384"} {
		c, _ := Curve(name)
		b.Run(name, func(b *testing.B) { run(b, c) })
	}
}

func opsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkWrap(b *testing.B) {
	benchCurves(b, func(b *testing.B, c ecdh.Curve) {
		r, _ := c.GenerateKey(rand.Reader)
		kek := NewEphemeral(r.PublicKey())
		dek := make([]byte, 32)
		for b.Loop() {
			if _, err := kek.Wrap(context.Background(), dek, benchContext); err != nil {
				b.Fatal(err)
			}
		}
		opsPerSec(b)
	})
}

func BenchmarkUnwrap(b *testing.B) {
	benchCurves(b, func(b *testing.B, c ecdh.Curve) {
		r, _ := c.GenerateKey(rand.Reader)
		edk, err := NewEphemeral(r.PublicKey()).Wrap(context.Background(), make([]byte, 32), benchContext)
		if err != nil {
			b.Fatal(err)
		}
		kek := NewDiscovery(r)
		for b.Loop() {
			key, err := kek.Unwrap(context.Background(), edk, benchContext)
			if err != nil {
				b.Fatal(err)
			}
			clear(key)
		}
		opsPerSec(b)
	})
}

// BenchmarkECDHKDF is one crypto/ecdh ECDH and the 64-byte KDF over a
// FixedInfo of the same size, nothing else.
func BenchmarkECDHKDF(b *testing.B) {
	benchCurves(b, func(b *testing.B, c ecdh.Curve) {
		r, _ := c.GenerateKey(rand.Reader)
		s, _ := c.GenerateKey(rand.Reader)
		ctx, _ := benchContext.Serialize()
		cv := curveOf(c)
		fixed := fixedInfo(cv, Compressed(s.PublicKey()), Compressed(r.PublicKey()), ctx)
		salt := make([]byte, saltLen)
		for b.Loop() {
			z, err := r.ECDH(s.PublicKey())
			if err != nil {
				b.Fatal(err)
			}
			clear(deriveKeys(z, fixed, salt))
		}
		opsPerSec(b)
	})
}
