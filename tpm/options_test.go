package tpm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/tpm"
)

// answer is a PIN callback that always returns p.
func answer(p string) func(context.Context, string) (string, error) {
	return func(context.Context, string) (string, error) { return p, nil }
}

// counted is a PIN callback that returns its PIN and counts its calls.
type counted struct {
	calls atomic.Int32
	mu    sync.Mutex
	pin   string
	whats []string
}

func (c *counted) ask(_ context.Context, what string) (string, error) {
	c.calls.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.whats = append(c.whats, what)
	return c.pin, nil
}

// what returns what the i-th call asked for.
func (c *counted) what(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.whats) {
		return ""
	}
	return c.whats[i]
}

// set changes the answer.
func (c *counted) set(pin string) {
	c.mu.Lock()
	c.pin = pin
	c.mu.Unlock()
}

// TestPINCallback: a key whose URI gives no PIN takes it from the WithPIN
// callback; without one, or when it fails or answers nothing, the result is
// ErrPIN with the cause visible, and nothing reaches the TPM (its
// dictionary-attack counter does not move).
func TestPINCallback(t *testing.T) {
	_, d := startTPM(t)
	dev := d.Path()
	uri := "tpm:seal?device=" + dev // the EDK says that it needs a PIN
	dek := randomKey(32)
	edk := wrapWith(t, open(t, "tpm:seal;pin=yes?device="+dev+"&pin-value=right"), dek)
	unwrap := func(ctx context.Context, kek envelope.KEK) error {
		got, err := kek.Unwrap(ctx, edk, nil)
		if err == nil && !bytes.Equal(got, dek) {
			t.Fatal("unwrapped another data key")
		}
		return err
	}

	t.Run("used when the URI has no PIN", func(t *testing.T) {
		type key struct{}
		cctx := context.WithValue(ctx, key{}, "the caller's")
		c := &counted{pin: "right"}
		var gotCtx atomic.Bool
		kek := open(t, uri, tpm.WithPIN(func(ctx context.Context, what string) (string, error) {
			gotCtx.Store(ctx.Value(key{}) == "the caller's")
			return c.ask(ctx, what)
		}))
		for i := 0; i < 3; i++ {
			if err := unwrap(cctx, kek); err != nil {
				t.Fatalf("unwrap %d with the PIN from the callback: %v", i+1, err)
			}
		}
		if n := c.calls.Load(); n != 1 {
			t.Errorf("the callback was called %d times for three unwraps, want once (the PIN is kept)", n)
		}
		if !gotCtx.Load() {
			t.Error("the callback did not get the caller's context")
		}
		if w := c.what(0); !strings.HasPrefix(w, "tpm:seal") || !strings.Contains(w, dev) || strings.Contains(w, "PIN") {
			t.Errorf("the callback was asked for %q, want the key's name (and no \"PIN\": the caller's prompt says it)", w)
		}
	})

	t.Run("the URI's PIN comes first", func(t *testing.T) {
		never := tpm.WithPIN(func(context.Context, string) (string, error) {
			t.Error("the callback was called although the URI gives the PIN")
			return "wrong", nil
		})
		for _, q := range []string{"&pin-value=right", pinFile(t, "right")} {
			if err := unwrap(ctx, open(t, uri+q, never)); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})

	t.Run("generate", func(t *testing.T) {
		c := &counted{pin: "key pin"}
		path := filepath.Join(t.TempDir(), "k.tpmkey")
		if _, err := tpm.Generate(ctx, "tpm:key-file="+path+";pin=yes?device="+dev, tpm.KeyECCP256, tpm.WithPIN(c.ask)); err != nil {
			t.Fatal(err)
		}
		if n := c.calls.Load(); n != 1 || !strings.Contains(c.what(0), path) {
			t.Fatalf("keygen asked the callback %d times, for %q", n, c.what(0))
		}
		if err := unwrapOnce(open(t, "tpm:key-file="+path+"?device="+dev+"&pin-value=key%20pin")); err != nil {
			t.Fatalf("the key made with the callback's PIN: %v", err)
		}
	})

	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("the user closed the PIN dialog")
	fail := func(err error) tpm.Option {
		return tpm.WithPIN(func(context.Context, string) (string, error) { return "", err })
	}
	for _, c := range []struct {
		name, uri string
		opts      []tpm.Option
		is        error // besides ErrPIN
		says      string
	}{
		{"no callback", uri, nil, nil, "no PIN callback"},
		{"nil callback", uri, []tpm.Option{tpm.WithPIN(nil)}, nil, "no PIN callback"},
		{"empty answer", uri, []tpm.Option{tpm.WithPIN(answer(""))}, pin.ErrEmpty, "from the PIN callback"},
		{"empty pin-source", uri + "&pin-source=file:" + emptyFile, nil, pin.ErrEmpty, "from pin-source"},
		{"callback error", uri, []tpm.Option{fail(fmt.Errorf("asking: %w", cause))}, cause, cause.Error()},
		{"interrupted", uri, []tpm.Option{fail(pin.ErrInterrupted)}, pin.ErrInterrupted, "interrupted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HSMENV_TPM_PIN", "right") // never read by the library
			before := lockoutCounter(t, d)
			err := unwrap(ctx, open(t, c.uri, c.opts...))
			if err == nil {
				t.Fatal("unwrapped")
			}
			if !errors.Is(err, tpm.ErrPIN) || !strings.Contains(err.Error(), c.says) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Errorf("got %v, want ErrPIN (and %v) saying %q", err, c.is, c.says)
			}
			if n := strings.Count(err.Error(), "TPM PIN"); n != 1 {
				t.Errorf("%q says \"TPM PIN\" %d times, want once", err, n)
			}
			if after := lockoutCounter(t, d); after != before {
				t.Errorf("the TPM's lockout counter went from %d to %d: a PIN was sent", before, after)
			}
			t.Logf("%v", err)
		})
	}

	t.Run("empty pin-value", func(t *testing.T) {
		_, err := tpm.OpenURI(ctx, uri+"&pin-value=", tpm.WithPIN(answer("right")))
		if !errors.Is(err, tpm.ErrPIN) || !errors.Is(err, pin.ErrEmpty) {
			t.Fatalf("got %v, want ErrPIN and pin.ErrEmpty", err)
		}
	})
}

