// Package resolver turns key URIs into KEKs. The URI scheme selects the
// package that opens it, through the one explicit table below: a new kind of
// KEK is one new package and one line here.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/tpm"
)

// Opener opens the KEK a URI of its scheme names.
type Opener func(ctx context.Context, uri string) (envelope.KEK, error)

// openers maps each URI scheme to the package that opens it.
var openers = map[string]Opener{
	rawaes.Scheme: rawaes.OpenURI,
	rawrsa.Scheme: rawrsa.OpenURI,
	hsm.Scheme:    hsm.OpenURI,
	tpm.Scheme:    tpm.OpenURI,
}

// ErrUnknownScheme reports a URI whose scheme no KEK package handles.
var ErrUnknownScheme = errors.New("unknown key URI scheme")

// Schemes lists the URI schemes that can be opened.
func Schemes() []string {
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// OpenKEK opens the KEK named by uri.
func OpenKEK(ctx context.Context, uri string) (envelope.KEK, error) {
	// Errors show the URI only through keyuri.Redact: it may hold a PIN.
	scheme, ok := keyuri.SchemeOf(uri)
	if !ok {
		return nil, fmt.Errorf("%w %q: no scheme (known: %s)", keyuri.ErrSyntax, keyuri.Redact(uri), strings.Join(Schemes(), ", "))
	}
	open, ok := openers[scheme]
	if !ok {
		return nil, fmt.Errorf("%w %q in %q (known: %s)", ErrUnknownScheme, scheme, keyuri.Redact(uri), strings.Join(Schemes(), ", "))
	}
	kek, err := open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyuri.Redact(uri), err)
	}
	return kek, nil
}

// OpenKeyring opens every URI and returns a multi-keyring over them, in
// order.
func OpenKeyring(ctx context.Context, uris ...string) (*envelope.MultiKeyring, error) {
	if len(uris) == 0 {
		return nil, errors.New("no key given")
	}
	keks := make([]envelope.KEK, 0, len(uris))
	for _, u := range uris {
		k, err := OpenKEK(ctx, u)
		if err != nil {
			return nil, err
		}
		keks = append(keks, k)
	}
	return envelope.NewMultiKeyring(keks...)
}
