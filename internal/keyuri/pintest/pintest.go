// Package pintest is the oracle of the tests and fuzz targets that check
// that nothing shows a key URI's pin-value: it finds the pin-values of a URI,
// makes the same URI with placeholders in their place, and says which forms
// of a PIN must not show.
//
// It finds pin-values the simple way, written apart from the code under
// test, and must stay so: it imports no parser of key URIs (not
// internal/keyuri, nor hsm or tpm), since an oracle that found PINs with the
// code it checks would share that code's mistakes. It is imported only from
// _test.go files.
package pintest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// span is where the raw value of a pin-value attribute sits in a URI:
// s[start:end].
type span struct{ start, end int }

// find returns where the pin-value attributes of s hold their raw values:
// after the first ':' (or from the start when there is none), a path split
// at ';' up to the first '?', a query split at '&' after it, each part a
// name and a value after its first '='. A part is a pin-value when its
// name, percent-decoded, is "pin-value" in any case.
func find(s string) []span {
	var out []span
	start := strings.IndexByte(s, ':') + 1
	path, query, hasQuery := strings.Cut(s[start:], "?")
	scan := func(text string, off int, sep string) {
		for _, p := range strings.Split(text, sep) {
			if name, _, ok := strings.Cut(p, "="); ok {
				if n, err := url.PathUnescape(name); err == nil && strings.EqualFold(n, "pin-value") {
					out = append(out, span{off + len(name) + 1, off + len(p)})
				}
			}
			off += len(p) + len(sep)
		}
	}
	scan(path, start, ";")
	if hasQuery {
		scan(query, start+len(path)+1, "&")
	}
	return out
}

// Replace returns s with the raw value of every pin-value attribute
// replaced by with(raw), and those raw values in the order they stand in s.
func Replace(s string, with func(raw string) string) (replaced string, raws []string) {
	spans := find(s)
	for _, sp := range spans {
		raws = append(raws, s[sp.start:sp.end])
	}
	replaced = s
	for i := len(spans) - 1; i >= 0; i-- {
		sp := spans[i]
		replaced = replaced[:sp.start] + with(raws[i]) + replaced[sp.end:]
	}
	return replaced, raws
}

// Swap returns s with every pin-value replaced by a placeholder of the same
// kind: an empty value stays empty, one that percent-decodes becomes "Z",
// one that does not becomes "%Z". What a message says about s must be what
// it says about placeholder. forms are the forms of the pin-values that
// must not show: each raw value and, when it decodes, the decoded value,
// its url.PathEscape and its url.QueryEscape.
func Swap(s string) (placeholder string, forms []string) {
	placeholder, raws := Replace(s, func(raw string) string {
		if raw == "" {
			return ""
		}
		if _, err := url.PathUnescape(raw); err != nil {
			return "%Z"
		}
		return "Z"
	})
	for _, raw := range raws {
		forms = append(forms, raw)
		if d, err := url.PathUnescape(raw); err == nil {
			forms = append(forms, d, url.PathEscape(d), url.QueryEscape(d))
		}
	}
	return placeholder, forms
}

// Check returns an error if shown, a message about a URI, shows a pin-value
// of it: shown must be placeholder, the same message about the URI Swap
// made of it, and a form of forms may appear only where placeholder has it
// too (an object label equal to the PIN, say). what names the message.
func Check(what, shown, placeholder string, forms []string) error {
	if shown != placeholder {
		return fmt.Errorf("%s depends on a pin-value:\n%s\nwith the pin-values replaced:\n%s", what, shown, placeholder)
	}
	for _, f := range forms {
		if f != "" && strings.Contains(shown, f) && !strings.Contains(placeholder, f) {
			return fmt.Errorf("%s shows the pin-value %q: %s", what, f, shown)
		}
	}
	return nil
}

// Forms returns the forms of a known secret (a PIN, or a piece of one) that
// must not show: the secret, its url.PathEscape and url.QueryEscape, and
// its percent-decoded value when it decodes.
func Forms(secret string) []string {
	forms := []string{secret, url.PathEscape(secret), url.QueryEscape(secret)}
	if d, err := url.PathUnescape(secret); err == nil {
		forms = append(forms, d)
	}
	return forms
}

// NoSecret returns an error naming every non-empty form (Forms) of secrets
// that text, the message what, shows; nil if it shows none.
func NoSecret(what, text string, secrets []string) error {
	var errs []error
	for _, s := range secrets {
		for _, f := range Forms(s) {
			if f != "" && strings.Contains(text, f) {
				errs = append(errs, fmt.Errorf("%s shows %q: %s", what, f, text))
			}
		}
	}
	return errors.Join(errs...)
}
