package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

func TestRangeMatchesStream(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k")
	for _, tc := range []struct{ size, frame int }{{0, 16}, {1, 16}, {16, 16}, {17, 16}, {10_000, 100}, {100_000, 4096}, {1 << 20, 65536}, {3000, 1}} {
		pt := randBytes(tc.size)
		msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{FrameSize: tc.frame})
		if err != nil {
			t.Fatal(err)
		}
		rr, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), kr, envelope.DecryptOptions{})
		if err != nil {
			t.Fatalf("size %d frame %d: %v", tc.size, tc.frame, err)
		}
		if rr.Size() != int64(tc.size) {
			t.Fatalf("Size() = %d, want %d", rr.Size(), tc.size)
		}
		rng := rand.New(rand.NewPCG(1, uint64(tc.size)))
		for i := 0; i < 200; i++ {
			off := rng.IntN(tc.size + 2)
			n := rng.IntN(3*tc.frame + 2)
			p := make([]byte, n)
			got, err := rr.ReadAt(p, int64(off))
			wantEnd := min(off+n, tc.size)
			want := []byte{}
			if off < tc.size {
				want = pt[off:wantEnd]
			}
			if got != len(want) || !bytes.Equal(p[:got], want) {
				t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d", n, off, got, len(want))
			}
			if got < n && err != io.EOF {
				t.Fatalf("short read without io.EOF: %v", err)
			}
			if got == n && err != nil && err != io.EOF {
				t.Fatalf("full read with error %v", err)
			}
		}
		// The whole plaintext through a SectionReader.
		all, err := io.ReadAll(io.NewSectionReader(rr, 0, rr.Size()))
		if err != nil || !bytes.Equal(all, pt) {
			t.Fatalf("full read: %v", err)
		}
		rr.Close()
	}
}

// TestRangeReadsOnlyCoveredFrames checks the frame accounting: one frame for
// a range inside a frame, two for a range across a boundary.
func TestRangeReadsOnlyCoveredFrames(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k")
	pt := randBytes(1 << 20)
	msg, _ := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{FrameSize: 4096})
	counting := &countingReaderAt{r: bytes.NewReader(msg)}
	rr, err := envelope.OpenRange(ctx, counting, int64(len(msg)), kr, envelope.DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, baseBytes := rr.FramesRead(), counting.n
	p := make([]byte, 4096)
	rr.ReadAt(p, 8192) // exactly frame 3
	if got := rr.FramesRead() - base; got != 1 {
		t.Fatalf("aligned 4 KiB read used %d frames", got)
	}
	rr.ReadAt(p, 8192+100) // frames 3 and 4
	if got := rr.FramesRead() - base; got != 3 {
		t.Fatalf("unaligned 4 KiB read used %d frames", got-1)
	}
	if read := counting.n - baseBytes; read > 3*(4096+32) {
		t.Fatalf("read %d bytes of ciphertext for 3 frames", read)
	}
	if !bytes.Equal(p, pt[8192+100:8192+100+4096]) {
		t.Fatal("wrong plaintext")
	}
}

type countingReaderAt struct {
	r io.ReaderAt
	n int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += n
	return n, err
}

func TestRangeRefusesSigned(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k")
	msg, _ := envelope.Encrypt(ctx, []byte("signed"), kr, envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA})
	_, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), envelope.NewKeyring(refusingKEK{t}), envelope.DecryptOptions{})
	if !errors.Is(err, envelope.ErrRange) {
		t.Fatalf("got %v", err)
	}
}

// refusingKEK fails the test if called: OpenRange must refuse what it
// cannot serve before any device call.
type refusingKEK struct{ t *testing.T }

func (k refusingKEK) Wrap(context.Context, []byte, envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	k.t.Fatal("KEK asked to wrap a data key")
	return envelope.EncryptedDataKey{}, nil
}

func (k refusingKEK) Claims(envelope.EncryptedDataKey) bool {
	k.t.Fatal("KEK asked about an EDK of a message OpenRange refuses")
	return false
}

func (k refusingKEK) Unwrap(context.Context, envelope.EncryptedDataKey, envelope.EncryptionContext) ([]byte, error) {
	k.t.Fatal("KEK asked to open a data key of a message OpenRange refuses")
	return nil, nil
}

func TestRangeRejectsTruncationAndExtension(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k")
	msg, _ := envelope.Encrypt(ctx, randBytes(10_000), kr, envelope.EncryptOptions{FrameSize: 1000})
	for _, bad := range [][]byte{msg[:len(msg)-1], msg[:len(msg)-1040], append(append([]byte{}, msg...), 0), msg[:len(msg)-40]} {
		_, err := envelope.OpenRange(ctx, bytes.NewReader(bad), int64(len(bad)), kr, envelope.DecryptOptions{})
		if err == nil {
			t.Fatalf("accepted a %d-byte message (original %d)", len(bad), len(msg))
		}
	}
}

func TestDecryptAt(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "k")
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		for _, tc := range []struct{ size, frame int }{{0, 64}, {1, 64}, {64, 64}, {1 << 20, 4096}, {3<<20 + 7, 65536}, {5000, 1}} {
			pt := randBytes(tc.size)
			msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Suite: suite, FrameSize: tc.frame})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			h, err := envelope.DecryptAt(ctx, bytes.NewReader(msg), int64(len(msg)), &out, kr, envelope.DecryptOptions{})
			if err != nil || !bytes.Equal(out.Bytes(), pt) || h.Suite != suite {
				t.Fatalf("suite %v size %d frame %d: %v", suite, tc.size, tc.frame, err)
			}
			// A flipped byte in the middle: an error, and nothing written
			// from the damaged frame on.
			if tc.size > 0 {
				bad := append([]byte(nil), msg...)
				bad[len(bad)/2] ^= 1
				out.Reset()
				if _, err := envelope.DecryptAt(ctx, bytes.NewReader(bad), int64(len(bad)), &out, kr, envelope.DecryptOptions{}); err == nil {
					t.Fatal("damaged message accepted")
				}
				if !bytes.Equal(out.Bytes(), pt[:out.Len()]) || out.Len() >= tc.size {
					t.Fatalf("released %d bytes of a damaged %d-byte message, or wrong ones", out.Len(), tc.size)
				}
			}
		}
	}
}
