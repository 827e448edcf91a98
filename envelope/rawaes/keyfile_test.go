package rawaes_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// TestKeyFilesBounded: key files were read with os.ReadFile after a size
// check on Stat, which a device (/dev/zero: size 0) or a FIFO passes, so
// hsmenv read forever. Each must now fail promptly with ErrBadKey.
func TestKeyFilesBounded(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer that never stops.
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := w.Write(buf); err != nil {
				w.Close()
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	for _, path := range []string{"/dev/zero", fifo} {
		for scheme, open := range map[string]func() error{
			"raw-aes": func() error {
				_, err := rawaes.OpenURI(context.Background(), "raw-aes:namespace=n;name=k?key-file="+path)
				return check(err, rawaes.ErrBadKey)
			},
			"raw-rsa": func() error {
				_, err := rawrsa.OpenURI(context.Background(), "raw-rsa:namespace=n;name=k;padding=oaep-sha256?private-key="+path)
				return check(err, rawrsa.ErrBadKey)
			},
		} {
			done := make(chan error, 1)
			go func() { done <- open() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s key file %s: %v", scheme, path, err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s key file %s: still reading after 15 s", scheme, path)
			}
		}
	}
}

// check returns nil when err wraps want, else an error saying what came.
func check(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	if err == nil {
		return errors.New("no error, want " + want.Error())
	}
	return errors.New(err.Error() + ", want " + want.Error())
}
