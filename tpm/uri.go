package tpm

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/pin"
)

// Scheme is the key URI scheme of this package.
const Scheme = "tpm"

// URI is a parsed tpm: key URI.
//
//	tpm:seal[;pcrs=sha256:0,7][;pin=yes][;srk=HEX]?device=DEV[&pin-source=file:PATH|&pin-value=PIN]
//	tpm:key-file=PATH[;pcrs=...][;pin=yes][;srk=HEX][;x-namespace=NS][;x-name=NAME]?device=DEV&...
type URI struct {
	// Seal is set for tpm:seal, a data key sealed to the SRK per message.
	Seal bool
	// KeyFile is the key file of an asymmetric key (key-file=).
	KeyFile string
	// PCRs are the SHA-256 PCRs to bind new objects to (pcrs=), ascending.
	PCRs []int
	// PIN says new objects need a PIN (pin=yes).
	PIN bool
	// SRK pins the name of the SRK (hash algorithm u16 + SHA-256 digest)
	// the KEK may use (srk=, hex): sealing and keygen refuse a TPM whose
	// SRK has another name, unsealing refuses EDKs made under another
	// SRK, and a key file must record it. Nil: the SRK the TPM presents is
	// trusted on first use.
	SRK []byte
	// Namespace and Name override the EDK provider id and key name of RSA
	// key files (x-namespace=, x-name=; default "hsmenv" and the key
	// file's base name without extension). ECC keys refuse Namespace; their
	// Name only identifies their EDKs of the old ProviderECDH layout.
	Namespace, Name string
	// Device is the TPM: a device path, tcp://HOST:PORT, unix:///PATH or a
	// tpm2-tools TCTI string (swtpm:, mssim:, device:); "" means the
	// WithDevice option, else DefaultDevice.
	Device string
	// PINSource ("file:PATH") and PINValue (tests only) give the PIN;
	// without them it comes from the WithPIN callback.
	PINSource, PINValue string
	// EK is the PEM file (public key or certificate) of another TPM's
	// endorsement key for tpm:ek=PEMFILE, which seals data keys to it
	// without a TPM; EKDevice is set for tpm:ek, which opens them on the
	// device. CA verifies the EK certificate first (ca=PEMFILE).
	EK       string
	EKDevice bool
	CA       string
	// PCRValues is the file of PCR values (pcr-values=) a tpm:ek seal is
	// bound to; ekPCRs is tpm:ek's pcrs= as given (values may be inline).
	PCRValues string
	ekPCRs    string
	// Authority seals to PCR values an authority signs instead of literal
	// ones (authority=PEMFILE, its ECDSA P-256 public key; tpm:seal and
	// tpm:ek=); SignedPCRs is the signed policy file, or a directory of
	// them, that unsealing uses (signed-pcrs=PATH).
	Authority  string
	SignedPCRs string
}

var (
	uriPath  = []string{"key-file", "pcrs", "pin", "srk", "x-namespace", "x-name", "ek", "ca", "authority"}
	uriQuery = []string{"device", "pin-source", "pin-value", "x-namespace", "x-name", "pcr-values", "signed-pcrs"}
)

// ParseURI parses a tpm: URI. Unknown attributes are an error. Errors
// never contain a pin-value.
func ParseURI(s string) (*URI, error) {
	k, err := keyuri.Parse(s)
	if err != nil {
		return nil, redactedError(s, err)
	}
	return fromKeyURI(k)
}

