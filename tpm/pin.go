package tpm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"sync"

	"github.com/hsmenv/hsmenv/internal/pin"
)

// pinCache produces the PIN of one KEK, from (in order) the URI's
// pin-value, its pin-source file or the WithPIN callback, and keeps it
// until the TPM rejects it. A PIN the TPM rejected is remembered (as a
// digest of its auth value) for the life of the KEK and never sent again:
// every wrong PIN counts towards the TPM's dictionary-attack lockout, so a
// message with many EDKs for the KEK must not try a known-wrong PIN on each.
// After a rejection the next call reads the PIN again (the callback is
// asked anew); the same answer is refused without reaching the TPM. An
// empty PIN is refused before it reaches the TPM. The PIN is never logged.
type pinCache struct {
	value, source, what string
	ask                 func(ctx context.Context, what string) (string, error)

	// reading is held while the PIN is read, so that concurrent calls ask
	// once and a waiting call still honours its context; mu guards the
	// fields below and is never held while reading.
	reading  chan struct{}
	mu       sync.Mutex
	pin      string
	ok       bool
	rejected [][sha256.Size]byte // SHA-256 of each auth value the TPM rejected
}

func newPINCache(u *URI, what string, o options) *pinCache {
	return &pinCache{value: u.PINValue, source: u.PINSource, what: what, ask: o.pin, reading: make(chan struct{}, 1)}
}

// auth returns the TPM auth value of the PIN (see authValue), reading the
// PIN first if none is cached.
func (p *pinCache) auth(ctx context.Context) ([]byte, error) {
	select {
	case p.reading <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.reading }()
	p.mu.Lock()
	v, ok := p.pin, p.ok
	p.mu.Unlock()
	if !ok {
		var err error
		if v, err = p.read(ctx); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.pin, p.ok = v, true
		p.mu.Unlock()
	}
	return authValue(v), nil
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
			return fmt.Errorf("%w: the TPM already rejected this PIN (from %s); not sent again (each wrong PIN counts towards dictionary-attack lockout)", ErrPIN, p.origin())
		}
	}
	return nil
}

// reject records that the TPM refused auth, and drops the cached PIN so
// that the next call reads its source again (the callback is asked anew).
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
	return "the PIN callback"
}

// read reads the PIN from its source. An empty PIN, a missing source and a
// failing one are ErrPIN; the cause stays visible to errors.Is.
func (p *pinCache) read(ctx context.Context) (string, error) {
	var value string
	var err error
	switch {
	case p.value != "":
		value = p.value
	case p.source != "":
		value, err = pin.FromSource(p.source)
	case p.ask != nil:
		value, err = p.ask(ctx, p.what)
	default:
		return "", fmt.Errorf("%w: no PIN: the URI has neither pin-value nor pin-source, and no PIN callback was given", ErrPIN)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPIN, err)
	}
	if value == "" {
		return "", fmt.Errorf("%w: from %s: %w", ErrPIN, p.origin(), pin.ErrEmpty)
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
