package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
)

// The environment variables the CLI reads for keys (the library packages
// read none: the CLI passes what they give through resolver.Options).
const (
	envPKCS11PIN    = "HSMENV_PKCS11_PIN"
	envPKCS11Module = "HSMENV_PKCS11_MODULE"
	envTPMPIN       = "HSMENV_TPM_PIN"
	envTPMDevice    = "HSMENV_TPM_DEVICE"
)

// keyOptions returns what opening a key may need: default module and
// device from the environment, and PINs from the environment or a prompt.
func keyOptions() resolver.Options {
	return resolver.Options{
		PIN:          askPIN,
		PKCS11Module: os.Getenv(envPKCS11Module),
		TPMDevice:    os.Getenv(envTPMDevice),
	}
}

// pinSources says, per URI scheme, which variable holds a PIN and what the
// prompt calls it.
var pinSources = map[string]struct{ env, label string }{
	hsm.Scheme: {envPKCS11PIN, "PIN"},
	tpm.Scheme: {envTPMPIN, "TPM PIN"},
}

// askPIN returns the PIN for what (a token or a TPM key of scheme) from its
// environment variable, else from a no-echo prompt on the terminal. A
// variable set but empty is refused rather than ignored, so a PIN never
// silently comes from somewhere else. Without a terminal it fails at once.
func askPIN(_ context.Context, scheme, what string) (string, error) {
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
	v, err := pin.Prompt(src.label + " for " + what)
	if errors.Is(err, pin.ErrNoTerminal) {
		return "", fmt.Errorf("%w: give pin-source=file:PATH in the URI or set %s", err, src.env)
	}
	return v, err
}

// keyHint adds to an error about a key what the user can do about it with
// the CLI's own means.
func keyHint(err error) string {
	if errors.Is(err, hsm.ErrNoModule) {
		return " (give module-path= in the URI or set " + envPKCS11Module + ")"
	}
	return ""
}
