package tpm

import (
	"context"
	"fmt"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// Scheme is the key URI scheme of this package.
const Scheme = "tpm"

// URI is a parsed tpm: key URI.
//
//	tpm:seal[;pcrs=sha256:0,7][;pin=yes]?device=DEV[&pin-source=file:PATH|&pin-value=PIN]
//	tpm:key-file=PATH[;pcrs=...][;pin=yes][;x-namespace=NS][;x-name=NAME]?device=DEV&...
type URI struct {
	// Seal is set for tpm:seal, a data key sealed to the SRK per message.
	Seal bool
	// KeyFile is the key file of an asymmetric key (key-file=).
	KeyFile string
	// PCRs are the SHA-256 PCRs to bind new objects to (pcrs=), ascending.
	PCRs []int
	// PIN says new objects need a PIN (pin=yes).
	PIN bool
	// Namespace and Name override the EDK provider id and key name of RSA
	// key files (x-namespace=, x-name=; default "hsmenv" and the key
	// file's base name without extension). Name also applies to ECC keys.
	Namespace, Name string
	// Device is the TPM: a device path, tcp://HOST:PORT or unix:///PATH
	// ("" means $HSMENV_TPM_DEVICE, else /dev/tpmrm0).
	Device string
	// PINSource ("file:PATH") and PINValue (tests only) give the PIN;
	// without them it comes from $HSMENV_TPM_PIN or a terminal prompt.
	PINSource, PINValue string
}

var (
	uriPath  = []string{"key-file", "pcrs", "pin", "x-namespace", "x-name"}
	uriQuery = []string{"device", "pin-source", "pin-value", "x-namespace", "x-name"}
)

// ParseURI parses a tpm: URI. Unknown attributes are an error.
func ParseURI(s string) (*URI, error) {
	k, err := keyuri.Parse(s)
	if err != nil {
		return nil, err
	}
	if k.Scheme != Scheme {
		return nil, fmt.Errorf("%w: scheme %q is not tpm", keyuri.ErrSyntax, k.Scheme)
	}
	if err := k.Check(uriPath, uriQuery); err != nil {
		return nil, err
	}
	u := &URI{
		KeyFile: k.Path["key-file"], Namespace: k.Get("x-namespace"), Name: k.Get("x-name"),
		Device: k.Query["device"], PINSource: k.Query["pin-source"], PINValue: k.Query["pin-value"],
	}
	for _, w := range k.Opaque {
		if w != "seal" {
			return nil, fmt.Errorf("%w: tpm: %q is neither \"seal\" nor an attribute (name=value)", keyuri.ErrSyntax, w)
		}
		u.Seal = true
	}
	switch {
	case u.Seal && u.KeyFile != "":
		return nil, fmt.Errorf("%w: tpm: seal and key-file= exclude each other", keyuri.ErrSyntax)
	case !u.Seal && u.KeyFile == "":
		return nil, fmt.Errorf("%w: tpm: the URI needs seal or key-file=PATH", keyuri.ErrSyntax)
	case u.Seal && (u.Namespace != "" || u.Name != ""):
		return nil, fmt.Errorf("%w: tpm:seal takes no x-namespace or x-name (its EDKs have their own layout)", keyuri.ErrSyntax)
	case u.PINSource != "" && u.PINValue != "":
		return nil, fmt.Errorf("%w: tpm: both pin-source and pin-value", keyuri.ErrSyntax)
	}
	if v, ok := k.Path["pcrs"]; ok {
		if u.PCRs, err = ParsePCRs(v); err != nil {
			return nil, err
		}
	}
	switch v := strings.ToLower(k.Path["pin"]); v {
	case "", "no", "false":
	case "yes", "true":
		u.PIN = true
	default:
		return nil, fmt.Errorf("%w: tpm: pin=%q (yes or no)", keyuri.ErrSyntax, v)
	}
	return u, nil
}

// String formats the URI back, pin-value hidden.
func (u *URI) String() string {
	k := &keyuri.URI{Scheme: Scheme, Path: map[string]string{}, Query: map[string]string{}}
	if u.Seal {
		k.Opaque = []string{"seal"}
	}
	set := func(m map[string]string, name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	set(k.Path, "key-file", u.KeyFile)
	if len(u.PCRs) > 0 {
		k.Path["pcrs"] = formatPCRs(u.PCRs)
	}
	if u.PIN {
		k.Path["pin"] = "yes"
	}
	set(k.Path, "x-namespace", u.Namespace)
	set(k.Path, "x-name", u.Name)
	set(k.Query, "device", u.Device)
	set(k.Query, "pin-source", u.PINSource)
	if u.PINValue != "" {
		k.Query["pin-value"] = "***"
	}
	return k.String()
}

// OpenURI opens the KEK a tpm: URI names (for the resolver): a *SealKEK for
// tpm:seal, a *KeyKEK for tpm:key-file=. It does not reach the TPM; the
// first Wrap or Unwrap that needs it does.
func OpenURI(ctx context.Context, uri string) (envelope.KEK, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Seal {
		return OpenSeal(u)
	}
	return OpenKeyFile(u)
}