// TestPINCallbackSameWrongAnswer: a callback that answers the same wrong PIN
// every time is asked again after each rejection, but the TPM sees that PIN
// once: the lockout counter moves by one over many unwraps. A different
// answer is then tried.
func TestPINCallbackSameWrongAnswer(t *testing.T) {
	_, d := startTPM(t)
	dev := d.Path()
	edk := wrapWith(t, open(t, "tpm:seal;pin=yes?device="+dev+"&pin-value=right"), randomKey(32))
	c := &counted{pin: "wrong"}
	kek := open(t, "tpm:seal?device="+dev, tpm.WithPIN(c.ask))
	before := lockoutCounter(t, d)
	for i := 0; i < 5; i++ {
		_, err := kek.Unwrap(ctx, edk, nil)
		want := "the TPM rejected the PIN"
		if i > 0 {
			want = "the TPM already rejected this PIN (from the PIN callback); not sent again"
		}
		if !errors.Is(err, tpm.ErrPIN) || !strings.Contains(err.Error(), want) {
			t.Fatalf("unwrap %d with the same wrong answer: %v, want %q", i+1, err, want)
		}
	}
	if after := lockoutCounter(t, d); after != before+1 {
		t.Fatalf("the lockout counter went from %d to %d, want +1: the same wrong PIN reached the TPM again", before, after)
	}
	if n := c.calls.Load(); n != 5 {
		t.Errorf("the callback was asked %d times for 5 unwraps, want 5 (again after each refusal)", n)
	}
	c.set("right")
	if _, err := kek.Unwrap(ctx, edk, nil); err != nil {
		t.Fatalf("the right answer after wrong ones: %v", err)
	}
}

