package hsm

import (
	"fmt"
	"os"

	"github.com/hsmenv/hsmenv/internal/pin"
)

// pinFrom returns a function that produces the PIN for u's token, from (in
// order) pin-value, pin-source, $HSMENV_PKCS11_PIN, or a no-echo prompt on
// the controlling terminal. An empty PIN (an empty pin-source file, Enter
// at the prompt) is refused here and never sent to the token, where a
// wrong PIN may count towards locking it. The PIN is never logged.
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

// pins reads this package's PINs.
var pins = pin.Source{Err: ErrPIN, Env: PINEnv, Label: "PIN"}

// readPINSource reads a pin-source file; an empty one is refused.
func readPINSource(src string) (string, error) {
	p, err := pins.File(src)
	if err == nil && p == "" {
		err = fmt.Errorf("%w: pin-source %s: %w", ErrPIN, src, pin.ErrEmpty)
	}
	return p, err
}

// promptPIN asks on the terminal; without one it fails at once.
func promptPIN(what string) (string, error) { return pins.Ask(what) }