// fromKeyURI reads the tpm: attributes of k.
func fromKeyURI(k *keyuri.URI) (*URI, error) {
	var err error
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
	u.EK, u.CA, u.PCRValues = k.Path["ek"], k.Path["ca"], k.Query["pcr-values"]
	u.Authority, u.SignedPCRs = k.Path["authority"], k.Query["signed-pcrs"]
	if u.Authority != "" && (k.Path["pcrs"] != "" || strings.EqualFold(k.Path["pin"], "yes") || strings.EqualFold(k.Path["pin"], "true")) {
		return nil, fmt.Errorf("%w: tpm: authority= (PCR values the authority signs) excludes pcrs= and pin=yes", keyuri.ErrSyntax)
	}
	for _, w := range k.Opaque {
		switch w {
		case "seal":
			u.Seal = true
		case "ek":
			u.EKDevice = true
		default:
			return nil, fmt.Errorf("%w: tpm: %q is neither \"seal\", \"ek\" nor an attribute (name=value)", keyuri.ErrSyntax, w)
		}
	}
	if u.EK != "" || u.EKDevice {
		return ekURI(u, k)
	}
	if u.CA != "" || u.PCRValues != "" {
		return nil, fmt.Errorf("%w: tpm: ca= and pcr-values= are for tpm:ek=PEMFILE", keyuri.ErrSyntax)
	}
	if u.KeyFile != "" && (u.Authority != "" || u.SignedPCRs != "") {
		return nil, fmt.Errorf("%w: tpm: authority= and signed-pcrs= are for tpm:seal and tpm:ek", keyuri.ErrSyntax)
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
	// Given but empty, they would silently let the PIN come from elsewhere.
	if v, ok := k.Query["pin-value"]; ok && v == "" {
		return nil, fmt.Errorf("%w: tpm: pin-value is empty (%w: %w)", keyuri.ErrSyntax, ErrPIN, pin.ErrEmpty)
	}
	if v, ok := k.Query["pin-source"]; ok && v == "" {
		return nil, fmt.Errorf("%w: tpm: pin-source is empty (want file:PATH)", keyuri.ErrSyntax)
	}
	if v, ok := k.Path["pcrs"]; ok {
		if u.PCRs, err = ParsePCRs(v); err != nil {
			return nil, err
		}
	}
	if v, ok := k.Path["srk"]; ok {
		if u.SRK, err = parseSRKName(v); err != nil {
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

// ekURI checks the attributes of tpm:ek=PEMFILE and tpm:ek.
func ekURI(u *URI, k *keyuri.URI) (*URI, error) {
	switch {
	case u.EK != "" && u.EKDevice:
		return nil, fmt.Errorf("%w: tpm: ek and ek= exclude each other (ek=PEMFILE encrypts, ek on the device decrypts)", keyuri.ErrSyntax)
	case u.Seal || u.KeyFile != "":
		return nil, fmt.Errorf("%w: tpm: ek excludes seal and key-file=", keyuri.ErrSyntax)
	case u.EKDevice && u.CA != "":
		return nil, fmt.Errorf("%w: tpm:ek: ca= is for tpm:ek=PEMFILE (the encrypting side)", keyuri.ErrSyntax)
	case k.Path["pin"] != "" || k.Path["srk"] != "" || u.Namespace != "" || u.Name != "" || u.PINSource != "" || u.PINValue != "":
		return nil, fmt.Errorf("%w: tpm:ek takes pcrs=, ca= and pcr-values= (no pin, srk, x-namespace, x-name or PIN)", keyuri.ErrSyntax)
	case u.EK != "" && u.Device != "":
		return nil, fmt.Errorf("%w: tpm:ek=PEMFILE needs no device (it seals without a TPM)", keyuri.ErrSyntax)
	}
	u.ekPCRs = k.Path["pcrs"]
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
	if len(u.SRK) > 0 {
		k.Path["srk"] = hex.EncodeToString(u.SRK)
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

// redactedError returns err, the failure of keyuri.Parse on s, told without
// any pin-value of s: when s holds one, the error is that of s with every
// pin-value (path or query, name percent-decoded) replaced by "***", or, if
// that parses, a generic one (the value itself was at fault). So the text
// does not depend on a pin-value at all, not even on whether it decodes,
// whatever keyuri's own redaction covers.
func redactedError(s string, err error) error {
	red, found := redactPINs(s)
	if !found {
		return err
	}
	k, rerr := keyuri.Parse(red)
	if rerr == nil {
		_, rerr = fromKeyURI(k)
	}
	if rerr != nil {
		return rerr
	}
	return fmt.Errorf("%w: tpm: a pin-value is not valid percent-encoding", keyuri.ErrSyntax)
}

// redactPINs returns s with the value of every attribute named pin-value
// (name percent-decoded, any case, as keyuri hides it), in the path or the
// query, replaced by "***", splitting s as keyuri.Parse does; found says
// whether there was one.
func redactPINs(s string) (string, bool) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return s, false
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	found := false
	redact := func(part, sep string) string {
		fields := strings.Split(part, sep)
		for i, f := range fields {
			name, _, ok := strings.Cut(f, "=")
			if n, err := url.PathUnescape(name); ok && err == nil && strings.EqualFold(n, "pin-value") {
				fields[i], found = name+"=***", true
			}
		}
		return strings.Join(fields, sep)
	}
	out := scheme + ":" + redact(path, ";")
	if hasQuery {
		out += "?" + redact(query, "&")
	}
	return out, found
}

// srkNameLen is the length of an SRK name: TPM_ALG_SHA256 (u16) and a
// SHA-256 digest. hsmenv's SRKs (the ECC P-256 template, or a persistent key
// with its name algorithm) always have such names.
const srkNameLen = 2 + 32

// parseSRKName parses the hex of srk=.
func parseSRKName(v string) ([]byte, error) {
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != srkNameLen || b[0] != 0 || b[1] != byte(tpm2.TPMAlgSHA256) {
		return nil, fmt.Errorf("%w: tpm: srk=%q: want the SRK's name, %d hex digits starting 000b (`hsmenv keygen --key tpm:seal` prints it)", keyuri.ErrSyntax, v, 2*srkNameLen)
	}
	return b, nil
}

// checkSRKPin fails with ErrDifferentTPM when pin (srk=) is set and name,
// the SRK name the TPM presents or an EDK or key file records, differs.
func checkSRKPin(pin, name []byte, whose string) error {
	if pin == nil || bytes.Equal(pin, name) {
		return nil
	}
	return fmt.Errorf("%w: %s SRK %s, but the URI pins srk=%s: another TPM, this TPM was cleared, or something between hsmenv and the TPM presents another key",
		ErrDifferentTPM, whose, hex.EncodeToString(name), hex.EncodeToString(pin))
}

// OpenURI opens the KEK a tpm: URI names: a *SealKEK for tpm:seal, a
// *KeyKEK for tpm:key-file=. It does not reach the TPM (ctx is unused); the
// first Wrap or Unwrap that needs it does. opts give the PIN callback and
// the default device (see Option); the URI's pin-value, pin-source and
// device= take precedence.
func OpenURI(ctx context.Context, uri string, opts ...Option) (envelope.KEK, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Seal:
		return OpenSeal(u, opts...)
	case u.EK != "" || u.EKDevice:
		return openEK(u, opts...)
	}
	return OpenKeyFile(u, opts...)
}
