package hsm

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/miekg/pkcs11"
)

// Profile holds what hsmenv must know about a vendor's token beyond what
// PKCS#11 reports: preferences, quirks and limits. docs/vendors has a page
// per vendor with the sources.
type Profile struct {
	// Name is the profile's name, as x-profile= selects it.
	Name string
	// Manufacturers are CK_TOKEN_INFO manufacturerID prefixes that select
	// the profile automatically.
	Manufacturers []string
	// MaxSessions bounds the session pool unless the URI says otherwise.
	MaxSessions int
	// AESMechanisms lists the AES KEK mechanisms to try, best first; the
	// first one the token reports (with the needed flags) is used.
	AESMechanisms []string
	// RSAPadding is the RSA padding used unless the URI gives x-padding.
	RSAPadding string
	// Modules are library file-name prefixes that select the profile when
	// the manufacturer id does not.
	Modules []string
	// KeyWrap lists, per key-wrap algorithm, the mechanism numbers that
	// perform it on this vendor's tokens, best first (nil: the standard
	// ones). The same number means different algorithms on different
	// tokens: 0x210A is RFC 5649 on SoftHSM2, PKCS#7 + RFC 3394 on NSS.
	KeyWrap map[byte][]uint
	// PINFormat, if set, turns the PIN into what C_Login expects.
	PINFormat func(string) string
	// KeygenOmit lists usage attributes Generate leaves out of its
	// templates (internal/kektemplate) because the vendor's tokens refuse
	// the false that hsmenv asks for and set them true themselves: keys made
	// there have that usage too, and Generate reports it.
	KeygenOmit []uint
	// TornReads says the module, while another process updates the token,
	// can read the token's state half-written and then takes the token for
	// absent or broken until C_Initialize runs again. SoftHSM2 up to 2.6.1
	// rewrites token.object on every C_Login and writes it out after
	// releasing its file lock (fixed upstream after 2.6.1 by commit 90aa89c,
	// "Flush files before unlocking"). A token not found and a C_Login
	// failing with CKR_GENERAL_ERROR or CKR_USER_PIN_NOT_INITIALIZED are
	// then retried after re-initializing the module, a few times.
	TornReads bool
	// InitToken, if set, is the command that initializes a token in a
	// free slot, for the error about a module with no token.
	InitToken string
}

func (p *Profile) formatPIN(pin string) string {
	if p.PINFormat != nil {
		return p.PINFormat(pin)
	}
	return pin
}

// Vendor key-wrap mechanism numbers (docs/vendors).
const (
	ckmCloudHSMKeyWrapNoPad   = 0x80002109 // RFC 3394
	ckmCloudHSMKeyWrapZeroPad = 0x8000216F // RFC 5649
	ckmLunaAESKW              = 0x80000170 // RFC 3394
	ckmLunaAESKWP             = 0x80000171 // RFC 5649
)

