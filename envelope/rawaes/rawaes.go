// Package rawaes is a software AES KEK with the EDK layout of the AWS
// Encryption SDK's raw AES keyring, so messages interoperate with every ESDK
// that holds the same key bytes. The key lives in process memory: use it for
// tests, interop and recovery keys, not for secrets a device should hold.
package rawaes

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// Scheme is the key URI scheme of this package.
const Scheme = "raw-aes"

const (
	tagBits = 128
	ivLen   = 12
	// infoSuffixLen is tag length (u32) + IV length (u32) + IV.
	infoSuffixLen = 4 + 4 + ivLen
)

// ErrBadKey reports key material or names the keyring cannot use.
var ErrBadKey = errors.New("raw AES key")

// KEK wraps data keys with AES-GCM under a key held in memory.
type KEK struct {
	namespace, name string
	aead            cipher.AEAD
}

// New returns a KEK for a 16-, 24- or 32-byte key. namespace becomes the
// EDK provider id and must not start with "aws-kms"; name is the key name.
// The key bytes are copied into the cipher; the caller may zero key.
func New(namespace, name string, key []byte) (*KEK, error) {
	if err := CheckNames(namespace, name); err != nil {
		return nil, err
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: %d bytes, need 16, 24 or 32", ErrBadKey, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KEK{namespace: namespace, name: name, aead: aead}, nil
}

// CheckNames validates a namespace and key name as the ESDK does.
func CheckNames(namespace, name string) error {
	switch {
	case namespace == "":
		return fmt.Errorf("%w: empty namespace", ErrBadKey)
	case strings.HasPrefix(namespace, "aws-kms"):
		return fmt.Errorf("%w: namespace %q: the prefix aws-kms is reserved", ErrBadKey, namespace)
	case name == "":
		return fmt.Errorf("%w: empty key name", ErrBadKey)
	}
	return nil
}

// String names the KEK in errors.
func (k *KEK) String() string {
	return fmt.Sprintf("raw-aes:namespace=%s;name=%s", k.namespace, k.name)
}

// Wrap encrypts dek with AES-GCM under a fresh random IV, the serialized
// encryption context as AAD.
func (k *KEK) Wrap(_ context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	aad, err := ec.Serialize()
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	iv := make([]byte, ivLen)
	if _, err := rand.Read(iv); err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	return envelope.EncryptedDataKey{
		ProviderID:   k.namespace,
		ProviderInfo: ProviderInfo(k.name, iv),
		Ciphertext:   k.aead.Seal(nil, iv, dek, aad),
	}, nil
}

// Claims reports whether edk names this key and has the raw AES layout.
func (k *KEK) Claims(edk envelope.EncryptedDataKey) bool {
	_, ok := ParseProviderInfo(edk.ProviderInfo, k.name)
	return ok && edk.ProviderID == k.namespace
}

// Unwrap decrypts an EDK this KEK claims.
func (k *KEK) Unwrap(_ context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	iv, ok := ParseProviderInfo(edk.ProviderInfo, k.name)
	if !ok || edk.ProviderID != k.namespace {
		return nil, fmt.Errorf("%w: the EDK is not for %s", ErrBadKey, k)
	}
	aad, err := ec.Serialize()
	if err != nil {
		return nil, err
	}
	dek, err := k.aead.Open(nil, iv, edk.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: wrong key, or the EDK or context was altered", ErrBadKey)
	}
	return dek, nil
}

// ProviderInfo builds the raw AES keyring's provider info: key name, tag
// length in bits (u32), IV length (u32), IV.
func ProviderInfo(name string, iv []byte) []byte {
	b := make([]byte, 0, len(name)+infoSuffixLen)
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, tagBits)
	b = binary.BigEndian.AppendUint32(b, uint32(len(iv)))
	return append(b, iv...)
}

// ParseProviderInfo returns the IV of a raw AES provider info that names
// name with a 128-bit tag and a 12-byte IV.
func ParseProviderInfo(info []byte, name string) (iv []byte, ok bool) {
	if len(info) != len(name)+infoSuffixLen || !bytes.HasPrefix(info, []byte(name)) {
		return nil, false
	}
	rest := info[len(name):]
	if binary.BigEndian.Uint32(rest) != tagBits || binary.BigEndian.Uint32(rest[4:]) != ivLen {
		return nil, false
	}
	return rest[8:], true
}

