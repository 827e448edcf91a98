// Package secretfile reads small secret files (PINs, key files) through a
// size limit, so that a path naming /dev/zero, a FIFO nobody writes to or a
// huge file cannot make hsmenv read forever or allocate without bound.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

var (
	// ErrTooLarge reports a file longer than the caller's limit.
	ErrTooLarge = errors.New("too large")
	// ErrNotFile reports a path that names a device or a directory, not a
	// file or a pipe.
	ErrNotFile = errors.New("not a regular file or a pipe")
	// ErrTimeout reports a pipe that gave no end of file in time.
	ErrTimeout = errors.New("no end of input in time")
)

// PipeTimeout (a variable for tests) bounds how long a pipe (a FIFO, a /dev/fd/N of a shell's
// process substitution) may take to deliver its whole content.
var PipeTimeout = 10 * time.Second

// Read returns the content of path, which must be a regular file of at most
// max bytes or a pipe that delivers at most max bytes and then its end within
// PipeTimeout. Character and block devices (/dev/zero, a terminal) and
// directories are refused with ErrNotFile. Opening never blocks (O_NONBLOCK:
// a FIFO without a writer reads as empty). The caller clears the returned
// slice when it holds a secret. Errors name path and never its content.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch m := st.Mode(); {
	case m.IsRegular():
		if st.Size() > max {
			return nil, fmt.Errorf("%s: %w (%d bytes, at most %d)", path, ErrTooLarge, st.Size(), max)
		}
	case m&(os.ModeNamedPipe|os.ModeSocket) != 0:
		// A pipe read through the poller honours the deadline; one the
		// poller does not take reads as it comes, still bounded in bytes.
		_ = f.SetReadDeadline(time.Now().Add(PipeTimeout))
	default:
		return nil, fmt.Errorf("%s: %w", path, ErrNotFile)
	}
	deadline := time.Now().Add(PipeTimeout)
	b := make([]byte, 0, min(max+1, 4096))
	lr := io.LimitReader(f, max+1)
	for {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(2*int64(cap(b)), max+1))
			copy(nb, b)
			clear(b)
			b = nb
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			clear(b)
			return nil, fmt.Errorf("%s: %w (%s)", path, ErrTimeout, PipeTimeout)
		}
		if errors.Is(err, syscall.EAGAIN) && time.Now().Before(deadline) {
			// A non-blocking pipe the poller did not take: wait briefly.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			clear(b)
			return nil, fmt.Errorf("%s: %w (%s)", path, ErrTimeout, PipeTimeout)
		}
		if err != nil {
			clear(b)
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if int64(len(b)) > max {
		clear(b)
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}
