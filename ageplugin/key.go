// Package ageplugin puts hsmenv's KEKs, keys in PKCS#11 tokens and TPMs,
// behind age's recipients and identities, for age-plugin-hsmenv (the age
// plugin protocol itself is filippo.io/age/plugin's).
//
// A Key is what an identity (AGE-PLUGIN-HSMENV-1...) or a recipient
// (age1tag1... or age1hsmenv1...) names. Keys come in two kinds:
//
//   - A P-256 EC key (in a token, or a TPM ECC key file) is an age tagged
//     P-256 recipient (age1tag1..., stanza p256tag): age 1.3 and later
//     encrypt to it with neither this plugin nor the device, and the identity
//     decrypts by having the device compute the ECDH. For clients that cannot
//     encrypt to age1tag1 (age before 1.3, sops) the same key also has an
//     age1hsmenv1 recipient, which the plugin wraps to the same p256tag
//     stanza, on the host.
//   - Every other KEK has an age1hsmenv1 recipient carrying its key URI:
//     wrapping opens the key (for symmetric keys and tpm:seal, the device)
//     and writes an "hsmenv" stanza whose body is the KEK's EDK, as an
//     hsmenv message header would store it (envelope.EncryptedDataKey's
//     MarshalBinary), made under the encryption context StanzaContext.
//
// Identities and recipients carry key URIs without PINs: a URI with
// pin-value is refused; pin-source (a file path) is kept.
package ageplugin

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age/plugin"

	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// Name is the plugin's name: age runs age-plugin-hsmenv for recipients
// age1hsmenv1... and identities AGE-PLUGIN-HSMENV-1....
const Name = "hsmenv"

// ErrEncoding reports an identity or recipient string, or its payload,
// that is not one this package writes.
var ErrEncoding = errors.New("not an hsmenv identity or recipient")

// Key is a key an identity or recipient names: URI, the key URI (no PIN),
// and for P-256 EC keys P256, the public key. An identity has a URI and
// maybe P256; an age1hsmenv1 recipient has one of the two.
type Key struct {
	URI  string
	P256 *ecdh.PublicKey
}

// Payload layouts (the Bech32 data of identities and recipients):
//
//	identity:  version (1) | kind | [kind p256: compressed point (33)] | URI
//	recipient: version (1) | kind | kind uri: URI; kind p256: compressed point (33)
const (
	payloadVersion = 1
	kindURI        = 1
	kindP256       = 2
	// maxURI bounds the URI a payload may carry.
	maxURI = 4096
	// compressedP256 is the length of a compressed P-256 point.
	compressedP256 = 33
)

// CheckURI refuses a key URI an identity or recipient must not carry: one
// that does not parse, is empty or too long, or holds a PIN (pin-value).
func CheckURI(uri string) error {
	if uri == "" {
		return fmt.Errorf("%w: no key URI", ErrEncoding)
	}
	if len(uri) > maxURI {
		return fmt.Errorf("%w: a %d-byte key URI, at most %d", ErrEncoding, len(uri), maxURI)
	}
	if _, err := keyuri.Parse(uri); err != nil {
		return err
	}
	if keyuri.Redact(uri) != uri {
		return fmt.Errorf("the key URI %s holds a PIN (pin-value): an identity or recipient must not carry one; give pin-source=file:PATH instead, or let age ask", keyuri.Redact(uri))
	}
	return nil
}

// Identity returns the identity string of k, AGE-PLUGIN-HSMENV-1....
func (k Key) Identity() (string, error) {
	if err := CheckURI(k.URI); err != nil {
		return "", err
	}
	b := []byte{payloadVersion, kindURI}
	if k.P256 != nil {
		b[1] = kindP256
		p, err := compress(k.P256)
		if err != nil {
			return "", err
		}
		b = append(b, p...)
	}
	return plugin.EncodeIdentity(Name, append(b, k.URI...)), nil
}

