package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Sentinel errors, comparable with errors.Is.
var (
	// ErrModule reports a PKCS#11 module that cannot be loaded or initialized.
	ErrModule = errors.New("pkcs11 module")
	// ErrNoModule reports a URI without module-path opened without a
	// default module (WithModule).
	ErrNoModule = errors.New("no module-path in the URI and no default module")
	// ErrTokenNotFound reports that no slot holds the token the URI names.
	ErrTokenNotFound = errors.New("token not found")
	// ErrTokenGone reports a token that went away (removed, re-initialized,
	// module finalized) and could not be found again.
	ErrTokenGone = errors.New("token not present")
	// ErrPIN reports a PIN that is wrong, locked, empty or missing, or that
	// could not be obtained (the cause, e.g. pin.ErrInterrupted or the WithPIN
	// function's error, stays visible to errors.Is).
	ErrPIN = errors.New("PIN")
	// ErrKeyNotFound reports that no object matches the URI.
	ErrKeyNotFound = errors.New("key not found")
	// ErrAmbiguous reports several objects matching the URI.
	ErrAmbiguous = errors.New("more than one object matches")
	// ErrMechanism reports a mechanism the token does not support for the
	// operation, or one that does not fit the key.
	ErrMechanism = errors.New("mechanism not supported")
	// ErrExtractable reports a KEK that could leave the token.
	ErrExtractable = errors.New("key is extractable")
	// ErrUnwrap reports an EDK the token could not unwrap: wrong key, or the
	// EDK or context was altered.
	ErrUnwrap = errors.New("unwrap failed")
	// ErrExists reports a label already used on the token.
	ErrExists = errors.New("an object with this label exists")
	// ErrNoPublicKey reports a public key asked of a symmetric (secret)
	// key, which has none.
	ErrNoPublicKey = errors.New("no public key")
)

// errNoObject is ErrKeyNotFound for a URI that names no object.
var errNoObject = fmt.Errorf("%w: the URI names no object: add ;object=LABEL or ;id=ID to it", ErrKeyNotFound)

// rv returns the PKCS#11 return value inside err, if any.
func rv(err error) (pkcs11.Error, bool) {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return e, true
	}
	return 0, false
}

// isRV reports whether err carries one of the return values.
func isRV(err error, codes ...uint) bool {
	e, ok := rv(err)
	if !ok {
		return false
	}
	for _, c := range codes {
		if uint(e) == c {
			return true
		}
	}
	return false
}

// failure classes that decide how an operation is retried.
type failure int

const (
	failNone        failure = iota
	failOther               // not recoverable by retrying
	failSession             // the session is gone: open another
	failLogin               // the token forgot the login: log in again
	failToken               // the token or module went away: find it again
	failObject              // a cached object handle went stale: look it up again
	failNotInModul          // module finalized behind our back: initialize it again
	failKeyVanished         // a key found before is missing: the module may have lost the token
)

// errKeyVanished marks ErrKeyNotFound for a key that was found before:
// some modules (SoftHSM2 when its token directory goes away and comes
// back; network HSM clients after a failover) keep a stale view of the
// token until C_Initialize, so Token.do re-initializes the module (at most
// once per rescanInterval) and looks again.
var errKeyVanished = errors.New("the key was found before")

func classify(err error) failure {
	if err == nil {
		return failNone
	}
	if errors.Is(err, errKeyVanished) {
		return failKeyVanished
	}
	e, ok := rv(err)
	if !ok {
		return failOther
	}
	switch uint(e) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED:
		return failSession
	case pkcs11.CKR_USER_NOT_LOGGED_IN:
		return failLogin
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID, pkcs11.CKR_DEVICE_ERROR:
		return failToken
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return failObject
	case pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return failNotInModul
	}
	return failOther
}

// opError wraps a PKCS#11 failure with what was being done.
func opError(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
