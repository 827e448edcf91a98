package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// rsaKeyring is a raw RSA keyring: its EDKs do not bind the encryption
// context, so only the header authentication catches a wrong one.
func rsaKeyring(t testing.TB) *envelope.Keyring {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := rawrsa.New("req-ctx", "rsa", nil, priv, rawrsa.OAEPSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return envelope.NewKeyring(kek)
}

// decryptEveryWay decrypts msg in memory, as a stream, with DecryptAt and
// through OpenRange (unsigned only), and returns the first error; every
// path that succeeds must give pt and the same header contexts.
func decryptEveryWay(t *testing.T, msg, pt []byte, kr *envelope.Keyring, opts envelope.DecryptOptions) (*envelope.Header, error) {
	t.Helper()
	ctx := context.Background()
	got, h, err := envelope.Decrypt(ctx, msg, kr, opts)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("Decrypt: wrong plaintext")
	}
	d, err := envelope.NewDecrypter(ctx, bytes.NewReader(msg), kr, opts)
	if err != nil {
		t.Fatalf("stream: %v (Decrypt succeeded)", err)
	}
	if got, err = io.ReadAll(d); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("stream: %v", err)
	}
	var out bytes.Buffer
	if _, err := envelope.DecryptAt(ctx, bytes.NewReader(msg), int64(len(msg)), &out, kr, opts); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("DecryptAt: %v", err)
	}
	if !h.Suite.Signed() {
		rr, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), kr, opts)
		if err != nil {
			t.Fatalf("OpenRange: %v", err)
		}
		defer rr.Close()
		if !maps.Equal(rr.Header().UnstoredContext, h.UnstoredContext) {
			t.Fatalf("OpenRange: unstored %v, Decrypt %v", rr.Header().UnstoredContext, h.UnstoredContext)
		}
	}
	return h, nil
}

// TestRequiredContextKeys: pairs of RequiredContextKeys are authenticated
// but not stored; decrypting needs them in ReproducedContext, and a missing
// or wrong one is one error naming what is wrong.
func TestRequiredContextKeys(t *testing.T) {
	ctx := context.Background()
	ec := envelope.EncryptionContext{"tenant": "a", "secret-label": "payroll"}
	stored := envelope.EncryptionContext{"tenant": "a"}
	unstored := envelope.EncryptionContext{"secret-label": "payroll"}
	pt := randBytes(300_000)
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		for name, kr := range map[string]*envelope.Keyring{"raw AES (binds the context)": aesKeyring(t, "req"), "raw RSA (does not)": rsaKeyring(t)} {
			msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Suite: suite, Context: ec, RequiredContextKeys: []string{"secret-label"}, FrameSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(msg, []byte("payroll")) || bytes.Contains(msg, []byte("secret-label")) {
				t.Fatalf("%s %s: the required pair is stored in the message", suite, name)
			}
			parsed, _ := envelope.ParseHeader(bytes.NewReader(msg))
			delete(parsed.Context, "aws-crypto-public-key")
			if !maps.Equal(parsed.Context, stored) {
				t.Fatalf("%s %s: stored context %v, want %v", suite, name, parsed.Context, stored)
			}

			// Reproduced: only the unstored pair, or all of them.
			for _, rep := range []envelope.EncryptionContext{unstored, ec} {
				h, err := decryptEveryWay(t, msg, pt, kr, envelope.DecryptOptions{ReproducedContext: rep,
					RequiredContext: envelope.EncryptionContext{"secret-label": "payroll", "tenant": "a"}})
				if err != nil {
					t.Fatalf("%s %s: reproduced %v: %v", suite, name, rep, err)
				}
				if !maps.Equal(h.UnstoredContext, unstored) || h.Context["tenant"] != "a" {
					t.Fatalf("%s %s: header contexts %v / %v", suite, name, h.Context, h.UnstoredContext)
				}
			}

			// Missing, wrong, conflicting.
			for _, c := range []struct {
				what string
				rep  envelope.EncryptionContext
				want []error // any of
				says string
			}{
				{"nothing reproduced", nil, []error{envelope.ErrHeaderAuth, envelope.ErrNoKEK}, "does not store"},
				{"wrong unstored value", envelope.EncryptionContext{"secret-label": "bonus"}, []error{envelope.ErrHeaderAuth, envelope.ErrNoKEK}, "secret-label"},
				{"a pair it never had", envelope.EncryptionContext{"secret-label": "payroll", "extra": "x"}, []error{envelope.ErrHeaderAuth, envelope.ErrNoKEK}, "extra"},
				{"stored pair differs", envelope.EncryptionContext{"tenant": "b", "secret-label": "payroll"}, []error{envelope.ErrContext}, `"tenant" is "a" in the message, "b" given`},
			} {
				_, err := decryptEveryWay(t, msg, pt, kr, envelope.DecryptOptions{ReproducedContext: c.rep})
				ok := false
				for _, w := range c.want {
					ok = ok || errors.Is(err, w)
				}
				named := errors.Is(err, envelope.ErrHeaderAuth) || errors.Is(err, envelope.ErrContext) || errors.Is(err, envelope.ErrNoKEK) && c.rep != nil
				if !ok || named && !strings.Contains(err.Error(), c.says) {
					t.Errorf("%s %s, %s: %v (want one of %v, saying %q)", suite, name, c.what, err, c.want, c.says)
				}
			}
		}
	}
	// A required key must be in the context.
	if _, err := envelope.Encrypt(ctx, pt, aesKeyring(t, "req"), envelope.EncryptOptions{Context: ec, RequiredContextKeys: []string{"absent"}}); !errors.Is(err, envelope.ErrContext) {
		t.Fatalf("required key not in the context: %v", err)
	}
}