// TestPINCallbackWaitHonoursContext: while one call waits for the callback
// (a prompt), another call on the same KEK waits for it rather than asking
// too, and gives up when its own context ends.
func TestPINCallbackWaitHonoursContext(t *testing.T) {
	_, d := startTPM(t)
	dev := d.Path()
	edk := wrapWith(t, open(t, "tpm:seal;pin=yes?device="+dev+"&pin-value=right"), randomKey(32))
	asked, released := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(released) })
	time.AfterFunc(5*time.Second, release) // a second call that waits for the first must not hang the test
	var calls atomic.Int32
	kek := open(t, "tpm:seal?device="+dev, tpm.WithPIN(func(ctx context.Context, _ string) (string, error) {
		if calls.Add(1) == 1 {
			close(asked)
		}
		select {
		case <-released:
			return "right", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}))
	first := make(chan error, 1)
	go func() { _, err := kek.Unwrap(ctx, edk, nil); first <- err }()
	select {
	case <-asked:
	case err := <-first:
		t.Fatalf("the first call ended without asking the callback: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := kek.Unwrap(tctx, edk, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second call while the callback runs: %v, want its deadline", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("the second call took %s to see its deadline", el)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("the first call: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the callback was called %d times, want once", n)
	}
	// The callback's own context: a deadline ends it.
	kek = open(t, "tpm:seal?device="+dev, tpm.WithPIN(func(ctx context.Context, _ string) (string, error) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Second):
			return "", errors.New("the callback never saw the caller's deadline")
		}
	}))
	tctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := kek.Unwrap(tctx, edk, nil); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, tpm.ErrPIN) {
		t.Errorf("a callback ended by the caller's deadline: %v", err)
	}
}

// TestWithDevice: WithDevice names the TPM of URIs without device=, and
// only of those; OpenDevice follows it for an empty device.
func TestWithDevice(t *testing.T) {
	_, a := startTPM(t)
	_, b := startTPM(t)
	onA, onB := tpm.WithDevice(a.Path()), tpm.WithDevice(b.Path())
	unwrapOn := func(dev string, edk envelope.EncryptedDataKey) error {
		_, err := open(t, "tpm:seal?device="+dev).Unwrap(ctx, edk, nil)
		return err
	}
	for _, c := range []struct {
		name, uri string
		opt       tpm.Option
		on, not   *tpm.Device
	}{
		{"no device=", "tpm:seal", onA, a, b},
		{"device= wins", "tpm:seal?device=" + b.Path(), onA, b, a},
	} {
		t.Run(c.name, func(t *testing.T) {
			edk := wrapWith(t, open(t, c.uri, c.opt), randomKey(32))
			if err := unwrapOn(c.on.Path(), edk); err != nil {
				t.Fatalf("not sealed by %s: %v", c.on, err)
			}
			if err := unwrapOn(c.not.Path(), edk); !errors.Is(err, tpm.ErrDifferentTPM) {
				t.Fatalf("%s opened what should be sealed by %s: %v", c.not, c.on, err)
			}
		})
	}

	t.Run("generate", func(t *testing.T) {
		name, err := b.SRKName(ctx)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := tpm.Generate(ctx, "tpm:seal", "", onB)
		if err != nil || !strings.Contains(desc, fmt.Sprintf("%x", name)) {
			t.Fatalf("keygen tpm:seal with WithDevice(%s): %q, %v", b, desc, err)
		}
		path := filepath.Join(t.TempDir(), "k.tpmkey")
		if _, err := tpm.Generate(ctx, "tpm:key-file="+path, tpm.KeyECCP256, onB); err != nil {
			t.Fatal(err)
		}
		if err := unwrapOnce(open(t, "tpm:key-file="+path+"?device="+b.Path())); err != nil {
			t.Fatalf("the key made on %s: %v", b, err)
		}
	})

	t.Run("OpenDevice", func(t *testing.T) {
		for _, c := range []struct {
			dev  string
			opts []tpm.Option
			want string
		}{
			{"", []tpm.Option{onA}, a.Path()},
			{b.Path(), []tpm.Option{onA}, b.Path()},
			{"", []tpm.Option{onA, tpm.WithDevice("")}, tpm.DefaultDevice},
			{"", nil, tpm.DefaultDevice},
		} {
			d, err := tpm.OpenDevice(c.dev, c.opts...)
			if err != nil || d.Path() != c.want {
				t.Errorf("OpenDevice(%q, %d options) = %v, %v, want %s", c.dev, len(c.opts), d, err, c.want)
			}
		}
	})
}