// Recipient returns the recipient string to give age: age1tag1... for a
// P-256 key, else age1hsmenv1... with the URI.
func (k Key) Recipient() (string, error) {
	if k.P256 != nil {
		r, err := tagRecipient(k.P256)
		if err != nil {
			return "", err
		}
		return r.String(), nil
	}
	return k.PluginRecipient()
}

// PluginRecipient returns the age1hsmenv1... recipient of k: for a P-256
// key the public key (for clients that cannot encrypt to age1tag1), else
// the URI.
func (k Key) PluginRecipient() (string, error) {
	if k.P256 != nil {
		p, err := compress(k.P256)
		if err != nil {
			return "", err
		}
		return plugin.EncodeRecipient(Name, append([]byte{payloadVersion, kindP256}, p...)), nil
	}
	if err := CheckURI(k.URI); err != nil {
		return "", err
	}
	return plugin.EncodeRecipient(Name, append([]byte{payloadVersion, kindURI}, k.URI...)), nil
}

// ParseIdentity parses an AGE-PLUGIN-HSMENV-1... string.
func ParseIdentity(s string) (Key, error) {
	name, data, err := plugin.ParseIdentity(strings.TrimSpace(s))
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	if name != Name {
		return Key{}, fmt.Errorf("%w: an identity of plugin %q", ErrEncoding, name)
	}
	return DecodeIdentity(data)
}

// DecodeIdentity parses an identity's payload (its Bech32 data).
func DecodeIdentity(data []byte) (Key, error) {
	kind, rest, err := payloadKind(data, "identity")
	if err != nil {
		return Key{}, err
	}
	var k Key
	if kind == kindP256 {
		if len(rest) < compressedP256 {
			return Key{}, fmt.Errorf("%w: identity payload too short for a P-256 key", ErrEncoding)
		}
		if k.P256, err = decompress(rest[:compressedP256]); err != nil {
			return Key{}, err
		}
		rest = rest[compressedP256:]
	}
	k.URI = string(rest)
	if err := CheckURI(k.URI); err != nil {
		return Key{}, fmt.Errorf("%w: identity: %w", ErrEncoding, err)
	}
	return k, nil
}

// DecodeRecipient parses an age1hsmenv1 recipient's payload.
func DecodeRecipient(data []byte) (Key, error) {
	kind, rest, err := payloadKind(data, "recipient")
	if err != nil {
		return Key{}, err
	}
	if kind == kindP256 {
		if len(rest) != compressedP256 {
			return Key{}, fmt.Errorf("%w: a P-256 recipient holds %d bytes, not a compressed point", ErrEncoding, len(rest))
		}
		pub, err := decompress(rest)
		return Key{P256: pub}, err
	}
	if err := CheckURI(string(rest)); err != nil {
		return Key{}, fmt.Errorf("%w: recipient: %w", ErrEncoding, err)
	}
	return Key{URI: string(rest)}, nil
}

// payloadKind checks a payload's version and returns its kind and the rest.
func payloadKind(data []byte, what string) (byte, []byte, error) {
	switch {
	case len(data) < 2:
		return 0, nil, fmt.Errorf("%w: %s payload of %d bytes", ErrEncoding, what, len(data))
	case data[0] != payloadVersion:
		return 0, nil, fmt.Errorf("%w: %s payload version %d (this plugin reads %d; a newer age-plugin-hsmenv wrote it?)", ErrEncoding, what, data[0], payloadVersion)
	case data[1] != kindURI && data[1] != kindP256:
		return 0, nil, fmt.Errorf("%w: %s kind %d", ErrEncoding, what, data[1])
	case len(data)-2 > maxURI+compressedP256:
		return 0, nil, fmt.Errorf("%w: a %d-byte %s payload", ErrEncoding, len(data), what)
	}
	return data[1], data[2:], nil
}

// ParseRecipient parses an age1hsmenv1... string.
func ParseRecipient(s string) (Key, error) {
	name, data, err := plugin.ParseRecipient(strings.TrimSpace(s))
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	if name != Name {
		return Key{}, fmt.Errorf("%w: a recipient of plugin %q", ErrEncoding, name)
	}
	return DecodeRecipient(data)
}
