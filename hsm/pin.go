package hsm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/hsmenv/hsmenv/internal/pin"
)

// pinSource is where the PIN of one URI comes from: its pin-value, else its
// pin-source file, else the WithPIN function of the call that opened it.
type pinSource struct {
	value, file string
	ask         func(ctx context.Context, what string) (string, error)
}

func newPINSource(u *URI, o options) pinSource {
	return pinSource{value: u.PINValue, file: u.PINSource, ask: o.pin}
}

// errNoPIN is the cause of the ErrPIN returned when nothing supplies a PIN.
var errNoPIN = errors.New("the token needs a PIN and none was given (pin-source or pin-value in the URI, or a PIN callback)")

// get returns the PIN for what (the token, as Token.describe names it),
// ctx going to the WithPIN function. Every failure wraps ErrPIN with its
// cause; an empty PIN is refused here (pin.ErrEmpty), so it never reaches
// the token. The PIN is never logged or put in an error.
func (s pinSource) get(ctx context.Context, what string) (string, error) {
	var p string
	var err error
	switch {
	case s.value != "":
		p = s.value
	case s.file != "":
		p, err = pin.FromSource(s.file)
		if err == nil && p == "" {
			err = fmt.Errorf("pin-source %s: %w", s.file, pin.ErrEmpty)
		}
	case s.ask != nil:
		p, err = s.ask(ctx, what)
		if err == nil && p == "" {
			err = fmt.Errorf("the PIN function gave none: %w", pin.ErrEmpty)
		}
		if err != nil {
			// The caller's PIN function (a prompt, the environment) says
			// what went wrong; the key's error names the token already.
			return "", fmt.Errorf("%w: %w", ErrPIN, err)
		}
	default:
		err = errNoPIN
	}
	if err == nil && p == "" {
		err = pin.ErrEmpty
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPIN, err)
	}
	return p, nil
}

// rejectedPINs remembers the PINs a token rejected, as salted hashes (the
// PINs themselves are not kept), so that none is sent to it twice. It is
// safe for concurrent use.
type rejectedPINs struct {
	mu   sync.Mutex
	salt [32]byte
	seen map[[sha256.Size]byte]bool
}

// sum hashes p with the salt, drawn on first use. The caller holds r.mu.
func (r *rejectedPINs) sum(p string) [sha256.Size]byte {
	if r.seen == nil {
		rand.Read(r.salt[:])
		r.seen = map[[sha256.Size]byte]bool{}
	}
	return sha256.Sum256(append(r.salt[:], p...))
}

// has reports whether the token rejected p before.
func (r *rejectedPINs) has(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[r.sum(p)]
}

// add remembers that the token rejected p.
func (r *rejectedPINs) add(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sum(p)
	r.seen[s] = true
}
