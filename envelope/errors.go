package envelope

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package that is about the
// message or the keys wraps exactly one of these, so callers can tell them
// apart with errors.Is while the message text says what went wrong in detail.
var (
	// ErrMalformed reports a message that does not follow the format: a bad
	// field value, a length out of bounds, trailing bytes.
	ErrMalformed = errors.New("malformed message")
	// ErrTruncated reports a message that ended before its format says it
	// should.
	ErrTruncated = errors.New("message truncated")
	// ErrUnsupported reports a well-formed message or option this package
	// does not handle: an unknown version, suite or content type.
	ErrUnsupported = errors.New("unsupported")
	// ErrHeaderAuth reports a header whose authentication tag does not verify:
	// the header was altered, or the data key is not the one it was made with.
	ErrHeaderAuth = errors.New("header authentication failed")
	// ErrCommitment reports a data key that does not match the key commitment
	// stored in the header.
	ErrCommitment = errors.New("key commitment mismatch")
	// ErrFrameAuth reports a body frame whose authentication tag does not
	// verify: the body was altered, reordered or truncated.
	ErrFrameAuth = errors.New("frame authentication failed")
	// ErrSignature reports a footer signature that is missing or does not
	// verify.
	ErrSignature = errors.New("signature verification failed")
	// ErrNoKEK reports that none of the KEKs could open any of the message's
	// encrypted data keys. The error also carries every individual failure.
	ErrNoKEK = errors.New("no key could unwrap any encrypted data key")
	// ErrContext reports an encryption context that is invalid, or that lacks
	// a pair the caller required.
	ErrContext = errors.New("encryption context")
	// ErrTooManyEDKs reports more encrypted data keys than the configured
	// maximum, on encrypt or decrypt.
	ErrTooManyEDKs = errors.New("too many encrypted data keys")
	// ErrCommitmentPolicy reports a message or suite the commitment policy
	// forbids.
	ErrCommitmentPolicy = errors.New("commitment policy")
	// ErrRange reports a byte range that cannot be served: out of bounds, or a
	// message kind that does not allow ranged decryption.
	ErrRange = errors.New("ranged decrypt")
	// ErrClosed reports use of an encrypter or decrypter after Close or after
	// an earlier error.
	ErrClosed = errors.New("use after close")
	// ErrPlaintextSize reports more plaintext than EncryptOptions.PlaintextSize
	// declared (caches count usage by the declared size).
	ErrPlaintextSize = errors.New("more plaintext than declared")
)

// ErrNotMessage reports input that is not a message of this format at all:
// empty, or its first bytes (format version, v1 message type, algorithm
// suite) are none that a message starts with. It refines rather than adds
// to the sentinels above: an error wrapping it also wraps exactly one of
// them, the one the same input was reported with before ErrNotMessage
// existed (ErrUnsupported for an unknown version or suite, ErrMalformed for
// a bad v1 message type, ErrTruncated for empty input).
var ErrNotMessage = errors.New("not an encrypted message (hsmenv/AWS Encryption SDK format)")

// Errors of closed encrypters and decrypters, made once.
var (
	errEncrypterClosed = fmt.Errorf("encrypter: %w", ErrClosed)
	errDecrypterClosed = fmt.Errorf("decrypter: %w", ErrClosed)
)

// alsoError is err, which errors.Is also matches to also: for an input
// now reported with a more precise sentinel, also is the one it was
// reported with before, which callers may check for.
type alsoError struct{ err, also error }

func (e *alsoError) Error() string   { return e.err.Error() }
func (e *alsoError) Unwrap() []error { return []error{e.err, e.also} }

// notMessage is ErrNotMessage, saying why when why is not empty, that also
// matches also (see ErrNotMessage).
func notMessage(also error, why string) error {
	err := ErrNotMessage
	if why != "" {
		err = fmt.Errorf("%w: %s", ErrNotMessage, why)
	}
	return &alsoError{err: err, also: also}
}
