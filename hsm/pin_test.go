package hsm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/pin"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// An empty pin-source file is refused before the token sees a login: the
// error says so, not that the token rejected the PIN (which it did when the
// empty PIN was sent).
func TestEmptyPINSourceRefused(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	empty := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(empty, []byte("\n"), 0o600)
	uri := strings.Replace(tok.URI("kek"), tok.PINFile, empty, 1)
	_, err := hsm.Generate(ctx, uri, hsm.KeyAES256)
	if !errors.Is(err, hsm.ErrPIN) || !errors.Is(err, pin.ErrEmpty) || strings.Contains(err.Error(), "rejected") {
		t.Fatalf("empty pin-source: %v, want ErrPIN and pin.ErrEmpty", err)
	}
}
