package pin

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hsmenv/hsmenv/internal/ostest"
)

// screen collects what the program writes to the terminal.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen shows want.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(s.String(), want) {
			return
		}
	}
	t.Fatalf("the terminal never showed %q; it shows %q", want, s.String())
}

func termios(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	var tio *unix.Termios
	var err error
	rc, _ := f.SyscallConn()
	rc.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	if err != nil {
		t.Fatal(err)
	}
	return *tio
}

// prompt runs readPIN on a fresh pseudo-terminal, types input once the
// prompt shows, and returns the PIN, the error, what the terminal showed
// and the signals OnInterrupt received.
func prompt(t *testing.T, input string, during func()) (pin, shown string, sigs []os.Signal, err error) {
	t.Helper()
	master, slave := ostest.PTY(t)
	var scr screen
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := master.Read(buf)
			scr.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	before := termios(t, slave)
	var mu sync.Mutex
	var got []os.Signal
	OnInterrupt(func(s os.Signal) { mu.Lock(); got = append(got, s); mu.Unlock() })
	defer OnInterrupt(nil)
	type res struct {
		pin []byte
		err error
	}
	done := make(chan res, 1)
	go func() { p, err := readPIN(slave, "PIN for test"); done <- res{p, err} }()
	scr.waitFor(t, "PIN for test: ")
	if during != nil {
		during()
	}
	if _, err := master.WriteString(input); err != nil {
		t.Fatal(err)
	}
	var r res
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("input %q: the prompt did not return", input)
	}
	if after := termios(t, slave); after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Cc != before.Cc {
		t.Fatalf("input %q: the terminal's state was not restored", input)
	}
	mu.Lock()
	defer mu.Unlock()
	return string(r.pin), scr.String(), got, r.err
}

func TestPromptEditing(t *testing.T) {
	for _, c := range []struct {
		input, want string
	}{
		{"1234\r", "1234"},
		{"1234\n", "1234"},
		{"12\x7f34\r", "134"},
		{"12\b34\r", "134"},
		{"ab\x15cd\r", "cd"},
		{"\x1b[A\x1bOB12\x1b[1;5C\r", "12"},
		{"x\u00e9\x7f1\r", "x1"},
		{"1\x04\r", "1"},
		{"a b\r", "a b"},
	} {
		pin, shown, _, err := prompt(t, c.input, nil)
		if err != nil || pin != c.want {
			t.Errorf("input %q: PIN %q, %v; want %q", c.input, pin, err, c.want)
		}
		if strings.Contains(shown, c.want) {
			t.Errorf("input %q: the PIN was echoed: %q", c.input, shown)
		}
	}
}

// Ctrl-C, Ctrl-D and an empty line end the prompt, and what is typed after
// them is not read as the PIN.
func TestPromptEnds(t *testing.T) {
	for _, c := range []struct {
		input string
		want  error
	}{
		{"\x03clear\r", ErrInterrupted},
		{"12\x03clear\r", ErrInterrupted},
		{"\x04clear\r", ErrNoPIN},
		{"\rclear\r", ErrEmpty},
		{"\x7f\x15\r", ErrEmpty},
		{strings.Repeat("1", MaxFile+1) + "\r", ErrTooLong},
	} {
		pin, shown, sigs, err := prompt(t, c.input, nil)
		if !errors.Is(err, c.want) || pin != "" {
			t.Errorf("input %q: PIN %q, %v; want %v", c.input, pin, err, c.want)
		}
		if strings.Contains(shown, "clear") {
			t.Errorf("input %q: echoed: %q", c.input, shown)
		}
		interrupted := len(sigs) == 1 && sigs[0] == os.Interrupt
		if interrupted != (c.want == ErrInterrupted) {
			t.Errorf("input %q: OnInterrupt got %v", c.input, sigs)
		}
	}
}

// A signal while the prompt waits ends it at once.
func TestPromptSignal(t *testing.T) {
	_, _, sigs, err := prompt(t, "", func() { syscall.Kill(os.Getpid(), syscall.SIGTERM) })
	if !errors.Is(err, ErrInterrupted) || len(sigs) != 1 || sigs[0] != syscall.SIGTERM {
		t.Fatalf("SIGTERM at the prompt: %v, OnInterrupt got %v", err, sigs)
	}
}
