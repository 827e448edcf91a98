package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// decryptBufferLimit is what the decrypter's job buffers may take whatever
// the frame size and core count: the frame size is the sender's choice (up
// to MaxFrameSize), so it must not multiply memory by the number of cores.
// With the Go runtime and the read buffer it keeps peak RSS under 64 MiB.
const decryptBufferLimit = 40 << 20

// TestDecryptMemoryBoundedInBytes: a 16 MiB-frame message decrypted with 16
// or 64 workers held 34 or 130 jobs of 32 MiB (1 GB, 4 GB) before the
// pipeline was bounded in bytes.
func TestDecryptMemoryBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "mem")
	for _, frame := range []int{4096, 64 << 10, 1 << 20, 4 << 20, 16 << 20} {
		msg, err := envelope.Encrypt(ctx, []byte("small"), kr, envelope.EncryptOptions{FrameSize: frame})
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 16, 64} {
			d, err := envelope.NewDecrypter(ctx, bytes.NewReader(msg), kr, envelope.DecryptOptions{Concurrency: workers})
			if err != nil {
				t.Fatal(err)
			}
			if n := envelope.DecrypterBufferBytes(d); n > decryptBufferLimit {
				t.Errorf("frame %d, %d workers: job buffers up to %d MiB, want at most %d MiB", frame, workers, n>>20, decryptBufferLimit>>20)
			}
			got, err := io.ReadAll(d)
			if err != nil || string(got) != "small" {
				t.Errorf("frame %d, %d workers: %q, %v", frame, workers, got, err)
			}
		}
	}
}

// TestLargeFramesManyWorkers decrypts (streaming and ranged) a message of
// several 16 MiB frames with more workers than the byte bound lets run.
func TestLargeFramesManyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("48 MiB message")
	}
	ctx := context.Background()
	kr := aesKeyring(t, "big")
	pt := randBytes(3<<24 - 12345)
	msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{FrameSize: 16 << 20, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 16} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			d, err := envelope.NewDecrypter(ctx, bytes.NewReader(msg), kr, envelope.DecryptOptions{Concurrency: workers})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := d.WriteTo(&out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), pt) {
				t.Fatal("streaming decrypt differs")
			}
			out.Reset()
			if _, err := envelope.DecryptAt(ctx, bytes.NewReader(msg), int64(len(msg)), &out, kr, envelope.DecryptOptions{Concurrency: workers}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), pt) {
				t.Fatal("DecryptAt differs")
			}
		})
	}
}
