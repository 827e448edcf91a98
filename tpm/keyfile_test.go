package tpm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/tpm"
)

// TestKeyFileSizeLimit: a key-file= that names a device or an endless pipe
// fails promptly with ErrKeyFile (it used to be read until memory ran out),
// and so does a file beyond the size limit. No TPM is needed to find out.
func TestKeyFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "endless.tpmkey")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// An endless writer: opened first (read-write, so that opening does
	// not wait for a reader), then writing a key-file-like line forever.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); w.Close() })
	go func() {
		line := []byte(strings.Repeat("A", 1023) + "\n")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(line); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // bounded rate: a reader without limit fills memory slowly
		}
	}()
	big := filepath.Join(dir, "big.tpmkey")
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/zero", "/dev/urandom", fifo, big} {
		for _, call := range []struct {
			name string
			run  func() error
		}{
			{"OpenURI", func() error { _, err := tpm.OpenURI(ctx, "tpm:key-file="+path+"?device=tcp://127.0.0.1:1"); return err }},
			{"PublicKeyPEM", func() error { _, err := tpm.PublicKeyPEM(ctx, "tpm:key-file="+path); return err }},
		} {
			done := make(chan error, 1)
			go func() { done <- call.run() }()
			select {
			case err := <-done:
				if !errors.Is(err, tpm.ErrKeyFile) || !strings.Contains(err.Error(), path) {
					t.Errorf("%s %s: %v, want ErrKeyFile naming the path", call.name, path, err)
				} else {
					t.Logf("%s %s: %v", call.name, path, err)
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("%s %s: still reading after 3 s", call.name, path)
			}
		}
	}
}
