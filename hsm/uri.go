package hsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/pin"
)

// Scheme is the key URI scheme of this package (RFC 7512).
const Scheme = "pkcs11"

// DefaultNamespace is the EDK provider id of hardware KEKs whose EDKs follow
// an ESDK layout, so that an ESDK producer configured with it (and the key's
// name) encrypts messages the token opens.
const DefaultNamespace = "hsmenv"

// URI is a parsed RFC 7512 PKCS#11 URI, with the vendor attributes hsmenv
// adds (x-...). Tokens are selected by label, serial or slot id; objects by
// label and/or id, never by handle.
type URI struct {
	Token        string // token label
	Serial       string // token serial number
	Manufacturer string // token manufacturer id
	SlotID       *uint  // slot-id
	Object       string // object label
	ID           []byte // object id
	Type         string // secret-key, private-key, public-key or ""

	ModulePath string // query module-path; empty: the WithModule default
	PINSource  string // query pin-source, e.g. file:/path
	PINValue   string // query pin-value (tests only); never empty when given

	Namespace  string // x-namespace: EDK provider id (default "hsmenv")
	Name       string // x-name: EDK key name (default: the object label)
	Mechanism  string // x-mechanism: aes-gcm, aes-gcm-hsm-iv, cloudhsm-aes-gcm, aes-kw, aes-kwp, rsa-oaep, raw-ecdh
	Padding    string // x-padding for RSA: oaep-sha1..oaep-sha512, pkcs1
	InitArgs   string // x-init-args: C_Initialize pReserved string (NSS)
	Profile    string // x-profile: force a vendor profile
	MaxSession int    // x-max-sessions: bound on the session pool
	// AllowExtractable (x-allow-extractable=yes) accepts a KEK whose
	// CKA_EXTRACTABLE is true; by default such a key is refused.
	AllowExtractable bool
}

var (
	// The RFC 7512 attributes hsmenv selects by; others (model, library-*,
	// slot-description, module-name, ...) are refused rather than ignored.
	pathAttrs  = []string{"token", "serial", "manufacturer", "slot-id", "object", "id", "type", "x-namespace", "x-name", "x-mechanism", "x-padding"}
	queryAttrs = []string{"module-path", "pin-source", "pin-value", "x-init-args", "x-profile", "x-max-sessions", "x-allow-extractable", "x-namespace", "x-name", "x-mechanism", "x-padding"}
)

// ParseURI parses a pkcs11: URI. It reads nothing else: a URI without
// module-path parses (opening it needs WithModule), and an empty pin-value
// is refused (ErrPIN wrapping pin.ErrEmpty).
func ParseURI(s string) (*URI, error) {
	k, err := keyuri.Parse(s)
	if err != nil {
		return nil, err
	}
	if k.Scheme != Scheme {
		return nil, fmt.Errorf("%w: scheme %q is not pkcs11", keyuri.ErrSyntax, k.Scheme)
	}
	if len(k.Opaque) > 0 {
		return nil, fmt.Errorf("%w: pkcs11: %q is not an attribute (name=value)", keyuri.ErrSyntax, k.Opaque[0])
	}
	if err := k.Check(pathAttrs, queryAttrs); err != nil {
		return nil, err
	}
	u := &URI{
		Token: k.Path["token"], Serial: k.Path["serial"], Manufacturer: k.Path["manufacturer"],
		Object: k.Path["object"], Type: k.Path["type"],
		ModulePath: k.Query["module-path"], PINSource: k.Query["pin-source"], PINValue: k.Query["pin-value"],
		Namespace: k.Get("x-namespace"), Name: k.Get("x-name"), Mechanism: k.Get("x-mechanism"),
		Padding: k.Get("x-padding"), InitArgs: k.Query["x-init-args"], Profile: k.Query["x-profile"],
	}
	if id, ok := k.Path["id"]; ok {
		u.ID = []byte(id) // percent-decoded bytes
	}
	if v, ok := k.Path["slot-id"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: pkcs11: slot-id %q is not a number", keyuri.ErrSyntax, v)
		}
		slot := uint(n)
		u.SlotID = &slot
	}
	if v := k.Query["x-max-sessions"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: pkcs11: x-max-sessions %q is not a positive number", keyuri.ErrSyntax, v)
		}
		u.MaxSession = n
	}
	switch v := strings.ToLower(k.Query["x-allow-extractable"]); v {
	case "", "no", "false":
	case "yes", "true":
		u.AllowExtractable = true
	default:
		return nil, fmt.Errorf("%w: pkcs11: x-allow-extractable=%q (yes or no)", keyuri.ErrSyntax, v)
	}
	switch u.Type {
	case "", "secret-key", "private-key", "public-key":
	case "secret", "private", "public":
		u.Type += "-key"
	default:
		return nil, fmt.Errorf("%w: pkcs11: type=%q (secret-key, private-key or public-key)", keyuri.ErrSyntax, u.Type)
	}
	if v, ok := k.Query["pin-value"]; ok && v == "" {
		return nil, fmt.Errorf("%w: pkcs11: pin-value: %w", ErrPIN, pin.ErrEmpty)
	}
	if u.PINSource != "" && u.PINValue != "" {
		return nil, fmt.Errorf("%w: pkcs11: both pin-source and pin-value", keyuri.ErrSyntax)
	}
	return u, nil
}

// String formats the URI back (pin-value shown as "***").
func (u *URI) String() string {
	k := &keyuri.URI{Scheme: Scheme, Path: map[string]string{}, Query: map[string]string{}}
	set := func(m map[string]string, name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	set(k.Path, "token", u.Token)
	set(k.Path, "serial", u.Serial)
	set(k.Path, "manufacturer", u.Manufacturer)
	set(k.Path, "object", u.Object)
	set(k.Path, "id", string(u.ID))
	set(k.Path, "type", u.Type)
	if u.SlotID != nil {
		k.Path["slot-id"] = strconv.FormatUint(uint64(*u.SlotID), 10)
	}
	set(k.Path, "x-namespace", u.Namespace)
	set(k.Path, "x-name", u.Name)
	set(k.Path, "x-mechanism", u.Mechanism)
	set(k.Path, "x-padding", u.Padding)
	set(k.Query, "module-path", u.ModulePath)
	set(k.Query, "pin-source", u.PINSource)
	if u.PINValue != "" {
		k.Query["pin-value"] = "***"
	}
	set(k.Query, "x-init-args", u.InitArgs)
	set(k.Query, "x-profile", u.Profile)
	if u.MaxSession > 0 {
		k.Query["x-max-sessions"] = strconv.Itoa(u.MaxSession)
	}
	if u.AllowExtractable {
		k.Query["x-allow-extractable"] = "yes"
	}
	return k.String()
}

// describe names the key for messages: the URI's token and object
// attributes in the order people write them (no query, so no PIN nor
// paths), the id percent-encoded as RFC 7512 has it.
func (u *URI) describe() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	add("token", u.Token)
	add("serial", u.Serial)
	add("manufacturer", u.Manufacturer)
	if u.SlotID != nil {
		add("slot-id", strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	add("object", u.Object)
	var id strings.Builder
	for _, b := range u.ID {
		fmt.Fprintf(&id, "%%%02x", b)
	}
	add("id", id.String())
	add("type", u.Type)
	return Scheme + ":" + strings.Join(parts, ";")
}
