package envelope

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// EncryptedDataKey is a data key wrapped by one KEK, as stored in the
// message header. ProviderID and ProviderInfo say which KEK made it and how;
// their layout is the KEK's business.
type EncryptedDataKey struct {
	ProviderID   string
	ProviderInfo []byte
	Ciphertext   []byte
}

// KEK is a key-encryption key: it wraps data keys, and unwraps the encrypted
// data keys it made. Implementations that reach a device honour ctx.
// Implementations must be safe for concurrent use.
type KEK interface {
	// Wrap wraps dek, the plaintext data key, binding ec where the KEK can.
	// It must not retain dek.
	Wrap(ctx context.Context, dek []byte, ec EncryptionContext) (EncryptedDataKey, error)
	// Claims reports, without any device call, whether edk names this KEK
	// (its provider id and key name), so it is worth an Unwrap.
	Claims(edk EncryptedDataKey) bool
	// Unwrap returns the plaintext data key of an EDK this KEK claims. The
	// caller owns and zeroes the result.
	Unwrap(ctx context.Context, edk EncryptedDataKey, ec EncryptionContext) ([]byte, error)
}

// DataKey is the plaintext data key of one message together with the EDKs
// that wrap it. Release zeroes the plaintext key once the message is done.
type DataKey struct {
	// Key is the plaintext data key. It is never logged or written anywhere.
	Key []byte
	// EDKs are the data key wrapped under each KEK (empty on decrypt).
	EDKs []EncryptedDataKey
	// Context is, on encrypt, the context the header stores: the caller's
	// pairs plus the reserved ones the suite needs (the signature
	// verification key of signed suites). KEKs bound exactly this context.
	Context EncryptionContext
	// SigningKey signs the message footer of signed suites (encrypt only).
	SigningKey *ecdsa.PrivateKey
	// release, if set, replaces zeroing (a cache that still holds the key).
	release func()
}

// NewDataKey returns a DataKey that owns key and zeroes it on Release.
func NewDataKey(key []byte, edks []EncryptedDataKey) *DataKey {
	return &DataKey{Key: key, EDKs: edks}
}

// NewSharedDataKey returns a DataKey whose Release calls release instead of
// zeroing key: for caches that hand the same key to several messages.
func NewSharedDataKey(key []byte, edks []EncryptedDataKey, release func()) *DataKey {
	return &DataKey{Key: key, EDKs: edks, release: release}
}

// Release ends the caller's use of the key: it zeroes it, or hands it back to
// the cache it came from. Release is idempotent.
func (d *DataKey) Release() {
	if d == nil {
		return
	}
	if d.release != nil {
		d.release()
		d.release = nil
	} else {
		clear(d.Key)
	}
	d.Key = nil
	d.SigningKey = nil
}

// PrepareContext returns the context a new message of suite stores and its
// KEKs bind: a copy of ec, plus for signed suites a fresh ECDSA signing key
// whose public half (compressed point, base64) goes under the reserved key
// aws-crypto-public-key. Keyrings call it in NewDataKey, as the ESDK's
// materials managers do, so a caching keyring can reuse both together.
func PrepareContext(suite SuiteID, ec EncryptionContext) (EncryptionContext, *ecdsa.PrivateKey, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, nil, err
	}
	if err := checkUserContext(ec); err != nil {
		return nil, nil, err
	}
	out := ec.clone()
	var sk *ecdsa.PrivateKey
	if s.signed() {
		if sk, err = ecdsa.GenerateKey(s.curve, rand.Reader); err != nil {
			return nil, nil, fmt.Errorf("envelope: making the signing key: %w", err)
		}
		out[publicKeyContextKey] = base64.StdEncoding.EncodeToString(compressPoint(&sk.PublicKey))
	}
	if _, err := out.Serialize(); err != nil {
		return nil, nil, err
	}
	return out, sk, nil
}

