//go:build unix

package ostest

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
)

// FIFO makes a FIFO at path and opens its reading end without blocking, as
// another user listening on a planted FIFO would. The reader is closed when
// the test ends.
func FIFO(t testing.TB, path string) *os.File {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o666); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Received returns what the reader of a FIFO got so far (nil for nothing).
func Received(t testing.TB, r *os.File) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		t.Fatal(err)
	}
	return b
}
