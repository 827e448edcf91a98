// Package pin reads PINs the ways hsmenv allows: from a pin-source file or
// a no-echo prompt on the controlling terminal. It never logs a PIN, never
// puts one in an error and never takes one from argv. The library packages
// use FromSource for pin-source files; only the CLI prompts.
package pin

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// MaxFile bounds a PIN file read, and a PIN typed at the prompt.
const MaxFile = 1024

var (
	// ErrNoTerminal reports that there is no terminal to ask on.
	ErrNoTerminal = errors.New("no terminal to ask for the PIN on")
	// ErrInterrupted reports Ctrl-C typed at the prompt, or SIGINT or
	// SIGTERM received while it waited. Nothing was read.
	ErrInterrupted = errors.New("interrupted")
	// ErrNoPIN reports the end of input at the prompt (Ctrl-D on an empty
	// line, or the terminal hung up).
	ErrNoPIN = errors.New("no PIN entered")
	// ErrEmpty reports an empty PIN (Enter on an empty line): refused here,
	// so it never reaches a device.
	ErrEmpty = errors.New("empty PIN, not sent to the device")
	// ErrTooLong reports a typed PIN longer than MaxFile bytes.
	ErrTooLong = errors.New("PIN too long")
)

// onInterrupt is the function OnInterrupt registered, if any.
var onInterrupt atomic.Pointer[func(os.Signal)]

// OnInterrupt registers f to be called when the user interrupts a prompt:
// with os.Interrupt for Ctrl-C typed at it (the terminal is in raw mode
// then, so no SIGINT is sent), or with the signal when SIGINT or SIGTERM
// arrives while it waits. f runs before Prompt returns ErrInterrupted, so a
// program can cancel its work first (hsmenv cancels its context, and a
// keyring that would try its next key stops instead). nil unregisters.
func OnInterrupt(f func(os.Signal)) {
	if f == nil {
		onInterrupt.Store(nil)
		return
	}
	onInterrupt.Store(&f)
}

// interrupt calls the OnInterrupt function with sig, if there is one.
func interrupt(sig os.Signal) {
	if f := onInterrupt.Load(); f != nil {
		(*f)(sig)
	}
}

// FromSource reads a pin-source: "file:PATH", "file://PATH" or a path; the
// trailing newline is dropped. The file is read through secretfile with
// MaxFile as the limit, so a device (/dev/zero), a FIFO nobody closes or a
// huge file fails promptly instead of being read forever.
func FromSource(src string) (string, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(src, "file://"), "file:")
	if strings.Contains(path, ":") && !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, ".") {
		return "", fmt.Errorf("pin-source %q: only file: sources are supported", src)
	}
	b, err := secretfile.Read(path, MaxFile)
	if err != nil {
		return "", fmt.Errorf("pin-source: %w", err)
	}
	defer clear(b)
	return strings.TrimRight(string(b), "\r\n"), nil
}

// promptMu keeps two prompts from sharing the terminal at once.
var promptMu sync.Mutex

// Prompt asks for a PIN on /dev/tty without echo, showing label. Without a
// terminal it fails at once (ErrNoTerminal) rather than hang. It reads the
// terminal in raw mode and restores its state on every path: Ctrl-C ends
// the prompt with ErrInterrupted (see OnInterrupt), Ctrl-D on an empty line
// with ErrNoPIN, Enter on an empty line with ErrEmpty; Backspace and
// Ctrl-U edit. SIGINT and SIGTERM also end it with ErrInterrupted.
func Prompt(label string) (string, error) {
	promptMu.Lock()
	defer promptMu.Unlock()
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", ErrNoTerminal
	}
	defer tty.Close()
	b, err := readPIN(tty, label)
	if err != nil {
		return "", err
	}
	defer clear(b)
	return string(b), nil
}
