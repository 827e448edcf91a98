package envelope

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
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
// data keys it made. It is the one interface of this package that users
// implement (the rawaes, rawrsa, hsm and tpm packages hold the others).
// Implementations that reach a device honour ctx. Implementations must be
// safe for concurrent use. Their errors say what went wrong without naming
// the KEK: a Keyring names it (by its String method, if it has one) when it
// reports them, so each error names its key once.
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

// Keyring is the set of KEKs messages are encrypted to and opened with.
// Every data key is wrapped under each of its KEKs, so any one of them
// opens the message; on decrypt its KEKs are tried in order, each on the
// EDKs it claims. A Keyring made by NewCachingKeyring also reuses data keys
// (see CacheOptions). A Keyring is safe for concurrent use.
type Keyring struct {
	keks  []KEK
	cache *keyCache // nil: every message gets its own data key
}

// NewKeyring returns a keyring over keks, tried in the given order on
// decrypt. A keyring with no KEK, or a nil one, fails when it is used.
func NewKeyring(keks ...KEK) *Keyring {
	return &Keyring{keks: append([]KEK(nil), keks...)}
}

// check reports a keyring that cannot be used.
func (k *Keyring) check() error {
	if k == nil || len(k.keks) == 0 {
		return errors.New("the keyring has no KEK")
	}
	for i, kek := range k.keks {
		if kek == nil {
			return fmt.Errorf("KEK %d of the keyring is nil", i+1)
		}
	}
	return nil
}

// dataKey is the plaintext data key of one message with what goes into its
// header: on encrypt, the EDKs, the context the KEKs bound (the caller's
// pairs plus the reserved ones its suite needs), split into the pairs the
// header stores and those it only authenticates, each serialized once, and
// the signing key of signed suites. Release zeroes the key, or hands it
// back to the cache that shares it.
type dataKey struct {
	key         []byte
	edks        []EncryptedDataKey
	context     EncryptionContext // all pairs, as the KEKs saw them
	stored      EncryptionContext // the pairs the header stores
	unstored    EncryptionContext // the pairs it only authenticates
	contextSer  []byte            // stored, serialized
	unstoredSer []byte            // unstored, serialized
	signingKey  *ecdsa.PrivateKey
	release     func() // if set, replaces zeroing
}

// Release ends the caller's use of the key. It is idempotent.
func (d *dataKey) Release() {
	if d == nil {
		return
	}
	if d.release != nil {
		d.release()
		d.release = nil
	} else {
		clear(d.key)
	}
	d.key, d.signingKey = nil, nil
}

// newDataKey returns the data key of a new message of size bytes (-1 if
// unknown) of suite s under ec, a context already checked for reserved
// keys, of which the pairs of the required keys are not to be stored: from
// the cache if the keyring has one that can serve it, else a fresh one.
func (k *Keyring) newDataKey(ctx context.Context, s *suite, ec EncryptionContext, required []string, size int64) (*dataKey, error) {
	if k.cache != nil {
		return k.cache.newDataKey(ctx, k, s, ec, required, size)
	}
	return k.makeDataKey(ctx, s, ec, required)
}

// makeDataKey draws a data key from crypto/rand, prepares the context
// (with a fresh signing key for signed suites) and wraps the key under
// every KEK. If any KEK fails the whole call fails and the key is zeroed.
func (k *Keyring) makeDataKey(ctx context.Context, s *suite, ec EncryptionContext, required []string) (*dataKey, error) {
	dk := &dataKey{context: ec.clone()}
	if s.signed() {
		sk, err := ecdsa.GenerateKey(s.curve, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("making the signing key: %w", err)
		}
		dk.context[publicKeyContextKey] = base64.StdEncoding.EncodeToString(compressPoint(&sk.PublicKey))
		dk.signingKey = sk
	}
	if err := dk.splitContext(required); err != nil {
		return nil, err
	}
	dk.key = make([]byte, s.keyLen)
	if _, err := rand.Read(dk.key); err != nil {
		return nil, fmt.Errorf("drawing a data key: %w", err)
	}
	dk.edks = make([]EncryptedDataKey, 0, len(k.keks))
	for _, kek := range k.keks {
		edk, err := kek.Wrap(ctx, dk.key, dk.context)
		if err != nil {
			dk.Release()
			return nil, fmt.Errorf("wrapping the data key under %s: %w", kekName(kek), err)
		}
		dk.edks = append(dk.edks, edk)
	}
	return dk, nil
}

// splitContext splits dk.context into the pairs to store and those of the
// required keys, to authenticate only, and serializes both.
func (dk *dataKey) splitContext(required []string) error {
	dk.stored, dk.unstored = dk.context, nil
	if len(required) > 0 {
		dk.stored, dk.unstored = dk.context.clone(), EncryptionContext{}
		for _, key := range required {
			dk.unstored[key] = dk.context[key]
			delete(dk.stored, key)
		}
	}
	var err error
	if dk.contextSer, err = dk.stored.Serialize(); err != nil {
		return err
	}
	dk.unstoredSer, err = dk.unstored.Serialize()
	return err
}

