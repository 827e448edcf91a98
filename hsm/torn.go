package hsm

import (
	"errors"
	"time"

	"github.com/miekg/pkcs11"
)

// tornRetries bounds how often Module.retryTorn re-initializes the module
// for one operation.
const tornRetries = 4

// tornRead reports whether err may come from reading the token while
// another process wrote it, on a module whose profile has TornReads: the
// token was not found or is gone, or opening a session or logging in
// failed with CKR_GENERAL_ERROR or CKR_USER_PIN_NOT_INITIALIZED (what
// SoftHSM2 2.6.1 returns after reading an empty token.object).
func (m *Module) tornRead(err error) bool {
	return err != nil && m.profile.TornReads &&
		(errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenGone) ||
			isRV(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_USER_PIN_NOT_INITIALIZED))
}

// retryTorn runs op and, while it fails as tornRead says a torn read does,
// re-initializes the module (unless another caller did meanwhile) and runs
// op again, at most tornRetries times, waiting a little longer each time
// for the other process's write to land. op must be safe to repeat.
func (m *Module) retryTorn(op func() error) error {
	for attempt := 0; ; attempt++ {
		gen := m.generation()
		err := op()
		if attempt == tornRetries || !m.tornRead(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
		if rerr := m.restart(gen); rerr != nil {
			return rerr
		}
	}
}
