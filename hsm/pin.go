package hsm

import (
	"errors"
	"fmt"
	"os"

	"github.com/hsmenv/hsmenv/internal/pin"
)

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
		if pin := os.Getenv(PINEnv); pin != "" {
			return pin, nil
		}
		return promptPIN(u.describe())
	}
}

// readPINSource reads a pin-source file.
func readPINSource(src string) (string, error) {
	p, err := pin.FromSource(src)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrPIN, err)
	}
	return p, nil
}

// promptPIN asks on the terminal; without one it fails at once.
func promptPIN(what string) (string, error) {
	p, err := pin.Prompt("PIN for " + what)
	if errors.Is(err, pin.ErrNoTerminal) {
		return "", fmt.Errorf("%w: no PIN for %s: give pin-source=file:PATH in the URI or set %s (no terminal to ask on)", ErrPIN, what, PINEnv)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrPIN, err)
	}
	return p, nil
}