// TestRequiredContextRewrapAndCache: rewrap keeps the pairs unstored (and
// needs them reproduced); a caching keyring does not hand a message with
// required keys the data key (and header) of one without.
func TestRequiredContextRewrapAndCache(t *testing.T) {
	ctx := context.Background()
	ec := envelope.EncryptionContext{"tenant": "a", "k": "v"}
	rep := envelope.EncryptionContext{"k": "v"}
	from, to := rsaKeyring(t), aesKeyring(t, "to")
	pt := randBytes(50_000)
	msg, err := envelope.Encrypt(ctx, pt, from, envelope.EncryptOptions{Context: ec, RequiredContextKeys: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := envelope.Rewrap(ctx, bytes.NewReader(msg), &out, from, to, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrHeaderAuth) {
		t.Fatalf("rewrap without the reproduced pair: %v", err)
	}
	out.Reset()
	if _, err := envelope.Rewrap(ctx, bytes.NewReader(msg), &out, from, to, envelope.DecryptOptions{ReproducedContext: rep}); err != nil {
		t.Fatal(err)
	}
	if _, err := decryptEveryWay(t, out.Bytes(), pt, to, envelope.DecryptOptions{ReproducedContext: rep}); err != nil {
		t.Fatalf("rewrapped: %v", err)
	}
	if _, err := decryptEveryWay(t, out.Bytes(), pt, to, envelope.DecryptOptions{}); err == nil {
		t.Fatal("the rewrapped message opened without the reproduced pair")
	}

	cached, err := envelope.NewCachingKeyring(envelope.CacheOptions{MaxAge: time.Hour}, from.KEKs()...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for _, required := range [][]string{nil, {"k"}} {
			m, err := envelope.Encrypt(ctx, pt, cached, envelope.EncryptOptions{Context: ec, RequiredContextKeys: required})
			if err != nil {
				t.Fatal(err)
			}
			var opts envelope.DecryptOptions
			if required != nil {
				opts.ReproducedContext = rep
			}
			if _, err := decryptEveryWay(t, m, pt, from, opts); err != nil {
				t.Fatalf("cached, required %v, message %d: %v", required, i, err)
			}
		}
	}
	if st := cached.Stats(); st.EncryptMisses != 2 || st.EncryptHits != 2 {
		t.Fatalf("cache %+v: want one entry per request kind", st)
	}
}
