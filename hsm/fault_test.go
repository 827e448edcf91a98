package hsm_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// aesKEK makes a token with an AES-256 key labelled "kek" and opens it.
func aesKEK(t *testing.T) (*softhsmtest.Token, hsm.KEK) {
	t.Helper()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("kek"), hsm.KeyAES256)
	kek, err := hsm.OpenURI(ctx, tok.URI("kek"))
	if err != nil {
		t.Fatal(err)
	}
	return tok, kek
}

func wrapOnce(t *testing.T, kek hsm.KEK) error {
	t.Helper()
	dek := make([]byte, 32)
	edk, err := kek.Wrap(ctx, dek, envelope.EncryptionContext{"a": "b"})
	if err != nil {
		return err
	}
	_, err = kek.Unwrap(ctx, edk, envelope.EncryptionContext{"a": "b"})
	return err
}

// Sessions closed behind the pool's back (which also logs the token out)
// are replaced transparently.
func TestSessionsClosedBehindPool(t *testing.T) {
	tok, kek := aesKEK(t)
	if err := wrapOnce(t, kek); err != nil {
		t.Fatal(err)
	}
	mod, _ := hsm.LoadModule(tok.Module, "")
	slots, _ := mod.Ctx().GetSlotList(true)
	for _, s := range slots {
		if err := mod.Ctx().CloseAllSessions(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := wrapOnce(t, kek); err != nil {
		t.Fatalf("after CloseAllSessions: %v", err)
	}
}

// A module finalized behind our back is initialized again and the token
// found again.
func TestModuleFinalizedBehindPool(t *testing.T) {
	tok, kek := aesKEK(t)
	mod, _ := hsm.LoadModule(tok.Module, "")
	if err := mod.Ctx().Finalize(); err != nil {
		t.Fatal(err)
	}
	// SoftHSM2 re-reads SOFTHSM2_CONF on C_Initialize.
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	if err := wrapOnce(t, kek); err != nil {
		t.Fatalf("after C_Finalize: %v", err)
	}
}

// A token whose directory disappears: either the token keeps working from
// memory, or every call fails with one clear error; never a crash or hang.
func TestTokenDirectoryRemoved(t *testing.T) {
	tok, kek := aesKEK(t)
	if err := os.RemoveAll(filepath.Join(tok.Dir, "tokens")); err != nil {
		t.Fatal(err)
	}
	err := wrapOnce(t, kek)
	t.Logf("after removing the token directory: %v", err)
	// Then the token disappears from the module entirely (re-initialized
	// without it): that must be reported as a missing token.
	mod, _ := hsm.LoadModule(tok.Module, "")
	mod.Ctx().Finalize()
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	err = wrapOnce(t, kek)
	if err == nil || !(errors.Is(err, hsm.ErrTokenGone) || errors.Is(err, hsm.ErrModule)) {
		t.Fatalf("token gone: got %v", err)
	}
	t.Logf("token gone: %v", err)
}

// A token whose directory goes away and comes back: SoftHSM2 forgets the
// key and sees the token again only after C_Initialize, which the KEK
// runs (rate-limited) when a key it found before is missing: it works
// again by itself, with no new OpenURI.
func TestTokenDirectoryMovedAndBack(t *testing.T) {
	tok, kek := aesKEK(t)
	t.Setenv("SOFTHSM2_CONF", tok.Conf) // read again on C_Initialize
	if err := wrapOnce(t, kek); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tok.Dir, "tokens")
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		err = wrapOnce(t, kek)
	}
	if err == nil {
		t.Fatal("the token's directory is gone and the key still works")
	}
	t.Logf("token away: %v", err)
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err = wrapOnce(t, kek); err != nil; err = wrapOnce(t, kek) {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the token came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
