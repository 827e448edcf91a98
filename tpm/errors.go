package tpm

import (
	"errors"

	"github.com/google/go-tpm/tpm2"
)

// Sentinel errors, comparable with errors.Is. Every error of this package
// about the TPM, a key or an EDK wraps one of them; the text says what
// happened in detail.
var (
	// ErrDevice reports a TPM that cannot be reached: the device is missing,
	// not permitted, or the connection broke (swtpm stopped).
	ErrDevice = errors.New("TPM device")
	// ErrDifferentTPM reports an object sealed or created under an SRK whose
	// name differs from this TPM's: it is another TPM, or this one was
	// cleared (its owner seed changed).
	ErrDifferentTPM = errors.New("different TPM")
	// ErrPCR reports an object whose PCR policy failed; the message names
	// each PCR whose value differs from the one sealed.
	ErrPCR = errors.New("PCR policy failed")
	// ErrPIN reports a wrong, missing or unusable PIN.
	ErrPIN = errors.New("TPM PIN")
	// ErrLockout reports a TPM in dictionary-attack lockout; the message says
	// how long it lasts and how to clear it.
	ErrLockout = errors.New("TPM in dictionary-attack lockout")
	// ErrKeyFile reports a key file that cannot be read, written or used.
	ErrKeyFile = errors.New("TPM key file")
	// ErrTampered reports a TPM response that contradicts itself or what
	// hsmenv asked for: an SRK public area that does not hash to the SRK's
	// name, a loaded object with another name than the one sent, a new
	// object bound to other PCR values than those read. Something between
	// hsmenv and the TPM (on the bus, or on the socket of a networked
	// swtpm) altered it; nothing secret is sent to the TPM after it.
	ErrTampered = errors.New("TPM response altered")
	// ErrUnwrap reports an EDK that is malformed or altered, or that the TPM
	// refused to load for another reason than the ones above.
	ErrUnwrap = errors.New("TPM unwrap failed")
)

// linkError marks a failure of the connection itself (not a TPM response
// code): the connection is dropped and opened again on the next call.
type linkError struct{ err error }

func (e *linkError) Error() string { return e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// isLink reports whether err is a connection failure.
func isLink(err error) bool {
	var le *linkError
	return errors.As(err, &le)
}

// isRC reports whether err carries one of the TPM response codes (format-1
// codes match whatever handle, parameter or session they name).
func isRC(err error, codes ...tpm2.TPMRC) bool {
	for _, c := range codes {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// isAuthFail reports a wrong authorization value (a wrong PIN).
func isAuthFail(err error) bool {
	return isRC(err, tpm2.TPMRCAuthFail, tpm2.TPMRCBadAuth)
}

// isRetry reports TPM warnings after which the same command may succeed.
func isRetry(err error) bool {
	return isRC(err, tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting, tpm2.TPMRCPCRChanged)
}
