// Package keyenv is the environment hsmenv's commands read for keys: the
// hsmenv CLI and age-plugin-hsmenv both use it, so a key URI behaves the
// same in each (the library packages read no environment: what this package
// finds goes to them through resolver.Options).
package keyenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
)

// The variables read for keys.
const (
	PKCS11PIN    = "HSMENV_PKCS11_PIN"
	PKCS11Module = "HSMENV_PKCS11_MODULE"
	TPMPIN       = "HSMENV_TPM_PIN"
	TPMDevice    = "HSMENV_TPM_DEVICE"
	// TPM2ToolsTCTI is tpm2-tools' variable for its TPM, a TCTI string
	// (swtpm:host=H,port=P, device:/dev/tpmrm0, ...): the default device
	// when TPMDevice is unset or empty.
	TPM2ToolsTCTI = "TPM2TOOLS_TCTI"
)

// DefaultTPMDevice returns the TPM for tpm: URIs without device= and TPM
// commands without --device: $HSMENV_TPM_DEVICE, else $TPM2TOOLS_TCTI,
// else "" (package tpm's DefaultDevice, /dev/tpmrm0).
func DefaultTPMDevice() string {
	if v := os.Getenv(TPMDevice); v != "" {
		return v
	}
	return os.Getenv(TPM2ToolsTCTI)
}

// Prompt asks the user for a secret, label naming it (e.g. "PIN for token
// demo"); it honours ctx.
type Prompt func(ctx context.Context, label string) (string, error)

// Options returns what opening a key may need: the default module and
// device from the environment, and PINs from the environment, else from
// prompt (nil: a PIN that no variable gives fails).
func Options(prompt Prompt) resolver.Options {
	return resolver.Options{
		PIN:          pinFunc(prompt),
		PKCS11Module: os.Getenv(PKCS11Module),
		TPMDevice:    DefaultTPMDevice(),
	}
}

// pinSources says, per URI scheme, which variable holds a PIN and what a
// prompt calls it.
var pinSources = map[string]struct{ env, label string }{
	hsm.Scheme: {PKCS11PIN, "PIN"},
	tpm.Scheme: {TPMPIN, "TPM PIN"},
}

// pinFunc returns the resolver's PIN function: the PIN for what (a token or
// a TPM key of scheme) from its variable, else from prompt. A variable set
// but empty is refused rather than ignored, so a PIN never silently comes
// from somewhere else.
func pinFunc(prompt Prompt) func(ctx context.Context, scheme, what string) (string, error) {
	return func(ctx context.Context, scheme, what string) (string, error) {
		src, ok := pinSources[scheme]
		if !ok {
			return "", fmt.Errorf("no PIN source for %s keys", scheme)
		}
		if v, ok := os.LookupEnv(src.env); ok {
			if v == "" {
				return "", fmt.Errorf("$%s is set but empty: %w", src.env, pin.ErrEmpty)
			}
			return v, nil
		}
		if prompt == nil {
			return "", fmt.Errorf("%w: give pin-source=file:PATH in the URI or set %s", pin.ErrNoTerminal, src.env)
		}
		v, err := prompt(ctx, src.label+" for "+what)
		if errors.Is(err, pin.ErrNoTerminal) {
			return "", fmt.Errorf("%w: give pin-source=file:PATH in the URI or set %s", err, src.env)
		}
		return v, err
	}
}

// TerminalPrompt asks on the terminal, without echo (pin.Prompt).
func TerminalPrompt(_ context.Context, label string) (string, error) {
	return pin.Prompt(label)
}

// Hint adds to an error about a key what the user can do about it with the
// environment: an empty string when there is nothing to add.
func Hint(err error) string {
	if errors.Is(err, hsm.ErrNoModule) {
		return " (give module-path= in the URI or set " + PKCS11Module + ")"
	}
	if errors.Is(err, tpm.ErrDevice) && os.Getenv(TPMDevice) == "" {
		if v := os.Getenv(TPM2ToolsTCTI); v != "" && fromTCTIVar(err.Error(), v) {
			return " (the device came from $" + TPM2ToolsTCTI + "; set " + TPMDevice + " or name another device)"
		}
	}
	return ""
}

// fromTCTIVar reports whether msg, a TPM device error, names the device
// tcti (the value of $TPM2TOOLS_TCTI), as given or in its canonical form.
func fromTCTIVar(msg, tcti string) bool {
	if strings.Contains(msg, tcti) {
		return true
	}
	d, err := tpm.OpenDevice(tcti)
	return err == nil && strings.Contains(msg, d.Path())
}
