package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

func aesKEK(t *testing.T, name string) *rawaes.KEK {
	key := make([]byte, 32)
	rand.Read(key)
	k, err := rawaes.New("rot", name, key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	old, keep, fresh := aesKEK(t, "old"), aesKEK(t, "keep"), aesKEK(t, "new")
	from := envelope.NewKeyring(old, keep)
	pt := randBytes(200_000)
	ec := envelope.EncryptionContext{"tenant": "a"}
	msg, err := envelope.Encrypt(ctx, pt, from, envelope.EncryptOptions{Context: ec, FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	oldOnly := envelope.NewKeyring(old)
	var out bytes.Buffer
	h, err := envelope.Rewrap(ctx, bytes.NewReader(msg), &out, oldOnly, envelope.NewKeyring(keep, fresh), envelope.DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rewrapped := out.Bytes()
	oldHeader, _ := envelope.ParseHeader(bytes.NewReader(msg))
	// The body is byte for byte the same.
	if !bytes.Equal(msg[oldHeader.Size():], rewrapped[h.Size():]) {
		t.Fatal("the body changed")
	}
	if !bytes.Equal(h.MessageID, oldHeader.MessageID) || len(h.EDKs) != 2 {
		t.Fatalf("header: %+v", h)
	}
	for _, k := range []envelope.KEK{keep, fresh} {
		kr := envelope.NewKeyring(k)
		got, _, err := envelope.Decrypt(ctx, rewrapped, kr, envelope.DecryptOptions{RequiredContext: ec})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("the new key does not open the rewrapped message: %v", err)
		}
	}
	if _, _, err := envelope.Decrypt(ctx, rewrapped, oldOnly, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrNoKEK) {
		t.Fatalf("the dropped key still opens it: %v", err)
	}
	// Signed messages are refused with a reason.
	signed, _ := envelope.Encrypt(ctx, pt, from, envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA})
	if _, err := envelope.Rewrap(ctx, bytes.NewReader(signed), &out, from, envelope.NewKeyring(fresh), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrUnsupported) {
		t.Fatalf("signed: %v", err)
	}
	// A wrong key opens nothing and writes nothing.
	out.Reset()
	freshOnly := envelope.NewKeyring(fresh)
	if _, err := envelope.Rewrap(ctx, bytes.NewReader(msg), &out, freshOnly, envelope.NewKeyring(fresh), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrNoKEK) || out.Len() != 0 {
		t.Fatalf("wrong key: %v, %d bytes written", err, out.Len())
	}
}

// rewrapFuncs are the ways to rewrap: streaming, from a ReaderAt, from a
// memory-mapped file.
func rewrapFuncs(t *testing.T) map[string]func(msg []byte, w io.Writer, from, to *envelope.Keyring, opts envelope.DecryptOptions) (*envelope.Header, error) {
	ctx := context.Background()
	return map[string]func([]byte, io.Writer, *envelope.Keyring, *envelope.Keyring, envelope.DecryptOptions) (*envelope.Header, error){
		"stream": func(msg []byte, w io.Writer, from, to *envelope.Keyring, opts envelope.DecryptOptions) (*envelope.Header, error) {
			return envelope.Rewrap(ctx, bytes.NewReader(msg), w, from, to, opts)
		},
		"at": func(msg []byte, w io.Writer, from, to *envelope.Keyring, opts envelope.DecryptOptions) (*envelope.Header, error) {
			return envelope.RewrapAt(ctx, bytes.NewReader(msg), int64(len(msg)), w, from, to, opts)
		},
		"mapped": func(msg []byte, w io.Writer, from, to *envelope.Keyring, opts envelope.DecryptOptions) (*envelope.Header, error) {
			m, _ := mapFile(t, msg, smallWindows)
			return envelope.RewrapAt(ctx, m, m.Size(), w, from, to, opts)
		},
	}
}

// TestRewrapChecksTheBody: a body altered, cut short or extended is
// reported, not copied under a fresh header as if it were sound; RewrapAt
// writes nothing at all then.
func TestRewrapChecksTheBody(t *testing.T) {
	ctx := context.Background()
	old, fresh := aesKEK(t, "old"), aesKEK(t, "new")
	from, to := envelope.NewKeyring(old), envelope.NewKeyring(fresh)
	pt := randBytes(1_000_000)
	msg, err := envelope.Encrypt(ctx, pt, from, envelope.EncryptOptions{FrameSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := envelope.ParseHeader(bytes.NewReader(msg))
	flipped := bytes.Clone(msg)
	flipped[h.Size()+500_000] ^= 1
	for name, rewrap := range rewrapFuncs(t) {
		for _, c := range []struct {
			name string
			msg  []byte
			want error
		}{
			{"bit flipped in a frame", flipped, envelope.ErrFrameAuth},
			{"final frame cut", msg[:len(msg)-10], envelope.ErrTruncated},
			{"whole frames cut", msg[:h.Size()+3*(4096+32)], envelope.ErrTruncated},
			{"byte appended", append(bytes.Clone(msg), 0), envelope.ErrMalformed},
		} {
			var out bytes.Buffer
			_, err := rewrap(c.msg, &out, from, to, envelope.DecryptOptions{})
			if name != "stream" && out.Len() != 0 {
				t.Errorf("%s, %s: %d bytes written before the error", name, c.name, out.Len())
			}
			if !errors.Is(err, c.want) {
				t.Errorf("%s, %s: %v, want %v", name, c.name, err, c.want)
			}
		}
		// A sound one goes through whole, with a small concurrency too.
		var out bytes.Buffer
		nh, err := rewrap(msg, &out, from, to, envelope.DecryptOptions{Concurrency: 1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(out.Bytes()[nh.Size():], msg[h.Size():]) {
			t.Fatalf("%s: the body changed", name)
		}
		got, _, err := envelope.Decrypt(ctx, out.Bytes(), to, envelope.DecryptOptions{})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: the rewrapped message does not open under the new key: %v", name, err)
		}
	}
}
