// Package resolver turns key URIs into KEKs. The URI scheme selects the
// package that handles it, through the one table below (kinds): a new kind
// of KEK is one new package and one line there. Each line says what that
// kind of key can do: open a KEK (all), generate a key, print a public key,
// list keys.
//
// The resolver never reads the environment or a terminal: what a key may
// need from the caller (a PIN, a default module or device) comes in Options.
package resolver

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rsa"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/tpm"
)

// Options carries what opening a key may need from its caller.
type Options struct {
	// PIN is called for a key whose URI has neither pin-source nor
	// pin-value, when the device needs a PIN; scheme is the URI's ("pkcs11"
	// or "tpm") and what names the token or key. It may prompt; it must
	// honour ctx. Nil means such keys fail with their package's ErrPIN.
	PIN func(ctx context.Context, scheme, what string) (string, error)
	// PKCS11Module is the module path for pkcs11: URIs without module-path.
	PKCS11Module string
	// TPMDevice is the device for tpm: URIs without device=; empty means
	// tpm.DefaultDevice.
	TPMDevice string
}

// kind is what the resolver can do with one scheme's keys; a nil function
// means the operation is not supported for them.
type kind struct {
	open      func(ctx context.Context, uri string, o Options) (envelope.KEK, error)
	generate  func(ctx context.Context, uri, keyType string, o Options) (string, error)
	publicKey func(ctx context.Context, uri string, o Options) ([]byte, error)
	list      func(ctx context.Context, uri string, o Options) ([]hsm.KeyInfo, error)
}

// kinds maps each URI scheme to what handles its keys.
var kinds = map[string]kind{
	rawaes.Scheme:  {open: softwareOpen(rawaes.OpenURI)},
	rawrsa.Scheme:  {open: softwareOpen(rawrsa.OpenURI), publicKey: rawRSAPublicKey},
	rawecdh.Scheme: {open: softwareOpen(rawecdh.OpenURI), publicKey: rawECDHPublicKey},
	hsm.Scheme:     pkcs11Kind,
	tpm.Scheme:     tpmKind,
}

// ErrUnknownScheme reports a URI whose scheme no KEK package handles.
var ErrUnknownScheme = errors.New("unknown key URI scheme")

// ErrNotSupported reports a key operation the URI's kind of key does not
// have (e.g. generating a raw software key in a device).
var ErrNotSupported = errors.New("not supported for this kind of key")