// OpenURI opens raw-aes:namespace=NS;name=NAME?key-file=PATH[&key-encoding=E].
// PATH holds the key: 16, 24 or 32 raw bytes by default (E raw). Because
// a file of text is a common mistake that could otherwise pass as a key
// (32 hex digits are 32 bytes: an AES-256 key made of text), a file whose
// content, less one line ending, is the hex (32, 48 or 64 digits) or base64
// text of a 16-, 24- or 32-byte key is refused, with a hint, unless E says
// how to read it: hex or base64 decode the text (surrounding white space
// ignored), raw takes the bytes as they are.
func OpenURI(_ context.Context, uri string) (envelope.KEK, error) {
	u, err := keyuri.Parse(uri)
	if err != nil {
		return nil, err
	}
	if err := u.Check([]string{"namespace", "name"}, []string{"key-file", "key-encoding"}); err != nil {
		return nil, err
	}
	ns, err := u.Require("namespace")
	if err != nil {
		return nil, err
	}
	name, err := u.Require("name")
	if err != nil {
		return nil, err
	}
	path, err := u.Require("key-file")
	if err != nil {
		return nil, err
	}
	key, err := readKeyFile(path, u.Query["key-encoding"])
	if err != nil {
		return nil, err
	}
	defer clear(key)
	kek, err := New(ns, name, key)
	if err != nil {
		return nil, fmt.Errorf("%w (in the key file)", err)
	}
	return kek, nil
}

// maxKeyFile bounds what is read of a key file: the longest text form of a
// key (64 hex digits) and a line ending fit.
const maxKeyFile = 128

// readKeyFile returns the key held in the file at path, read as encoding
// says (see OpenURI). The caller clears it.
func readKeyFile(path, encoding string) ([]byte, error) {
	b, err := secretfile.Read(path, maxKeyFile)
	if errors.Is(err, secretfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: the key file is larger than a key; it must hold 16, 24 or 32 raw key bytes", ErrBadKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrBadKey, err)
	}
	defer clear(b)
	var dec func([]byte) ([]byte, error)
	switch encoding {
	case "":
		if enc, form, decode := textForm(b); enc != "" {
			return nil, fmt.Errorf("%w: the key file is text (%s): decode it (%s) or add key-encoding=%s", ErrBadKey, form, decode, enc)
		}
		return bytes.Clone(b), nil
	case "raw":
		return bytes.Clone(b), nil
	case "hex":
		dec = func(t []byte) ([]byte, error) { return hex.AppendDecode(nil, t) }
	case "base64":
		dec = decodeBase64
	default:
		return nil, fmt.Errorf("%w: key-encoding=%s: use raw (the default), hex or base64", ErrBadKey, encoding)
	}
	key, err := dec(bytes.TrimSpace(b))
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("%w: key-encoding=%s, but the key file is not %s text", ErrBadKey, encoding, encoding)
	}
	return key, nil
}

// textForm says whether b, less one line ending, is the hex or base64 text
// of a 16-, 24- or 32-byte key: it returns the encoding (the key-encoding
// value that reads it), what b holds in words and the command that
// decodes it, or "" for anything else. Random key bytes are such text by
// chance with a probability below 2^-50 (16 never: no such text is 16
// bytes long).
func textForm(b []byte) (enc, form, decode string) {
	t := bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if n := len(t); (n == 32 || n == 48 || n == 64) && isHex(t) {
		return "hex", fmt.Sprintf("%d hex digits", n), "xxd -r -p"
	}
	key, err := decodeBase64(t)
	n := len(key)
	clear(key)
	if err == nil && (n == 16 || n == 24 || n == 32) {
		return "base64", fmt.Sprintf("%d base64 characters", len(t)), "base64 -d"
	}
	return "", "", ""
}

// decodeBase64 decodes standard base64, padded or not.
func decodeBase64(t []byte) ([]byte, error) {
	key, err := base64.StdEncoding.AppendDecode(nil, t)
	if err != nil {
		clear(key)
		key, err = base64.RawStdEncoding.AppendDecode(nil, t)
	}
	return key, err
}

// isHex reports whether b is all hex digits.
func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
