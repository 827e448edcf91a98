package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

func aesKeyring(t testing.TB, name string) *envelope.Keyring {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	k, err := rawaes.New("test", name, key)
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(k)
	return kr
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTripSizes(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k1")
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		for _, frame := range []int{1, 7, 4096, 65536} {
			for _, size := range []int{0, 1, 6, 7, 8, 4095, 4096, 4097, 100_000, 1 << 20} {
				if frame == 1 && size > 5000 {
					continue
				}
				t.Run(fmt.Sprintf("%v/f%d/n%d", suite, frame, size), func(t *testing.T) {
					pt := randBytes(size)
					opts := envelope.EncryptOptions{Suite: suite, FrameSize: frame, Context: envelope.EncryptionContext{"a": "b", "ключ": "値"}}
					msg, err := envelope.Encrypt(ctx, pt, kr, opts)
					if err != nil {
						t.Fatal(err)
					}
					got, h, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{RequiredContext: envelope.EncryptionContext{"ключ": "値"}})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("plaintext differs: got %d bytes, want %d", len(got), len(pt))
					}
					if h.Suite != suite || int(h.FrameLength) != frame || h.Context["a"] != "b" {
						t.Fatalf("header %+v", h)
					}
				})
			}
		}
	}
}

// TestStreamingWritesInSmallPieces feeds the encrypter through odd-sized
// writes and reads the decrypter through odd-sized reads.
func TestStreamingOddChunks(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k1")
	pt := randBytes(3_000_001)
	var buf bytes.Buffer
	e, err := envelope.NewEncrypter(ctx, &buf, kr, envelope.EncryptOptions{FrameSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for rest := pt; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%9973)
		if _, err := e.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := envelope.NewDecrypter(ctx, &buf, kr, envelope.DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	p := make([]byte, 777)
	for {
		n, err := d.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("plaintext differs")
	}
}

func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	msg, err := envelope.Encrypt(ctx, []byte("hello"), aesKeyring(t, "k1"), envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = envelope.Decrypt(ctx, msg, aesKeyring(t, "k1"), envelope.DecryptOptions{})
	if !errors.Is(err, envelope.ErrNoKEK) || !errors.Is(err, rawaes.ErrBadKey) {
		t.Fatalf("got %v", err)
	}
	_, _, err = envelope.Decrypt(ctx, msg, aesKeyring(t, "other"), envelope.DecryptOptions{})
	if !errors.Is(err, envelope.ErrNoKEK) {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}

func TestReadFromAt(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k1")
	const batch = 262 * 1000 // batchFrames(1000) frames of 1000 bytes
	for _, size := range []int{0, 1, 999, 1000, batch - 1, batch, batch + 1, 2 * batch, 5*batch + 17} {
		pt := randBytes(size)
		var buf bytes.Buffer
		e, err := envelope.NewEncrypter(ctx, &buf, kr, envelope.EncryptOptions{FrameSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := e.ReadFromAt(bytes.NewReader(pt), int64(size)); err != nil || n != int64(size) {
			t.Fatalf("size %d: ReadFromAt = %d, %v", size, n, err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		got, _, err := envelope.Decrypt(ctx, buf.Bytes(), kr, envelope.DecryptOptions{})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: round trip: %v", size, err)
		}
	}
	// An input shorter than announced is an error, not a short message.
	e, _ := envelope.NewEncrypter(ctx, io.Discard, kr, envelope.EncryptOptions{FrameSize: 1000})
	if _, err := e.ReadFromAt(bytes.NewReader(randBytes(3*batch)), 4*batch); err == nil {
		if err = e.Close(); err == nil {
			t.Fatal("short input accepted")
		}
	}
}

// A size hint above the real size changes nothing but buffer sizes; more
// plaintext than the hint declared fails with ErrPlaintextSize, on every
// path (caches count a key's use by the declared size).
func TestSizeHints(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k1")
	for _, size := range []int{0, 10, 1000, 262143, 262144, 262145, 600_000} {
		for _, hint := range []int64{0, 1, int64(size), int64(size) + 5000, 100} {
			pt := randBytes(size)
			for _, path := range []string{"write", "readfrom", "readfromat"} {
				var buf bytes.Buffer
				e, err := envelope.NewEncrypter(ctx, &buf, kr, envelope.EncryptOptions{PlaintextSize: hint})
				if err != nil {
					t.Fatal(err)
				}
				switch path {
				case "write":
					_, err = e.Write(pt)
				case "readfrom":
					_, err = e.ReadFrom(bytes.NewReader(pt))
				case "readfromat":
					_, err = e.ReadFromAt(bytes.NewReader(pt), int64(size))
				}
				if cerr := e.Close(); err == nil {
					err = cerr
				}
				if hint > 0 && hint < int64(size) {
					if !errors.Is(err, envelope.ErrPlaintextSize) {
						t.Fatalf("size %d hint %d %s: %v, want ErrPlaintextSize", size, hint, path, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := envelope.Decrypt(ctx, buf.Bytes(), kr, envelope.DecryptOptions{})
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("size %d hint %d %s: %v", size, hint, path, err)
				}
			}
		}
	}
}

// Encrypt checks the declared size too (its one-batch path skips Write).
func TestEncryptDeclaredSizeTooSmall(t *testing.T) {
	_, err := envelope.Encrypt(context.Background(), randBytes(100), aesKeyring(t, "k"), envelope.EncryptOptions{PlaintextSize: 10})
	if !errors.Is(err, envelope.ErrPlaintextSize) {
		t.Fatalf("got %v", err)
	}
}
