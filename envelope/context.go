package envelope

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

// EncryptionContext is the non-secret key/value data bound to a message as
// additional authenticated data. It is stored in the header in the clear.
type EncryptionContext map[string]string

// reservedPrefix starts context keys that the format reserves for itself.
const reservedPrefix = "aws-crypto-"

// publicKeyContextKey holds the signature verification key of signed suites.
const publicKeyContextKey = "aws-crypto-public-key"

// sortedKeys returns the keys ordered by their raw UTF-8 bytes.
func (c EncryptionContext) sortedKeys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys) // Go strings compare bytewise: the format's order.
	return keys
}

// Serialize returns the context as the format serializes it for key
// wrapping: a u16 pair count followed by the pairs sorted by key, each key
// and value prefixed by its u16 length. An empty context serializes to no
// bytes at all. It fails if a key or value is not valid UTF-8 or does not
// fit the format's 16-bit lengths.
func (c EncryptionContext) Serialize() ([]byte, error) {
	if len(c) == 0 {
		return nil, nil
	}
	if len(c) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: %d pairs, at most %d", ErrContext, len(c), math.MaxUint16)
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(c)))
	for _, k := range c.sortedKeys() {
		v := c[k]
		if k == "" {
			return nil, fmt.Errorf("%w: empty key", ErrContext)
		}
		for _, s := range [2]string{k, v} {
			if !utf8.ValidString(s) {
				return nil, fmt.Errorf("%w: %q is not valid UTF-8", ErrContext, s)
			}
			if len(s) > math.MaxUint16 {
				return nil, fmt.Errorf("%w: a key or value of %d bytes, at most %d", ErrContext, len(s), math.MaxUint16)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
			out = append(out, s...)
		}
	}
	if len(out) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: serialized context is %d bytes, at most %d", ErrContext, len(out), math.MaxUint16)
	}
	return out, nil
}

// parseContext reads a serialized context (without the header's outer
// length). Duplicate keys and invalid UTF-8 are errors.
func parseContext(b []byte) (EncryptionContext, error) {
	c := EncryptionContext{}
	if len(b) == 0 {
		return c, nil
	}
	r := &sliceReader{b: b}
	n, err := r.u16()
	if err != nil {
		return nil, fmt.Errorf("%w: encryption context: pair count: %v", ErrMalformed, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: encryption context has a length but no pairs", ErrMalformed)
	}
	for i := 0; i < int(n); i++ {
		k, err1 := r.field16()
		v, err2 := r.field16()
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: encryption context pair %d runs past its length", ErrMalformed, i+1)
		}
		if len(k) == 0 {
			return nil, fmt.Errorf("%w: encryption context pair %d has an empty key", ErrMalformed, i+1)
		}
		if !utf8.Valid(k) || !utf8.Valid(v) {
			return nil, fmt.Errorf("%w: encryption context pair %d is not valid UTF-8", ErrMalformed, i+1)
		}
		if _, dup := c[string(k)]; dup {
			return nil, fmt.Errorf("%w: encryption context key %q appears twice", ErrMalformed, k)
		}
		c[string(k)] = string(v)
	}
	if r.len() != 0 {
		return nil, fmt.Errorf("%w: %d stray bytes after the encryption context", ErrMalformed, r.len())
	}
	return c, nil
}

// checkUserContext refuses keys the format reserves.
func checkUserContext(c EncryptionContext) error {
	for k := range c {
		if strings.HasPrefix(k, reservedPrefix) {
			return fmt.Errorf("%w: key %q uses the reserved prefix %q", ErrContext, k, reservedPrefix)
		}
	}
	return nil
}

// Contains reports whether every pair of want is in c with the same value.
func (c EncryptionContext) Contains(want EncryptionContext) bool {
	for k, v := range want {
		got, ok := c[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// requireContext checks that every required pair is present and equal, and
// names the first one that is not.
func requireContext(have, want EncryptionContext) error {
	for _, k := range want.sortedKeys() {
		got, ok := have[k]
		switch {
		case !ok:
			return fmt.Errorf("%w: required key %q is not in the message", ErrContext, k)
		case got != want[k]:
			return fmt.Errorf("%w: key %q is %q in the message, %q required", ErrContext, k, got, want[k])
		}
	}
	return nil
}

// clone returns a copy of c.
func (c EncryptionContext) clone() EncryptionContext {
	out := make(EncryptionContext, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// sliceReader reads big-endian fields from a byte slice.
type sliceReader struct{ b []byte }

func (r *sliceReader) len() int { return len(r.b) }

func (r *sliceReader) take(n int) ([]byte, error) {
	if n > len(r.b) {
		return nil, ErrTruncated
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *sliceReader) u16() (uint16, error) {
	b, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

func (r *sliceReader) field16() ([]byte, error) {
	n, err := r.u16()
	if err != nil {
		return nil, err
	}
	return r.take(int(n))
}