// openDataKey recovers the data key of a message from its EDKs: from the
// cache if the keyring has one that holds it, else through the KEKs.
func (k *Keyring) openDataKey(ctx context.Context, s *suite, edks []EncryptedDataKey, ec EncryptionContext) (*dataKey, error) {
	if k.cache != nil {
		return k.cache.openDataKey(ctx, k, s, edks, ec)
	}
	return k.unwrap(ctx, s, edks, ec)
}

// unwrap tries, KEK by KEK, every EDK the KEK claims, and returns the first
// data key recovered. When none opens, the error wraps ErrNoKEK and every
// individual failure.
func (k *Keyring) unwrap(ctx context.Context, s *suite, edks []EncryptedDataKey, ec EncryptionContext) (*dataKey, error) {
	e := &noKEKError{edks: len(edks)}
	for _, kek := range k.keks {
		f := kekFailure{kek: kekName(kek)}
		for _, edk := range edks {
			if !kek.Claims(edk) {
				continue
			}
			key, err := kek.Unwrap(ctx, edk, ec)
			if err == nil && len(key) != s.keyLen {
				clear(key)
				err = fmt.Errorf("unwrapped a %d-byte key, suite %s needs %d", len(key), s.id, s.keyLen)
			}
			if err == nil {
				return &dataKey{key: key}, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("unwrapping the data key: %w", ctx.Err())
			}
			f.errs = append(f.errs, err)
		}
		e.fails = append(e.fails, f)
	}
	return nil, e
}

// wrapAll wraps an existing data key under every KEK (Rewrap).
func (k *Keyring) wrapAll(ctx context.Context, key []byte, ec EncryptionContext) ([]EncryptedDataKey, error) {
	edks := make([]EncryptedDataKey, 0, len(k.keks))
	for _, kek := range k.keks {
		edk, err := kek.Wrap(ctx, key, ec)
		if err != nil {
			return nil, fmt.Errorf("wrapping the data key under %s: %w", kekName(kek), err)
		}
		edks = append(edks, edk)
	}
	return edks, nil
}

// noKEKError lists why each KEK failed.
type noKEKError struct {
	fails []kekFailure
	edks  int // EDKs in the message
}

// kekFailure is why one KEK opened no EDK: the errors of the EDKs it
// claimed, none if it claimed none.
type kekFailure struct {
	kek  string
	errs []error
}

// Error names each KEK that claimed an EDK with why its first one did not
// open (the others it claimed mostly fail the same way), KEKs that failed
// for the same reason together; and counts the KEKs no EDK names, naming
// such a KEK only when it is the only one. When the reasons would make a
// line longer than errorLineMax, the first is given and the others counted.
func (e *noKEKError) Error() string {
	var failed []kekReason // in keyring order, one per distinct reason
	var unnamed []string
	for _, f := range e.fails {
		if len(f.errs) == 0 {
			unnamed = append(unnamed, f.kek)
			continue
		}
		reason := f.errs[0].Error()
		i := slices.IndexFunc(failed, func(r kekReason) bool { return r.reason == reason })
		if i < 0 {
			failed = append(failed, kekReason{reason: reason})
			i = len(failed) - 1
		}
		failed[i].keks = append(failed[i].keks, f.kek)
	}
	s := ErrNoKEK.Error() + ": "
	switch {
	case len(failed) > 0:
		parts := make([]string, len(failed))
		others := 0
		for i, r := range failed {
			parts[i] = strings.Join(r.keks, ", ") + ": " + r.reason
			if i > 0 {
				others += len(r.keks)
			}
		}
		if all := strings.Join(parts, "; "); len(s)+len(all) <= errorLineMax || len(parts) == 1 {
			s += all
		} else {
			s += parts[0] + "; " + plural(others, "other key") + " failed for other reasons"
		}
		if len(unnamed) > 0 {
			s += "; no EDK names the other " + strings.TrimPrefix(plural(len(unnamed), "key"), "1 ")
		}
	case len(unnamed) == 1:
		s += unnamed[0] + ": no EDK of this message names it (it has " + plural(e.edks, "EDK") + ")"
	default:
		s += fmt.Sprintf("no EDK of this message names any of the %d keys (it has %s)", len(unnamed), plural(e.edks, "EDK"))
	}
	return s
}

func (e *noKEKError) Unwrap() []error {
	errs := []error{ErrNoKEK}
	for _, f := range e.fails {
		errs = append(errs, f.errs...)
	}
	return errs
}

// kekReason is a reason some KEKs failed for.
type kekReason struct {
	keks   []string
	reason string
}

// errorLineMax is the length of error line noKEKError aims to stay within.
const errorLineMax = 200

// plural returns n and noun, with an s unless n is 1: "1 EDK", "2 EDKs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// kekName describes a KEK for error messages.
func kekName(k KEK) string {
	if s, ok := k.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", k)
}
