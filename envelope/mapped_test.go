package envelope_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/mmapfile"
)

// mapFile writes b to a file and maps it with small windows (so views cross
// window ends and get mappings of their own), or with opts.
func mapFile(t *testing.T, b []byte, opts mmapfile.Options) (*mmapfile.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mmapfile.OpenOptions(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, path
}

var smallWindows = mmapfile.Options{Window: 64 << 10, Overlap: 16 << 10, MaxMapped: 1 << 20}

// TestMappedPaths: encrypting from and decrypting from a mapped file gives
// the same results as the copying paths, for sizes around batch and frame
// ends, with default and small windows.
func TestMappedPaths(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "mapped")
	for _, opts := range []mmapfile.Options{{}, smallWindows} {
		for _, c := range []struct{ size, frame int }{
			{0, 0}, {1, 0}, {65535, 0}, {65536, 0}, {256<<10 + 1, 0}, {3<<20 + 7, 0},
			{1 << 20, 4096}, {300_001, 1000}, {5 << 20, 1 << 20}, {2 << 20, 3 << 20},
		} {
			pt := randBytes(c.size)
			src, _ := mapFile(t, pt, opts)
			var msg bytes.Buffer
			enc, err := envelope.NewEncrypter(ctx, &msg, kr, envelope.EncryptOptions{FrameSize: c.frame, Concurrency: 3})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := enc.ReadFromAt(src, src.Size()); err != nil || n != int64(c.size) {
				t.Fatalf("size %d: ReadFromAt %d, %v", c.size, n, err)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			frame := cmp.Or(c.frame, envelope.DefaultFrameSize)
			batch := max(1, (1<<20)/frame) * frame // the encrypter's batch from a mapping: only the last one is read by copy
			if st := src.Stats(); c.size > batch && st.Windows+st.Exact == 0 {
				t.Fatalf("size %d: the encrypter did not read through the mapping: %+v", c.size, st)
			}
			got, _, err := envelope.Decrypt(ctx, msg.Bytes(), kr, envelope.DecryptOptions{})
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d frame %d: sealed from the mapping, decrypted by copy: %v", c.size, c.frame, err)
			}
			sealed, _ := mapFile(t, msg.Bytes(), opts)
			var out bytes.Buffer
			if _, err := envelope.DecryptAt(ctx, sealed, sealed.Size(), &out, kr, envelope.DecryptOptions{Concurrency: 3}); err != nil || !bytes.Equal(out.Bytes(), pt) {
				t.Fatalf("size %d frame %d: decrypted from the mapping: %v", c.size, c.frame, err)
			}
			if st := sealed.Stats(); frame < 256<<10 && st.Windows+st.Exact == 0 { // larger frames may pass the small windows' bound
				t.Fatalf("size %d: the decrypter did not read through the mapping: %+v", c.size, st)
			}
		}
	}
}

// TestMappedTampered: a flipped body byte or a cut message read through a
// mapping fails as it does through a copy, and what was written before the
// failure is true plaintext.
func TestMappedTampered(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "mapped")
	pt := randBytes(1 << 20)
	msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(msg)
	flipped[len(msg)/2] ^= 0x40
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"flipped", flipped, envelope.ErrFrameAuth},
		{"cut", msg[:len(msg)-100], envelope.ErrTruncated},
		{"extended", append(bytes.Clone(msg), 1), envelope.ErrMalformed},
	} {
		m, _ := mapFile(t, c.msg, smallWindows)
		var out bytes.Buffer
		_, err := envelope.DecryptAt(ctx, m, m.Size(), &out, kr, envelope.DecryptOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if !bytes.HasPrefix(pt, out.Bytes()) {
			t.Errorf("%s: %d bytes written that are not the plaintext", c.name, out.Len())
		}
	}
}

// TestMappedTruncatedWhileMapped: a file cut short by someone else after it
// was mapped gives an error, not a crash (the SIGBUS of a page past the new
// end is caught), on encrypt and on decrypt.
func TestMappedTruncatedWhileMapped(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "mapped")
	for _, opts := range []mmapfile.Options{{}, smallWindows} {
		pt := randBytes(4 << 20)
		src, path := mapFile(t, pt, opts)
		if err := os.Truncate(path, 1<<20); err != nil {
			t.Fatal(err)
		}
		enc, err := envelope.NewEncrypter(ctx, &bytes.Buffer{}, kr, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = enc.ReadFromAt(src, src.Size())
		if err == nil {
			err = enc.Close()
		}
		if !errors.Is(err, mmapfile.ErrTruncated) {
			t.Errorf("windows %d: encrypting a file cut while mapped: %v, want ErrTruncated", opts.Window, err)
		}

		msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sealed, path := mapFile(t, msg, opts)
		if err := os.Truncate(path, int64(len(msg)/2)); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, err = envelope.DecryptAt(ctx, sealed, sealed.Size(), &out, kr, envelope.DecryptOptions{})
		if err == nil {
			t.Errorf("windows %d: decrypting a file cut while mapped succeeded", opts.Window)
		}
		if !bytes.HasPrefix(pt, out.Bytes()) {
			t.Errorf("windows %d: %d bytes written that are not the plaintext", opts.Window, out.Len())
		}
		t.Logf("windows %d: %v", opts.Window, err)
	}
}

// TestReadFromAtThenWrite: plaintext written after ReadFromAt follows it in
// the message (its last, partial batch is read in first); a ReaderAt shorter
// than the size given is an error by Close at the latest.
func TestReadFromAtThenWrite(t *testing.T) {
	ctx := context.Background()
	kr := aesKeyring(t, "mapped")
	for _, size := range []int{0, 1000, 256 << 10, 3<<20 + 5} {
		head, tail := randBytes(size), randBytes(70_000)
		for name, ra := range map[string]interface {
			ReadAt([]byte, int64) (int, error)
		}{"bytes": bytes.NewReader(head), "mapped": func() *mmapfile.File { m, _ := mapFile(t, head, mmapfile.Options{}); return m }()} {
			var msg bytes.Buffer
			enc, err := envelope.NewEncrypter(ctx, &msg, kr, envelope.EncryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := enc.ReadFromAt(ra, int64(size)); err != nil {
				t.Fatal(err)
			}
			if _, err := enc.Write(tail); err != nil {
				t.Fatal(err)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			got, _, err := envelope.Decrypt(ctx, msg.Bytes(), kr, envelope.DecryptOptions{})
			if err != nil || !bytes.Equal(got, append(bytes.Clone(head), tail...)) {
				t.Fatalf("%s, %d bytes then a write: %v", name, size, err)
			}
		}
	}
	for _, size := range []int{1000, 3<<20 + 5} {
		enc, err := envelope.NewEncrypter(ctx, io.Discard, kr, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = enc.ReadFromAt(bytes.NewReader(randBytes(size-1)), int64(size))
		if err == nil {
			err = enc.Close()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("a ReaderAt one byte short of %d: %v, want ErrUnexpectedEOF", size, err)
		}
	}
}
