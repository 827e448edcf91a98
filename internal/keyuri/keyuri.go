// Package keyuri parses the key URIs of hsmenv: a scheme, then path
// attributes separated by ';', then optionally '?' and query attributes
// separated by '&', every name and value percent-encoded as in RFC 7512.
//
//	raw-aes:namespace=NS;name=NAME?key-file=PATH
//	pkcs11:token=T;object=O?module-path=/usr/lib/softhsm/libsofthsm2.so
//
// It only parses and formats; each KEK package says which attributes it
// takes.
package keyuri

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ErrSyntax reports a key URI that does not parse.
var ErrSyntax = errors.New("bad key URI")

// URI is a parsed key URI.
type URI struct {
	// Scheme is the part before the first ':', lower-cased.
	Scheme string
	// Path holds the ';'-separated attributes, decoded.
	Path map[string]string
	// Query holds the '&'-separated attributes, decoded.
	Query map[string]string
	// Opaque is set when the part after the scheme is not attributes at all
	// (e.g. "seal" in "tpm:seal;pcrs=..."): the leading bare words.
	Opaque []string
}

// Parse splits s into its scheme and attributes. A repeated attribute, an
// attribute without '=' in the query, or a bad percent-escape is an error.
func Parse(s string) (*URI, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%w %q: no scheme (expected e.g. raw-aes:, pkcs11:, tpm:)", ErrSyntax, Redact(s))
	}
	u := &URI{Scheme: strings.ToLower(scheme), Path: map[string]string{}, Query: map[string]string{}}
	path, query, _ := strings.Cut(rest, "?")
	if err := split(path, ";", u.Path, &u.Opaque); err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrSyntax, Redact(s), err)
	}
	if query != "" {
		var bare []string
		if err := split(query, "&", u.Query, &bare); err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrSyntax, Redact(s), err)
		}
		if len(bare) > 0 {
			return nil, fmt.Errorf("%w %q: query attribute %q has no value", ErrSyntax, Redact(s), bare[0])
		}
	}
	return u, nil
}

func split(s, sep string, into map[string]string, bare *[]string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, sep) {
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		name, err := url.PathUnescape(k)
		if err != nil {
			return fmt.Errorf("attribute name %q: %v", k, err)
		}
		if !hasValue {
			*bare = append(*bare, name)
			continue
		}
		value, err := url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("attribute %q: %v", name, err)
		}
		if _, dup := into[name]; dup {
			return fmt.Errorf("attribute %q appears twice", name)
		}
		into[name] = value
	}
	return nil
}

// Check fails if u has an attribute outside the allowed path and query
// names, so that a typo is not silently ignored.
func (u *URI) Check(path, query []string) error {
	for _, set := range []struct {
		have    map[string]string
		allowed []string
		where   string
	}{{u.Path, path, "path"}, {u.Query, query, "query"}} {
		for k := range set.have {
			if !contains(set.allowed, k) {
				return fmt.Errorf("%w: %s: unknown %s attribute %q (known: %s)", ErrSyntax, u.Scheme, set.where, k, strings.Join(set.allowed, ", "))
			}
		}
	}
	return nil
}

// Require returns the path or query attribute name, failing if it is absent
// or empty.
func (u *URI) Require(name string) (string, error) {
	if v := u.Get(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%w: %s: attribute %q is required", ErrSyntax, u.Scheme, name)
}

// Get returns the path attribute name, or else the query attribute.
func (u *URI) Get(name string) string {
	if v, ok := u.Path[name]; ok {
		return v
	}
	return u.Query[name]
}

// String formats u back, attributes sorted, values percent-encoded.
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	parts := append([]string(nil), u.Opaque...)
	parts = append(parts, encode(u.Path)...)
	b.WriteString(strings.Join(parts, ";"))
	if q := encode(u.Query); len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(strings.Join(q, "&"))
	}
	return b.String()
}

func encode(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, escape(k)+"="+escape(m[k]))
	}
	return out
}

// escape percent-encodes everything but RFC 3986 unreserved characters and
// the few that RFC 7512 leaves readable in values (':', '/', '@').
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:/@", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Redact returns s with the values of secret attributes (pin-value) hidden,
// for error messages.
func Redact(s string) string {
	const attr = "pin-value="
	i := strings.Index(s, attr)
	if i < 0 {
		return s
	}
	j := i + len(attr)
	end := strings.IndexAny(s[j:], ";&?")
	if end < 0 {
		return s[:j] + "***"
	}
	return s[:j] + "***" + s[j+end:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
