//go:build unix

package pin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// FromSource goes through secretfile: a device fails at once instead of
// being read forever, a FIFO nobody writes to ends at the pipe timeout.
func TestFromSourceBounded(t *testing.T) {
	old := secretfile.PipeTimeout
	secretfile.PipeTimeout = 200 * time.Millisecond
	t.Cleanup(func() { secretfile.PipeTimeout = old })
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer that never closes: without the limit the read never ends.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, c := range []struct {
		src  string
		want error
	}{
		{"file:/dev/zero", secretfile.ErrNotFile},
		{"file:/dev/urandom", secretfile.ErrNotFile},
		{"file:" + fifo, secretfile.ErrTimeout},
	} {
		done := make(chan error, 1)
		go func() { _, err := FromSource(c.src); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.src, err, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: FromSource did not return", c.src)
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, []byte(strings.Repeat("1", MaxFile+1)), 0o600)
	if _, err := FromSource(big); !errors.Is(err, secretfile.ErrTooLarge) {
		t.Fatalf("big file: %v", err)
	}
	ok := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(ok, []byte("1234\r\n"), 0o600)
	if p, err := FromSource("file://" + ok); err != nil || p != "1234" {
		t.Fatalf("PIN file: %q, %v", p, err)
	}
}
