package tpm

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"sync"

	"github.com/hsmenv/hsmenv/internal/pin"
)

// PINEnv is the environment variable a PIN is read from when the URI has
// neither pin-source nor pin-value.
const PINEnv = "HSMENV_TPM_PIN"

// pinCache produces the PIN of one KEK, from (in order) pin-value,
// pin-source, $HSMENV_TPM_PIN or a no-echo terminal prompt, and keeps it
// until the TPM rejects it. A PIN the TPM rejected is remembered (as a
// digest of its auth value) for the life of the KEK and never sent again:
// every wrong PIN counts towards the TPM's dictionary-attack lockout, so a
// message with many EDKs for the KEK must not try a known-wrong PIN on each.
// A terminal prompt asks again after a rejection; the same answer is refused
// without reaching the TPM. The PIN is never logged.
type pinCache struct {
	value, source, what string

	mu       sync.Mutex
	pin      string
	ok       bool
	rejected [][sha256.Size]byte // SHA-256 of each auth value the TPM rejected
}

func newPINCache(u *URI, what string) *pinCache {
	return &pinCache{value: u.PINValue, source: u.PINSource, what: what}
}

// auth returns the TPM auth value of the PIN (see authValue).
func (p *pinCache) auth() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ok {
		pin, err := p.read()
		if err != nil {
			return nil, err
		}
		p.pin, p.ok = pin, true
	}
	return authValue(p.pin), nil
}

// usable fails with ErrPIN, without reaching the TPM, when the TPM already
// rejected auth for this KEK. Callers check it under the device lock, just
// before the TPM would see auth.
func (p *pinCache) usable(auth []byte) error {
	sum := sha256.Sum256(auth)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rejected {
		if subtle.ConstantTimeCompare(r[:], sum[:]) == 1 {
			p.pin, p.ok = "", false
			return fmt.Errorf("%w: %s: the TPM already rejected this PIN (from %s); not sent again (each wrong PIN counts towards dictionary-attack lockout)", ErrPIN, p.what, p.origin())
		}
	}
	return nil
}

// reject records that the TPM refused auth, and drops the cached PIN so
// that the next call reads its source again (a prompt asks anew).
func (p *pinCache) reject(auth []byte) {
	sum := sha256.Sum256(auth)
	p.mu.Lock()
	p.rejected = append(p.rejected, sum)
	p.pin, p.ok = "", false
	p.mu.Unlock()
}

// origin names where the PIN comes from, for messages.
func (p *pinCache) origin() string {
	switch {
	case p.value != "":
		return "pin-value"
	case p.source != "":
		return "pin-source " + p.source
	}
	if _, ok := os.LookupEnv(PINEnv); ok {
		return "$" + PINEnv
	}
	return "the terminal"
}

func (p *pinCache) read() (string, error) {
	var value string
	var err error
	switch {
	case p.value != "":
		value = p.value
	case p.source != "":
		value, err = readPINSource(p.source)
	default:
		var ok bool
		if value, ok = os.LookupEnv(PINEnv); !ok {
			value, err = promptPIN(p.what)
		}
	}
	if err != nil {
		return "", err
	}
	if value == "" {
		return "", fmt.Errorf("%w: %s needs a PIN: %w", ErrPIN, p.what, pin.ErrEmpty)
	}
	return value, nil
}

// authValue turns a PIN into the object's TPM auth value: the 32 ASCII
// characters of base64url(first 24 bytes of SHA-256(PIN)). Hashing gives
// every PIN, of any length, a value within the TPM's limit (the name
// algorithm's digest size); the base64 text has no zero bytes, which
// matters twice: the TPM strips trailing zero bytes from auth values, and
// go-tpm v0.9.8 cuts an auth value at its first zero byte when computing
// session HMACs (google/go-tpm#446), so one raw digest in eight would be
// refused as a wrong PIN.
func authValue(pin string) []byte {
	sum := sha256.Sum256([]byte(pin))
	defer clear(sum[:])
	out := make([]byte, base64.RawURLEncoding.EncodedLen(24))
	base64.RawURLEncoding.Encode(out, sum[:24])
	return out
}

// pins reads this package's PINs.
var pins = pin.Source{Err: ErrPIN, Env: PINEnv, Label: "TPM PIN"}

// readPINSource reads a pin-source file.
func readPINSource(src string) (string, error) { return pins.File(src) }

// promptPIN asks on the terminal; without one it fails at once.
func promptPIN(what string) (string, error) { return pins.Ask(what) }
