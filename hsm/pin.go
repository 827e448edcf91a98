package hsm

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxPINFile bounds a PIN file read.
const maxPINFile = 1024

// pinFrom returns a function that produces the PIN for u's token, from (in
// order) pin-value, pin-source, $HSMENV_PKCS11_PIN, or a no-echo prompt on
// the controlling terminal. The PIN is never logged.
func pinFrom(u *URI) func() (string, error) {
	return func() (string, error) {
		switch {
		case u.PINValue != "":
			return u.PINValue, nil
		case u.PINSource != "":
			return readPINSource(u.PINSource)
		}
		if pin, ok := os.LookupEnv(PINEnv); ok {
			return pin, nil
		}
		return promptPIN(u.describe())
	}
}

// readPINSource reads a pin-source: "file:PATH", "file://PATH" or a path.
func readPINSource(src string) (string, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(src, "file://"), "file:")
	if strings.Contains(path, ":") && !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, ".") {
		return "", fmt.Errorf("%w: pin-source %q: only file: sources are supported", ErrPIN, src)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: pin-source: %v", ErrPIN, err)
	}
	if st.Size() > maxPINFile {
		return "", fmt.Errorf("%w: pin-source %s is %d bytes, too large for a PIN", ErrPIN, path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: pin-source: %v", ErrPIN, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// promptPIN asks on /dev/tty without echo; without a terminal it fails at
// once rather than hang.
func promptPIN(what string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return "", fmt.Errorf("%w: no PIN for %s: give pin-source=file:PATH in the URI or set %s (no terminal to ask on)", ErrPIN, what, PINEnv)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "PIN for %s: ", what)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("%w: reading the PIN: %v", ErrPIN, err)
	}
	return string(b), nil
}
