package hsm

import (
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
	// PadIsRFC5649 says the token's CKM_AES_KEY_WRAP_PAD (0x210A) is RFC 5649
	// (SoftHSM2); elsewhere it may be PKCS#7 padding then RFC 3394 (NSS).
	PadIsRFC5649 bool
	// PINFormat, if set, turns the PIN into what C_Login expects.
	PINFormat func(string) string
}

func (p *Profile) formatPIN(pin string) string {
	if p.PINFormat != nil {
		return p.PINFormat(pin)
	}
	return pin
}

// profiles lists the vendor profiles; the last one is the generic default.
var profiles = []*Profile{
	{
		Name: "softhsm2", Manufacturers: []string{"SoftHSM"},
		// A second concurrent session made SoftHSM2 slower, not faster
		// (design.md §3): a small pool.
		MaxSessions:   2,
		AESMechanisms: []string{MechAESGCM, MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha1", // SoftHSM2 2.6.1 does OAEP with SHA-1 only
		PadIsRFC5649:  true,
	},
	{
		Name: "nss", Manufacturers: []string{"Mozilla Foundation"},
		MaxSessions: 4,
		// NSS's length query for GCM and 0x210A reports too small a buffer,
		// and its 0x210A is PKCS#7-pad-then-KW: plain RFC 3394 it is.
		AESMechanisms: []string{MechAESKW},
		RSAPadding:    "oaep-sha256",
	},
	{
		Name:          "generic",
		MaxSessions:   8,
		AESMechanisms: []string{MechAESGCM, MechAESKW, MechAESKWP},
		RSAPadding:    "oaep-sha256",
	},
}

// selectProfile picks the profile named, else the one whose manufacturer
// matches the token, else the generic one.
func selectProfile(name string, info pkcs11.TokenInfo) *Profile {
	if name != "" {
		for _, p := range profiles {
			if p.Name == name {
				return p
			}
		}
	}
	m := strings.TrimSpace(info.ManufacturerID)
	for _, p := range profiles {
		for _, prefix := range p.Manufacturers {
			if strings.HasPrefix(m, prefix) {
				return p
			}
		}
	}
	return profiles[len(profiles)-1]
}
