//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package pin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readPIN shows label on tty and reads a line there without echo, in raw
// mode: the bytes come one by one, so Ctrl-C (which sends no signal in raw
// mode) and Ctrl-D end the prompt at once instead of being swallowed. The
// terminal's state is restored on every path. The caller clears the result.
func readPIN(tty *os.File, label string) (pin []byte, err error) {
	rc, err := tty.SyscallConn()
	if err != nil {
		return nil, ErrNoTerminal
	}
	control := func(f func(fd int) error) error {
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
			return err
		}
		return ferr
	}
	var old *unix.Termios
	if control(func(fd int) (err error) { old, err = unix.IoctlGetTermios(fd, ioctlGetTermios); return err }) != nil {
		return nil, ErrNoTerminal
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0

	// SIGINT and SIGTERM (from kill, or Ctrl-C reaching the process group
	// before raw mode is on) end the prompt: a read in progress ends
	// through its deadline.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	caught := make(chan os.Signal, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			caught <- s
			tty.SetReadDeadline(time.Now())
		case <-done:
		}
	}()

	if err := control(func(fd int) error { return unix.IoctlSetTermios(fd, ioctlSetTermios, &raw) }); err != nil {
		return nil, fmt.Errorf("reading the PIN: setting the terminal to raw mode: %w", err)
	}
	defer control(func(fd int) error { return unix.IoctlSetTermios(fd, ioctlSetTermios, old) })
	fmt.Fprintf(tty, "%s: ", label)
	defer fmt.Fprint(tty, "\r\n")

	ed := editor{buf: make([]byte, 0, MaxFile)}
	defer func() {
		if err != nil {
			clear(ed.buf[:cap(ed.buf)])
		}
	}()
	var in [64]byte
	defer clear(in[:])
	for {
		select {
		case s := <-caught:
			interrupt(s)
			return nil, fmt.Errorf("%w (%v)", ErrInterrupted, s)
		default:
		}
		n, rerr := tty.Read(in[:])
		for _, c := range in[:n] {
			complete, err := ed.feed(c)
			if errors.Is(err, ErrInterrupted) {
				interrupt(os.Interrupt)
			}
			if err != nil {
				return nil, err
			}
			if complete {
				return ed.buf, nil
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			// a signal: the loop's top returns
		case errors.Is(rerr, io.EOF):
			return nil, ErrNoPIN
		default:
			return nil, fmt.Errorf("reading the PIN: %w", rerr)
		}
	}
}

// editor collects a PIN typed byte by byte in raw mode.
type editor struct {
	buf []byte // capacity MaxFile, so appending never copies the PIN
	esc int    // 0; 1 after ESC; 2 inside an escape sequence (arrow keys...)
}

// feed takes one byte. complete reports Enter after a non-empty PIN; err
// reports Ctrl-C (ErrInterrupted), Ctrl-D on an empty line (ErrNoPIN),
// Enter on an empty line (ErrEmpty) or a PIN over MaxFile bytes
// (ErrTooLong). Backspace/DEL remove the last character, Ctrl-U the whole
// line; escape sequences and other control characters are dropped.
func (e *editor) feed(c byte) (complete bool, err error) {
	switch e.esc {
	case 1:
		e.esc = 0
		if c == '[' || c == 'O' {
			e.esc = 2
		}
		return false, nil
	case 2:
		if c >= 0x40 && c <= 0x7e {
			e.esc = 0
		}
		return false, nil
	}
	switch c {
	case 0x03: // Ctrl-C
		return false, ErrInterrupted
	case 0x04: // Ctrl-D: end of input on an empty line, else ignored
		if len(e.buf) == 0 {
			return false, ErrNoPIN
		}
	case '\r', '\n':
		if len(e.buf) == 0 {
			return false, ErrEmpty
		}
		return true, nil
	case 0x7f, 0x08: // Backspace: drop the last UTF-8 character
		i := len(e.buf)
		for i > 0 {
			i--
			if e.buf[i]&0xc0 != 0x80 {
				break
			}
		}
		clear(e.buf[i:])
		e.buf = e.buf[:i]
	case 0x15: // Ctrl-U
		clear(e.buf)
		e.buf = e.buf[:0]
	case 0x1b:
		e.esc = 1
	default:
		if c < 0x20 {
			return false, nil
		}
		if len(e.buf) >= MaxFile {
			return false, fmt.Errorf("%w (more than %d bytes)", ErrTooLong, MaxFile)
		}
		e.buf = append(e.buf, c)
	}
	return false, nil
}