// profiles lists the vendor profiles; the last one is the generic default.
// Facts and sources: docs/vendors/*.md.
var profiles = []*Profile{
	{
		Name: "softhsm2", Manufacturers: []string{"SoftHSM"}, Modules: []string{"libsofthsm2"},
		// A second concurrent session made SoftHSM2 slower, not faster
		// (docs/vendors/softhsm2.md, Concurrency): a small pool.
		MaxSessions:   2,
		AESMechanisms: []string{MechAESGCM, MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha1", // SoftHSM2 2.6.1 does OAEP with SHA-1 only
		// Its 0x210A is RFC 5649 (40 bytes for a 32-byte key).
		KeyWrap:   map[byte][]uint{kwRFC3394: {pkcs11.CKM_AES_KEY_WRAP}, kwRFC5649: {ckmAESKeyWrapKWP, pkcs11.CKM_AES_KEY_WRAP_PAD}},
		TornReads: true,
		InitToken: "softhsm2-util --init-token --free --label NAME",
	},
	{
		Name: "nss", Manufacturers: []string{"Mozilla Foundation"}, Modules: []string{"libsoftokn3"},
		MaxSessions: 4,
		// NSS's C_Encrypt length query for GCM and 0x210B reports too small
		// a buffer, which ends the operation (miekg/pkcs11 always queries),
		// and its 0x210A is PKCS#7 padding then RFC 3394: plain RFC 3394.
		AESMechanisms: []string{MechAESKW},
		RSAPadding:    "oaep-sha256",
		KeyWrap:       map[byte][]uint{kwRFC3394: {pkcs11.CKM_AES_KEY_WRAP}},
	},
	{
		Name: "cloudhsm", Manufacturers: []string{"Marvell", "Cavium", "Amazon"}, Modules: []string{"libcloudhsm_pkcs11"},
		// 1,024 sessions per application; read-write sessions only (hsmenv
		// always opens read-write). PIN is "CU-name:password", passed as is.
		MaxSessions: 32,
		// CKM_AES_GCM there draws the IV in the HSM and writes it to pIv.
		AESMechanisms: []string{MechAESGCMHSMIV, MechCloudHSMGCM, MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha256",
		KeyWrap: map[byte][]uint{
			kwRFC3394: {ckmCloudHSMKeyWrapNoPad, pkcs11.CKM_AES_KEY_WRAP},
			kwRFC5649: {ckmCloudHSMKeyWrapZeroPad, ckmAESKeyWrapKWP},
		},
	},
	{
		Name: "yubihsm2", Manufacturers: []string{"Yubico"}, Modules: []string{"yubihsm_pkcs11"},
		// 16 sessions per device. No AES-GCM and no standard key wrap (its
		// CCM wrap takes no AAD): RSA-OAEP KEKs only.
		MaxSessions:   8,
		AESMechanisms: []string{},
		RSAPadding:    "oaep-sha256",
	},
	{
		Name: "luna", Manufacturers: []string{"SafeNet", "Thales", "Gemalto"}, Modules: []string{"libCryptoki2"},
		// FIPS-mode GCM before firmware 7.9.3 appends a 16-byte HSM IV that
		// the ESDK layout cannot carry: key wrap instead.
		MaxSessions:   16,
		AESMechanisms: []string{MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha256",
		KeyWrap: map[byte][]uint{
			kwRFC3394: {ckmLunaAESKW, pkcs11.CKM_AES_KEY_WRAP},
			kwRFC5649: {ckmLunaAESKWP, ckmAESKeyWrapKWP},
		},
	},
	{
		Name: "tpm2", Modules: []string{"libtpm2_pkcs11"},
		// tpm2-pkcs11 (Debian libtpm2-pkcs11-1 1.9.0, measured against
		// swtpm): its RSA keys are TPM keys that both sign and decrypt, and
		// C_GenerateKeyPair fails (CKR_GENERAL_ERROR, "User specified and TPM
		// specified attr mismatch") when the template says CKA_VERIFY or
		// CKA_SIGN false. Generate leaves both to the token, so an RSA KEK
		// made there can also sign. No AES-GCM, no AES key wrap and no
		// CKM_ECDH1_DERIVE: RSA-OAEP KEKs only. The manufacturer id is the
		// TPM's (IBM for swtpm), so the module name selects the profile.
		MaxSessions:   2,
		AESMechanisms: []string{},
		RSAPadding:    "oaep-sha256",
		KeygenOmit:    []uint{pkcs11.CKA_SIGN, pkcs11.CKA_VERIFY},
	},
	{
		Name:          "generic",
		MaxSessions:   8,
		AESMechanisms: []string{MechAESGCM, MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha256",
	},
}

// defaultKeyWrap maps key-wrap algorithms to the standard mechanisms. 0x210A
// is absent on purpose: it means different algorithms on different tokens.
var defaultKeyWrap = map[byte][]uint{kwRFC3394: {pkcs11.CKM_AES_KEY_WRAP}, kwRFC5649: {ckmAESKeyWrapKWP}}

// profileByName returns the named profile.
func profileByName(name string) (*Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("%w: x-profile=%q (one of %s)", ErrMechanism, name, strings.Join(names, ", "))
}

// selectProfile picks the profile whose manufacturer matches the token, else
// the one whose module name matches, else the generic one.
func selectProfile(info pkcs11.TokenInfo, modulePath string) *Profile {
	m := strings.TrimSpace(info.ManufacturerID)
	for _, p := range profiles {
		for _, prefix := range p.Manufacturers {
			if strings.HasPrefix(m, prefix) {
				return p
			}
		}
	}
	base := filepath.Base(modulePath)
	for _, p := range profiles {
		for _, prefix := range p.Modules {
			if strings.HasPrefix(base, prefix) {
				return p
			}
		}
	}
	return profiles[len(profiles)-1]
}