// Keyring supplies the data key of each message: a fresh one wrapped under
// its KEKs on encrypt, one recovered from the header's EDKs on decrypt. The
// encrypter and decrypter call Release on what it returns.
type Keyring interface {
	// NewDataKey returns a new data key for suite, wrapped under every KEK.
	// plaintextSize is the message size if known, else -1.
	NewDataKey(ctx context.Context, suite SuiteID, ec EncryptionContext, plaintextSize int64) (*DataKey, error)
	// OpenDataKey recovers the data key from one of edks.
	OpenDataKey(ctx context.Context, suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) (*DataKey, error)
}

// MultiKeyring wraps each data key under every one of its KEKs, and opens a
// message with the first of its KEKs that can unwrap one of its EDKs.
type MultiKeyring struct {
	keks []KEK
}

// NewMultiKeyring returns a keyring over keks, tried in the given order on
// decrypt. It needs at least one KEK.
func NewMultiKeyring(keks ...KEK) (*MultiKeyring, error) {
	if len(keks) == 0 {
		return nil, errors.New("envelope: a keyring needs at least one KEK")
	}
	for i, k := range keks {
		if k == nil {
			return nil, fmt.Errorf("envelope: KEK %d is nil", i+1)
		}
	}
	return &MultiKeyring{keks: append([]KEK(nil), keks...)}, nil
}

// NewDataKey draws a data key from crypto/rand and wraps it under every KEK.
// If any KEK fails the whole call fails and the key is zeroed.
func (m *MultiKeyring) NewDataKey(ctx context.Context, suite SuiteID, ec EncryptionContext, _ int64) (*DataKey, error) {
	n := suite.DataKeyLen()
	if n == 0 {
		return nil, fmt.Errorf("%w: algorithm suite %s", ErrUnsupported, suite)
	}
	ec, signingKey, err := PrepareContext(suite, ec)
	if err != nil {
		return nil, err
	}
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("envelope: drawing a data key: %w", err)
	}
	edks := make([]EncryptedDataKey, 0, len(m.keks))
	for _, k := range m.keks {
		edk, err := k.Wrap(ctx, key, ec)
		if err != nil {
			clear(key)
			return nil, fmt.Errorf("envelope: wrapping the data key under %s: %w", kekName(k), err)
		}
		edks = append(edks, edk)
	}
	dk := NewDataKey(key, edks)
	dk.Context, dk.SigningKey = ec, signingKey
	return dk, nil
}

// OpenDataKey tries, KEK by KEK, every EDK the KEK claims, and returns the
// first data key recovered. When none opens, the error wraps ErrNoKEK and
// every individual failure.
func (m *MultiKeyring) OpenDataKey(ctx context.Context, suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) (*DataKey, error) {
	want := suite.DataKeyLen()
	var errs []error
	for _, k := range m.keks {
		claimed := false
		for i, edk := range edks {
			if !k.Claims(edk) {
				continue
			}
			claimed = true
			key, err := k.Unwrap(ctx, edk, ec)
			if err == nil && len(key) != want {
				clear(key)
				err = fmt.Errorf("unwrapped a %d-byte key, suite %s needs %d", len(key), suite, want)
			}
			if err == nil {
				return NewDataKey(key, nil), nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s on EDK %d (%s): %w", kekName(k), i+1, edk.ProviderID, err))
		}
		if !claimed {
			errs = append(errs, fmt.Errorf("%s: no EDK of this message names it", kekName(k)))
		}
	}
	return nil, &noKEKError{errs: errs, edks: len(edks)}
}

// noKEKError lists why each KEK failed.
type noKEKError struct {
	errs []error
	edks int
}

func (e *noKEKError) Error() string {
	s := fmt.Sprintf("%v (%d EDKs in the message)", ErrNoKEK, e.edks)
	for _, err := range e.errs {
		s += "; " + err.Error()
	}
	return s
}

func (e *noKEKError) Unwrap() []error { return append([]error{ErrNoKEK}, e.errs...) }

// kekName describes a KEK for error messages.
func kekName(k KEK) string {
	if s, ok := k.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", k)
}
