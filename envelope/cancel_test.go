package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// cancelAfter is a writer that cancels its context once n bytes went
// through it, and counts what came after.
type cancelAfter struct {
	n      int64
	cancel context.CancelFunc
	total  int64
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if c.total >= c.n {
		c.cancel()
	}
	return len(p), nil
}

// cancellingReader yields size pseudo-random bytes and cancels after n.
type cancellingReader struct {
	r      io.Reader
	n      int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	m, err := c.r.Read(p)
	c.read += int64(m)
	if c.read >= c.n {
		c.cancel()
	}
	return m, err
}

// slack is how much may still go through after a cancel: a few batches of
// about 256 KiB (those in flight on the workers), far below the 64 MiB the
// tests offer.
const slack = 8 << 20

// TestContextStopsEncrypter: the Encrypter used to run to the end whatever
// its context said (the CLI wrapped its reader to stop it).
func TestContextStopsEncrypter(t *testing.T) {
	kr := aesKeyring(t, "ctx")
	pt := randBytes(64 << 20)
	for name, feed := range map[string]func(*envelope.Encrypter, *cancellingReader) (int64, error){
		"ReadFrom": func(e *envelope.Encrypter, r *cancellingReader) (int64, error) { return e.ReadFrom(r) },
		"Write": func(e *envelope.Encrypter, r *cancellingReader) (int64, error) {
			return io.CopyBuffer(struct{ io.Writer }{e}, r, make([]byte, 32<<10))
		},
		"ReadFromAt": func(e *envelope.Encrypter, r *cancellingReader) (int64, error) {
			return e.ReadFromAt(readerAtCancel{bytes.NewReader(pt), r, new(atomic.Int64)}, int64(len(pt)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out bytes.Buffer
			e, err := envelope.NewEncrypter(ctx, &out, kr, envelope.EncryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := &cancellingReader{r: bytes.NewReader(pt), n: 1 << 20, cancel: cancel}
			n, err := feed(e, r)
			cerr := e.Close()
			if !errors.Is(err, context.Canceled) && !errors.Is(cerr, context.Canceled) {
				t.Fatalf("cancelled after 1 MiB: took %d bytes, errors %v / %v", n, err, cerr)
			}
			if !errors.Is(cerr, context.Canceled) {
				t.Fatalf("Close after the cancel: %v, want context.Canceled (no final frame)", cerr)
			}
			if n > 1<<20+slack {
				t.Fatalf("took %d bytes after a cancel at 1 MiB", n)
			}
			if _, _, err := envelope.Decrypt(context.Background(), out.Bytes(), kr, envelope.DecryptOptions{}); err == nil {
				t.Fatal("the output of a cancelled encryption decrypts as a complete message")
			}
		})
	}
}

// readerAtCancel cancels once ReadFromAt's workers, reading in parallel,
// have read c.n bytes in all.
type readerAtCancel struct {
	ra   io.ReaderAt
	c    *cancellingReader
	read *atomic.Int64
}

func (r readerAtCancel) ReadAt(p []byte, off int64) (int, error) {
	m, err := r.ra.ReadAt(p, off)
	if r.read.Add(int64(m)) >= r.c.n {
		r.c.cancel()
	}
	return m, err
}

// TestContextStopsDecryptAt: DecryptAt and WriteRange ran to the end once
// started.
func TestContextStopsDecryptAt(t *testing.T) {
	kr := aesKeyring(t, "ctx")
	msg, err := envelope.Encrypt(context.Background(), randBytes(64<<20), kr, envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func(context.Context, io.Writer) error{
		"DecryptAt": func(ctx context.Context, w io.Writer) error {
			_, err := envelope.DecryptAt(ctx, bytes.NewReader(msg), int64(len(msg)), w, kr, envelope.DecryptOptions{})
			return err
		},
		"WriteRange": func(ctx context.Context, w io.Writer) error {
			rr, err := envelope.OpenRange(context.Background(), bytes.NewReader(msg), int64(len(msg)), kr, envelope.DecryptOptions{})
			if err != nil {
				return err
			}
			defer rr.Close()
			_, err = rr.WriteRange(ctx, w, 0, rr.Size())
			return err
		},
		"Decrypter": func(ctx context.Context, w io.Writer) error {
			d, err := envelope.NewDecrypter(ctx, bytes.NewReader(msg), kr, envelope.DecryptOptions{})
			if err != nil {
				return err
			}
			defer d.Close()
			_, err = d.WriteTo(w)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &cancelAfter{n: 1 << 20, cancel: cancel}
			err := run(ctx, w)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled after 1 MiB of output: %v (wrote %d bytes)", err, w.total)
			}
			if w.total > 1<<20+slack {
				t.Fatalf("wrote %d bytes after a cancel at 1 MiB", w.total)
			}
		})
	}
}

// TestContextStopsRewrap: Rewrap copied the whole body whatever its
// context said.
func TestContextStopsRewrap(t *testing.T) {
	kek, err := rawaes.New("test", "ctx", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(kek)
	msg, err := envelope.Encrypt(context.Background(), randBytes(64<<20), kr, envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelAfter{n: 1 << 20, cancel: cancel}
	_, err = envelope.Rewrap(ctx, bytes.NewReader(msg), w, kr, envelope.NewKeyring(kek), envelope.DecryptOptions{})
	if !errors.Is(err, context.Canceled) || w.total > 1<<20+slack {
		t.Fatalf("rewrap cancelled after 1 MiB: %v, wrote %d bytes", err, w.total)
	}
}

// TestContextStopsRewrapAt: RewrapAt stops in its body check and in its
// copy once ctx is done.
func TestContextStopsRewrapAt(t *testing.T) {
	kek, err := rawaes.New("test", "ctx", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(kek)
	msg, err := envelope.Encrypt(context.Background(), randBytes(64<<20), kr, envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled before: the body check stops at once, nothing is written.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := &cancelAfter{n: 1 << 40, cancel: func() {}}
	if _, err := envelope.RewrapAt(ctx, bytes.NewReader(msg), int64(len(msg)), w, kr, kr, envelope.DecryptOptions{}); !errors.Is(err, context.Canceled) || w.total != 0 {
		t.Fatalf("rewrap with a cancelled context: %v, wrote %d bytes", err, w.total)
	}
	// Cancelled during the copy.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	w = &cancelAfter{n: 1 << 20, cancel: cancel}
	_, err = envelope.RewrapAt(ctx, bytes.NewReader(msg), int64(len(msg)), w, kr, kr, envelope.DecryptOptions{})
	if !errors.Is(err, context.Canceled) || w.total > 1<<20+slack {
		t.Fatalf("rewrap cancelled after 1 MiB: %v, wrote %d bytes", err, w.total)
	}
}
