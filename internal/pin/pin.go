// Package pin reads PINs the ways hsmenv allows: from a pin-source file or
// a no-echo prompt on the controlling terminal. It never logs a PIN and never
// takes one from argv. Callers wrap its errors with their own ErrPIN.
package pin

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// MaxFile bounds a PIN file read.
const MaxFile = 1024

// ErrNoTerminal reports that there is no terminal to ask on.
var ErrNoTerminal = errors.New("no terminal to ask for the PIN on")

// FromSource reads a pin-source: "file:PATH", "file://PATH" or a path; the
// trailing newline is dropped.
func FromSource(src string) (string, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(src, "file://"), "file:")
	if strings.Contains(path, ":") && !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, ".") {
		return "", fmt.Errorf("pin-source %q: only file: sources are supported", src)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("pin-source: %v", err)
	}
	if st.Size() > MaxFile {
		return "", fmt.Errorf("pin-source %s is %d bytes, too large for a PIN", path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("pin-source: %v", err)
	}
	defer clear(b)
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Prompt asks for a PIN on /dev/tty without echo, showing label. Without a
// terminal it fails at once (ErrNoTerminal) rather than hang.
func Prompt(label string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", ErrNoTerminal
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s: ", label)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("reading the PIN: %v", err)
	}
	defer clear(b)
	return string(b), nil
}

// Source reads the PINs of one kind of device, wrapping every failure in
// Err and naming Env (the variable a PIN may also come from) when there is
// no terminal to ask on.
type Source struct {
	Err   error  // the caller's sentinel, e.g. hsm.ErrPIN
	Env   string // e.g. HSMENV_PKCS11_PIN
	Label string // the prompt's noun, e.g. "PIN" or "TPM PIN"
}

// File reads a pin-source file (FromSource), wrapping errors in s.Err.
func (s Source) File(src string) (string, error) {
	p, err := FromSource(src)
	if err != nil {
		return "", fmt.Errorf("%w: %v", s.Err, err)
	}
	return p, nil
}

// Ask prompts for the PIN of what (Prompt), wrapping errors in s.Err.
func (s Source) Ask(what string) (string, error) {
	p, err := Prompt(s.Label + " for " + what)
	if errors.Is(err, ErrNoTerminal) {
		return "", fmt.Errorf("%w: no PIN for %s: give pin-source=file:PATH in the URI or set %s (no terminal to ask on)", s.Err, what, s.Env)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", s.Err, err)
	}
	return p, nil
}
