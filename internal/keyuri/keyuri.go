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

// Parse splits s into its scheme and attributes. A scheme that is not RFC
// 3986 syntax, a repeated attribute, an attribute without '=' in the query,
// or a bad percent-escape is an error.
//
// Errors show s through Redact and never echo a pin-value, nor a part that
// may be the rest of one: a word without '=' after pin-value (a PIN with an
// unescaped ';', '?' or '&') is an error, as is an attribute name that
// mentions pin-value without being it (e.g. "pin-value%3D1234").
func Parse(s string) (*URI, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok || scheme == "":
		return nil, syntaxError(s, "no scheme (expected e.g. raw-aes:, pkcs11:, tpm:)")
	case !validScheme(scheme):
		return nil, syntaxError(s, "the scheme before ':' must be a letter followed by letters, digits, '+', '-' or '.'")
	}
	u := &URI{Scheme: strings.ToLower(scheme), Path: map[string]string{}, Query: map[string]string{}}
	for _, p := range scan(rest, len(scheme)+1) {
		if problem := u.add(p); problem != "" {
			return nil, syntaxError(s, problem)
		}
	}
	return u, nil
}

// syntaxError is ErrSyntax for s, shown redacted and whole (the problem may
// be in its query), with what is wrong. The problem text must come from
// parts Redact shows, or name none.
func syntaxError(s, problem string) error {
	return &KeyError{Key: Redact(s), Err: fmt.Errorf("%w: %s", ErrSyntax, problem)}
}

// KeyError is an error about one key, which it names once, in front: "key
// NAME: what went wrong". Errors.Is and errors.As see Err.
type KeyError struct {
	// Key is the key's name as shown: a URI through Redact, never a PIN.
	Key string
	Err error
}

