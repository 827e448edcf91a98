package envelope_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// BenchmarkAESGCMSingleCore is the ceiling the streaming benchmarks are
// measured against: one core sealing 64 KiB blocks in a loop.
func BenchmarkAESGCMSingleCore(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	pt := make([]byte, 64<<10)
	out := make([]byte, 0, len(pt)+16)
	iv := make([]byte, 12)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		out = aead.Seal(out[:0], iv, pt, iv)
	}
}

var benchSizes = []struct {
	name string
	n    int64
}{{"1MiB", 1 << 20}, {"64MiB", 64 << 20}, {"1GiB", 1 << 30}}

// benchFiles writes (once per size) a plaintext file and its message into a
// shared temporary directory, so the benchmarks read page-cached files as
// the CLI does.
func benchFiles(b *testing.B, kr *envelope.Keyring, n int64, frame int) (plain, sealed string) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "hsmenv-bench")
	os.MkdirAll(dir, 0o700)
	plain = filepath.Join(dir, fmt.Sprintf("plain-%d", n))
	if st, err := os.Stat(plain); err != nil || st.Size() != n {
		f, err := os.Create(plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(f, zeroReader{}, n); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	sealed = filepath.Join(dir, fmt.Sprintf("sealed-%d-%d", n, frame))
	if st, err := os.Stat(sealed); err == nil && st.Size() > n {
		return plain, sealed
	}
	in, _ := os.Open(plain)
	defer in.Close()
	out, err := os.Create(sealed)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	e, err := envelope.NewEncrypter(context.Background(), out, kr, envelope.EncryptOptions{FrameSize: frame})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(e, in); err != nil {
		b.Fatal(err)
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	return plain, sealed
}

// benchKeyring has a fixed key, so the files benchFiles made in an earlier
// run still open.
func benchKeyring(b *testing.B) *envelope.Keyring {
	k, err := rawaes.New("bench", "bench", make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	kr := envelope.NewKeyring(k)
	return kr
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func benchEncryptFile(b *testing.B, kr *envelope.Keyring, path string, n int64, opts envelope.EncryptOptions) {
	b.SetBytes(n)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		e, err := envelope.NewEncrypter(context.Background(), io.Discard, kr, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.ReadFromAt(f, n); err != nil {
			b.Fatal(err)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// benchDecryptFile decrypts a file as the CLI does (DecryptAt: workers read
// their own frames).
func benchDecryptFile(b *testing.B, kr *envelope.Keyring, path string, n int64) {
	b.SetBytes(n)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		if _, err := envelope.DecryptAt(context.Background(), f, st.Size(), io.Discard, kr, envelope.DecryptOptions{}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// benchDecryptStream decrypts through NewDecrypter, the path of pipes.
func benchDecryptStream(b *testing.B, kr *envelope.Keyring, path string, n int64) {
	b.SetBytes(n)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		d, err := envelope.NewDecrypter(context.Background(), f, kr, envelope.DecryptOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, d); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkEncrypt(b *testing.B) {
	kr := benchKeyring(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			plain, _ := benchFiles(b, kr, s.n, envelope.DefaultFrameSize)
			benchEncryptFile(b, kr, plain, s.n, envelope.EncryptOptions{})
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	kr := benchKeyring(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			_, sealed := benchFiles(b, kr, s.n, envelope.DefaultFrameSize)
			benchDecryptFile(b, kr, sealed, s.n)
		})
	}
}

func BenchmarkDecryptStream(b *testing.B) {
	kr := benchKeyring(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			_, sealed := benchFiles(b, kr, s.n, envelope.DefaultFrameSize)
			benchDecryptStream(b, kr, sealed, s.n)
		})
	}
}

// BenchmarkFrameSize is the measurement behind DefaultFrameSize.
func BenchmarkFrameSize(b *testing.B) {
	kr := benchKeyring(b)
	const n = 64 << 20
	for _, frame := range []int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("encrypt/%dKiB", frame>>10), func(b *testing.B) {
			plain, _ := benchFiles(b, kr, n, frame)
			benchEncryptFile(b, kr, plain, n, envelope.EncryptOptions{FrameSize: frame})
		})
		b.Run(fmt.Sprintf("decrypt/%dKiB", frame>>10), func(b *testing.B) {
			_, sealed := benchFiles(b, kr, n, frame)
			benchDecryptFile(b, kr, sealed, n)
		})
	}
}

func BenchmarkEncryptSigned(b *testing.B) {
	kr := benchKeyring(b)
	plain, _ := benchFiles(b, kr, 64<<20, envelope.DefaultFrameSize)
	benchEncryptFile(b, kr, plain, 64<<20, envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA})
}

// BenchmarkAESGCMAllCores is the same loop on every core at once: the real
// ceiling of the machine (two vCPUs may share one core's AES units).
func BenchmarkAESGCMAllCores(b *testing.B) {
	b.SetBytes(64 << 10)
	b.RunParallel(func(pb *testing.PB) {
		block, _ := aes.NewCipher(make([]byte, 32))
		aead, _ := cipher.NewGCM(block)
		pt := make([]byte, 64<<10)
		out := make([]byte, 0, len(pt)+16)
		iv := make([]byte, 12)
		for pb.Next() {
			out = aead.Seal(out[:0], iv, pt, iv)
		}
	})
}
