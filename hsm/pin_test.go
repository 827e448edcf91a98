package hsm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/pin"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// noPINURI names object on tok with its module but no PIN (neither
// pin-source nor pin-value).
func noPINURI(tok *softhsmtest.Token, object string) string {
	return "pkcs11:token=" + tok.Label + ";object=" + object + "?module-path=" + tok.Module
}

// pinCountLow reports whether the token shows a failed login: SoftHSM2 sets
// CKF_USER_PIN_COUNT_LOW when C_Login gets a wrong user PIN and clears it on
// a successful one.
func pinCountLow(t *testing.T, tok *softhsmtest.Token) bool {
	t.Helper()
	p, slot := tok.Slot(t)
	ti, err := p.GetTokenInfo(slot)
	if err != nil {
		t.Fatal(err)
	}
	return ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0
}

// loginBehindBack logs in with the right PIN and out again on a session of
// its own, which clears CKF_USER_PIN_COUNT_LOW.
func loginBehindBack(t *testing.T, tok *softhsmtest.Token) {
	t.Helper()
	p, slot := tok.Slot(t)
	h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(h)
	if err := p.Login(h, pkcs11.CKU_USER, tok.PIN); err != nil {
		t.Fatal(err)
	}
	if err := p.Logout(h); err != nil {
		t.Fatal(err)
	}
	if pinCountLow(t, tok) {
		t.Fatal("CKF_USER_PIN_COUNT_LOW still set after a good login")
	}
}

type ctxKey struct{}

// A URI without a PIN takes it from the WithPIN function, called with the
// caller's ctx and the token's name, once for the one login every KEK of
// the token shares.
func TestPINFromCallback(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	var calls int
	var whats []string
	withPIN := hsm.WithPIN(func(ctx context.Context, what string) (string, error) {
		calls++
		whats = append(whats, what)
		if ctx.Value(ctxKey{}) != "caller" {
			return "", errors.New("not the caller's ctx")
		}
		return tok.PIN, nil
	})
	cctx := context.WithValue(ctx, ctxKey{}, "caller")
	uri := noPINURI(tok, "kek")
	if _, err := hsm.Generate(cctx, uri, hsm.KeyAES256, withPIN); err != nil {
		t.Fatal(err)
	}
	kek, err := hsm.OpenURI(cctx, uri, withPIN)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, kek)
	want := fmt.Sprintf("token %q (SoftHSM v2)", tok.Label)
	if calls != 1 || whats[0] != want {
		t.Fatalf("PIN function called %d times with %q; want once with %q", calls, whats, want)
	}
}

// No PIN in the URI and no WithPIN: one clear ErrPIN, nothing sent.
func TestNoPINSource(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	_, err := hsm.Generate(ctx, noPINURI(tok, "kek"), hsm.KeyAES256)
	if !errors.Is(err, hsm.ErrPIN) || !strings.Contains(err.Error(), "needs a PIN and none was given") {
		t.Fatalf("no PIN source: %v, want ErrPIN saying none was given", err)
	}
	if pinCountLow(t, tok) {
		t.Fatal("a login was tried without a PIN")
	}
}

// An empty PIN, from any source, is refused before the token sees a login
// (ErrPIN and pin.ErrEmpty, not the token's answer to it), and the right PIN
// still works afterwards.
func TestEmptyPINRefused(t *testing.T) {
	emptyFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := hsm.WithPIN(func(context.Context, string) (string, error) { return "", nil })
	for _, c := range []struct {
		name string
		uri  func(tok *softhsmtest.Token) string
		opts []hsm.Option
		says string // where the error says the PIN came from
	}{
		{"pin-source", func(tok *softhsmtest.Token) string { return strings.Replace(tok.URI("kek"), tok.PINFile, emptyFile, 1) }, nil, emptyFile},
		{"pin-value", func(tok *softhsmtest.Token) string { return noPINURI(tok, "kek") + "&pin-value=" }, nil, "pin-value"},
		{"WithPIN", func(tok *softhsmtest.Token) string { return noPINURI(tok, "kek") }, []hsm.Option{empty}, "the PIN function gave none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := softhsmtest.New(t, softhsmtest.Options{})
			_, err := hsm.Generate(ctx, c.uri(tok), hsm.KeyAES256, c.opts...)
			if !errors.Is(err, hsm.ErrPIN) || !errors.Is(err, pin.ErrEmpty) || strings.Contains(err.Error(), "CKR_") || strings.Contains(err.Error(), "rejected") || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("empty PIN: %v, want ErrPIN and pin.ErrEmpty, naming %q", err, c.says)
			}
			if pinCountLow(t, tok) {
				t.Fatal("the empty PIN reached the token")
			}
			generate(t, tok.URI("kek"), hsm.KeyAES256)
		})
	}
}