// Schemes lists the URI schemes that can be opened.
func Schemes() []string {
	out := make([]string, 0, len(kinds))
	for s := range kinds {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// lookup returns the kind of uri's scheme. Its errors show the URI only
// through keyuri.Redact: it may hold a PIN.
func lookup(uri string) (kind, error) {
	scheme, ok := keyuri.SchemeOf(uri)
	if !ok {
		return kind{}, fmt.Errorf("%w %q: no scheme (known: %s)", keyuri.ErrSyntax, keyuri.Redact(uri), strings.Join(Schemes(), ", "))
	}
	k, ok := kinds[scheme]
	if !ok {
		return kind{}, fmt.Errorf("%w %q in %q (known: %s)", ErrUnknownScheme, scheme, keyuri.Redact(uri), strings.Join(Schemes(), ", "))
	}
	return k, nil
}

// OpenKEK opens the KEK named by uri. ctx bounds any device I/O. Errors of
// this and the other functions taking a URI name the key once
// (keyuri.KeyError), never with its PIN.
func OpenKEK(ctx context.Context, uri string, o Options) (envelope.KEK, error) {
	k, err := lookup(uri)
	if err != nil {
		return nil, err
	}
	kek, err := k.open(ctx, uri, o)
	if err != nil {
		return nil, keyuri.Wrap(uri, err)
	}
	return kek, nil
}

// OpenKEKs opens every URI, in order.
func OpenKEKs(ctx context.Context, o Options, uris ...string) ([]envelope.KEK, error) {
	if len(uris) == 0 {
		return nil, errors.New("no key given")
	}
	keks := make([]envelope.KEK, 0, len(uris))
	for _, u := range uris {
		k, err := OpenKEK(ctx, u, o)
		if err != nil {
			return nil, err
		}
		keks = append(keks, k)
	}
	return keks, nil
}

// GenerateKey makes a new KEK where the URI says, of type keyType (aes-256,
// rsa-3072, rsa-2048, ...), and returns a description of it.
func GenerateKey(ctx context.Context, uri, keyType string, o Options) (string, error) {
	k, err := lookup(uri)
	if err != nil {
		return "", err
	}
	if k.generate == nil {
		return "", keyuri.Wrap(uri, fmt.Errorf("keygen: %w", ErrNotSupported))
	}
	msg, err := k.generate(ctx, uri, keyType, o)
	return msg, keyuri.Wrap(uri, err)
}

// PublicKeyPEM returns the PEM SPKI of an asymmetric KEK, for producers that
// wrap data keys without the device.
func PublicKeyPEM(ctx context.Context, uri string, o Options) ([]byte, error) {
	k, err := lookup(uri)
	if err != nil {
		return nil, err
	}
	if k.publicKey == nil {
		return nil, keyuri.Wrap(uri, fmt.Errorf("pubkey: %w (only asymmetric keys have a public half)", ErrNotSupported))
	}
	pem, err := k.publicKey(ctx, uri, o)
	return pem, keyuri.Wrap(uri, err)
}

// PublicKeyOf returns the public half of an opened KEK that has one: an
// *rsa.PublicKey or *ecdh.PublicKey for RSA and EC keys in tokens and TPMs
// and for the software RSA and ECDH KEKs (for an ephemeral-schema raw ECDH
// KEK, the recipient's key it encrypts to); nil for symmetric KEKs and
// sealed ones (tpm:seal).
func PublicKeyOf(kek envelope.KEK) crypto.PublicKey {
	var pub crypto.PublicKey
	switch k := kek.(type) {
	case interface{ PublicKey() *ecdh.PublicKey }:
		if p := k.PublicKey(); p != nil {
			pub = p
		}
	case interface{ PublicKey() *rsa.PublicKey }:
		if p := k.PublicKey(); p != nil {
			pub = p
		}
	case interface{ PublicKey() any }:
		switch p := k.PublicKey().(type) {
		case *ecdh.PublicKey:
			if p != nil {
				pub = p
			}
		case *rsa.PublicKey:
			if p != nil {
				pub = p
			}
		}
	}
	return pub
}

// OpenSigner opens a signing key a pkcs11: URI names (an EC P-256 private
// key with CKA_SIGN) as a crypto.Signer, for authorities that sign what
// TPMs check (tpm.SignPCRs). ctx bounds the token calls, of every Sign too.
func OpenSigner(ctx context.Context, uri string, o Options) (crypto.Signer, error) {
	if scheme, _ := keyuri.SchemeOf(uri); scheme != hsm.Scheme {
		return nil, keyuri.Wrap(uri, fmt.Errorf("signing: %w (a pkcs11: key, or a PEM file)", ErrNotSupported))
	}
	s, err := hsm.OpenSigner(ctx, uri, pkcs11Options(o)...)
	if err != nil {
		return nil, keyuri.Wrap(uri, err)
	}
	return s, nil
}

// ListKeys lists the keys of the device a URI names.
func ListKeys(ctx context.Context, uri string, o Options) ([]hsm.KeyInfo, error) {
	k, err := lookup(uri)
	if err != nil {
		return nil, err
	}
	if k.list == nil {
		return nil, keyuri.Wrap(uri, fmt.Errorf("keys list: %w", ErrNotSupported))
	}
	keys, err := k.list(ctx, uri, o)
	return keys, keyuri.Wrap(uri, err)
}