func (e *KeyError) Error() string { return "key " + e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Wrap returns err as a KeyError naming the key of uri by Name(uri), unless
// err is nil or already names a key (holds a KeyError): each error names its
// key once.
// (Parse's own syntax errors show the whole URI, redacted, as their
// problem may be in the query.)
func Wrap(uri string, err error) error {
	var ke *KeyError
	if err == nil || errors.As(err, &ke) {
		return err
	}
	return &KeyError{Key: Name(uri), Err: err}
}

// Name returns what names the key of uri in messages: uri through Redact,
// without its query part (module paths, devices and PIN sources, which the
// errors about them name themselves).
func Name(uri string) string {
	shown, _, _ := strings.Cut(Redact(uri), "?")
	return shown
}

// add adds one attribute or bare word to u, or says what is wrong with it.
// The text it returns quotes a part only if Redact shows that part.
func (u *URI) add(p part) string {
	if p.hide == hidePart {
		switch {
		case !p.hasValue:
			return "a part at or after pin-value has no '=' (in a PIN, write ';' as %3B, '?' as %3F and '&' as %26)"
		case mentionsSecret(p.name):
			return "an attribute name mentions pin-value but is not pin-value"
		}
		if p.query {
			return "a value holds ;pin-value=: " + queryHint
		}
		return "a value holds &pin-value=: " + pathHint
	}
	// A hideValue part has a name that decodes: looseUnescape leaves a bad
	// escape's '%' in place, so its name could not equal pin-value.
	name, err := url.PathUnescape(p.name)
	if err != nil {
		return fmt.Sprintf("attribute name %q: %v", p.name, err)
	}
	if !p.hasValue {
		if p.query {
			return fmt.Sprintf("query attribute %q has no value", name)
		}
		u.Opaque = append(u.Opaque, name)
		return ""
	}
	value, err := url.PathUnescape(p.value)
	if err != nil {
		if p.hide == hideValue {
			return fmt.Sprintf("the value of %q has a bad percent-escape (not shown)", name)
		}
		return fmt.Sprintf("attribute %q: %v", name, err)
	}
	into := u.Path
	if p.query {
		into = u.Query
	}
	if _, dup := into[name]; dup {
		return fmt.Sprintf("attribute %q appears twice", name)
	}
	into[name] = value
	return ""
}

// secretAttr is the attribute whose value is never shown.
const secretAttr = "pin-value"

// hide says what Redact hides of a part.
type hide uint8

const (
	showPart  hide = iota
	hideValue      // the value of pin-value (name matched ignoring case)
	hidePart       // all of it: it mentions pin-value, or may be the rest of a PIN
)

// part is one ';'- or '&'-separated piece of a key URI, raw.
type part struct {
	query    bool
	off      int    // offset of text in the whole URI
	text     string // the raw part
	name     string // raw, before the first '='
	value    string // raw, after the first '='
	hasValue bool
	hide     hide
}

// What a user who wrote the wrong separator needs to know.
const (
	pathHint  = "path attributes are separated by ';'"
	queryHint = "query attributes (after '?') are separated by '&'"
)

// scan splits rest, the text after "scheme:" at offset off of the URI, into
// its non-empty parts as Parse reads them, and marks what Redact hides: the
// value of every attribute whose name, percent-decoded, is pin-value in any
// case; every other part that mentions pin-value in its name or has it
// right after the other section's separator in its value; and every word
// without '=' that follows such a part (in the path or the query), which is
// the rest of a PIN holding an unescaped separator.
func scan(rest string, off int) []part {
	var parts []part
	afterSecret := false
	// wrongSep is the other section's separator: a value may hold
	// pin-value after it ("module-path=X;pin-value=1234").
	section := func(text, sep, wrongSep string, start int, query bool) {
		pos := start
		for _, t := range strings.Split(text, sep) {
			p := part{query: query, off: pos, text: t}
			pos += len(t) + len(sep)
			if t == "" {
				continue
			}
			p.name, p.value, p.hasValue = strings.Cut(t, "=")
			switch {
			case p.hasValue && strings.EqualFold(looseUnescape(p.name), secretAttr):
				p.hide, afterSecret = hideValue, true
			case mentionsSecret(p.name) || holdsSecret(p.value, wrongSep) || !p.hasValue && afterSecret:
				p.hide, afterSecret = hidePart, true
			default:
				afterSecret = false
			}
			parts = append(parts, p)
		}
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	section(path, ";", "&", off, false)
	if hasQuery {
		section(query, "&", ";", off+len(path)+1, true)
	}
	return parts
}

// holdsSecret reports whether value has pin-value (percent-decoded where
// it can be, in any case) right after a sep.
func holdsSecret(value, sep string) bool {
	pieces := strings.Split(value, sep)
	for _, piece := range pieces[1:] {
		if strings.HasPrefix(strings.ToLower(looseUnescape(piece)), secretAttr) {
			return true
		}
	}
	return false
}

// mentionsSecret reports whether s, percent-decoded where it can be, holds
// pin-value in any case.
func mentionsSecret(s string) bool {
	return strings.Contains(strings.ToLower(looseUnescape(s)), secretAttr)
}

// looseUnescape decodes the valid %XX escapes of s and leaves the rest.
func looseUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// validScheme reports whether s is an RFC 3986 scheme: a letter, then
// letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// SchemeOf returns the scheme of s, lower-cased, and whether s starts with
// one (RFC 3986 syntax, then ':'). Unlike the text before the first ':', it
// is safe to show: it cannot hold an attribute.
func SchemeOf(s string) (string, bool) {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || !validScheme(scheme) {
		return "", false
	}
	return strings.ToLower(scheme), true
}

// Check fails if u has an attribute outside the allowed path and query
// names, so that a typo is not silently ignored. It names the first unknown
// attribute in sorted order (path first), the same one every time. A value
// that holds another known attribute after the other section's separator
// (";pin-source=" in a query value, "&object=" in a path value) is refused
// with a hint about separators; the value itself is not shown.
func (u *URI) Check(path, query []string) error {
	for _, set := range []struct {
		have    map[string]string
		allowed []string
		where   string
		wrong   string // the other section's separator
		hint    string
	}{{u.Path, path, "path", "&", pathHint}, {u.Query, query, "query", ";", queryHint}} {
		for _, k := range sortedKeys(set.have) { // the same URI, the same error
			if !contains(set.allowed, k) {
				return fmt.Errorf("%w: %s: unknown %s attribute %q (known: %s)", ErrSyntax, u.Scheme, set.where, k, strings.Join(set.allowed, ", "))
			}
			if name, ok := holdsAttribute(set.have[k], set.wrong, path, query); ok {
				return fmt.Errorf("%w: %s: %q holds %q: %s", ErrSyntax, u.Scheme, k, set.wrong+name+"=", set.hint)
			}
		}
	}
	return nil
}

// holdsAttribute returns the first name of the lists that value holds as
// sep+name+"=", which means a separator of the other section was used.
func holdsAttribute(value, sep string, lists ...[]string) (string, bool) {
	for _, list := range lists {
		for _, name := range list {
			if strings.Contains(value, sep+name+"=") {
				return name, true
			}
		}
	}
	return "", false
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

// String formats u back, bare words first, then attributes sorted, every
// name, value and word percent-encoded, so that Parse(u.String()) is u. It
// shows pin-value in clear: messages show Redact(u.String()).
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	parts := make([]string, 0, len(u.Opaque)+len(u.Path))
	for _, w := range u.Opaque {
		parts = append(parts, escape(w))
	}
	parts = append(parts, encode(u.Path)...)
	b.WriteString(strings.Join(parts, ";"))
	if q := encode(u.Query); len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(strings.Join(q, "&"))
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func encode(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
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

// Redact returns s for error messages, with what may be secret replaced by
// "***": the value of every pin-value attribute (in the path or the query,
// its name percent-encoded or not, in any case), every part whose name
// otherwise mentions pin-value, and every word without '=' after one of
// those (the rest of a PIN that holds an unescaped separator). It reads s as
// Parse does, so a ';' inside a query value does not end it. When s does not
// start with a scheme, only the text up to its first '=' is shown, and
// nothing of it if that text mentions pin-value.
func Redact(s string) string {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !validScheme(scheme) {
		shown := s
		if i := strings.IndexByte(s, '='); i >= 0 {
			shown = s[:i+1]
		}
		switch {
		case mentionsSecret(shown):
			return "***"
		case len(shown) < len(s):
			return shown + "***"
		}
		return s
	}
	var b strings.Builder
	pos := 0
	for _, p := range scan(rest, len(scheme)+1) {
		start := p.off
		switch p.hide {
		case showPart:
			continue
		case hideValue:
			start += len(p.name) + 1
		}
		b.WriteString(s[pos:start])
		b.WriteString("***")
		pos = p.off + len(p.text)
	}
	b.WriteString(s[pos:])
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