// The WithPIN function's error comes back in ErrPIN with its cause visible
// (pin.ErrInterrupted is how the CLI knows to exit with 130), the token
// named once.
func TestPINCallbackError(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, cause := range []error{pin.ErrInterrupted, pin.ErrNoPIN, errors.New("vault unreachable")} {
		fail := hsm.WithPIN(func(context.Context, string) (string, error) { return "", cause })
		_, err := hsm.OpenURI(ctx, noPINURI(tok, "kek"), fail)
		if !errors.Is(err, hsm.ErrPIN) || !errors.Is(err, cause) {
			t.Fatalf("PIN function failing with %q: %v, want ErrPIN and the cause", cause, err)
		}
		if n := strings.Count(err.Error(), tok.Label); n != 1 {
			t.Fatalf("the token is named %d times in %q", n, err)
		}
	}
	if pinCountLow(t, tok) {
		t.Fatal("a login was tried without a PIN")
	}
}

// A PIN the token rejected is not sent again, from a WithPIN function that
// keeps returning it or from a pin-source file; a different PIN is tried.
func TestWrongPINSentOnce(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	uri := noPINURI(tok, "kek")
	give, calls := "not-the-pin", 0
	withPIN := hsm.WithPIN(func(context.Context, string) (string, error) {
		calls++
		return give, nil
	})
	_, err := hsm.Generate(ctx, uri, hsm.KeyAES256, withPIN)
	if !errors.Is(err, hsm.ErrPIN) || !strings.Contains(err.Error(), "rejected the PIN") {
		t.Fatalf("wrong PIN: %v", err)
	}
	if !pinCountLow(t, tok) {
		t.Fatal("the wrong PIN did not reach the token")
	}
	loginBehindBack(t, tok)

	_, err = hsm.Generate(ctx, uri, hsm.KeyAES256, withPIN)
	if !errors.Is(err, hsm.ErrPIN) || !strings.Contains(err.Error(), "rejected this PIN before") {
		t.Fatalf("the same wrong PIN again: %v", err)
	}
	bad := filepath.Join(tok.Dir, "bad-pin")
	if err := os.WriteFile(bad, []byte(give+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// From a file, through a URI that makes another Token for the same
	// token (x-max-sessions).
	if _, err := hsm.OpenURI(ctx, strings.Replace(tok.URI("kek", "x-max-sessions=1"), tok.PINFile, bad, 1)); !errors.Is(err, hsm.ErrPIN) {
		t.Fatalf("the same wrong PIN from a file: %v", err)
	}
	if calls != 2 || pinCountLow(t, tok) {
		t.Fatalf("PIN function called %d times (want 2); the wrong PIN reached the token again: %v", calls, pinCountLow(t, tok))
	}

	give = tok.PIN
	if _, err := hsm.Generate(ctx, uri, hsm.KeyAES256, withPIN); err != nil || calls != 3 {
		t.Fatalf("the right PIN after a wrong one: %v (PIN function called %d times, want 3)", err, calls)
	}
}

// WithModule is the module of URIs without module-path, and only of those.
func TestWithModule(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("kek"), hsm.KeyAES256)
	noModule := "pkcs11:token=" + tok.Label + ";object=kek?pin-source=file:" + tok.PINFile
	const missing = "/nonexistent/libpkcs11-default.so"

	if _, err := hsm.OpenURI(ctx, noModule); !errors.Is(err, hsm.ErrNoModule) {
		t.Fatalf("no module: %v, want ErrNoModule", err)
	}
	if _, err := hsm.List(ctx, noModule); !errors.Is(err, hsm.ErrNoModule) {
		t.Fatalf("List, no module: %v, want ErrNoModule", err)
	}
	if _, err := hsm.OpenURI(ctx, noModule, hsm.WithModule(missing)); !errors.Is(err, hsm.ErrModule) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("a default module that does not exist: %v, want ErrModule naming it", err)
	}
	kek, err := hsm.OpenURI(ctx, noModule, hsm.WithModule(tok.Module))
	if err != nil {
		t.Fatalf("default module: %v", err)
	}
	roundTrip(t, kek)
	if _, err := hsm.OpenURI(ctx, tok.URI("kek"), hsm.WithModule(missing)); err != nil {
		t.Fatalf("module-path and another default: %v", err)
	}
}
