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
