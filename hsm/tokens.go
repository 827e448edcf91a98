package hsm

import (
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// SlotInfo is one slot of a module and the token in it, as the module
// reports them without a session or a login.
type SlotInfo struct {
	ID           uint       `json:"slot_id"`
	Description  string     `json:"description"`
	Manufacturer string     `json:"manufacturer"` // the slot's
	TokenPresent bool       `json:"token_present"`
	Removable    bool       `json:"removable"`
	Hardware     bool       `json:"hardware"`
	Token        *TokenInfo `json:"token,omitempty"` // nil: no token, or it could not be read
}

// TokenInfo describes a token: CK_TOKEN_INFO's strings (trimmed), its flags
// by name, the vendor profile hsmenv selects for it, and a pkcs11: URI that
// names it.
type TokenInfo struct {
	Label        string `json:"label"`
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Serial       string `json:"serial"`
	// Flags names the CK_TOKEN_INFO flags that are set (TokenFlagNames).
	Flags   []string `json:"flags"`
	Profile string   `json:"profile"`
	// URI names the token for key URIs: token= (and serial= when another
	// token of the module has the same label) and module-path=. Empty for
	// a token that is not initialized: no key URI can name it yet.
	URI string `json:"uri,omitempty"`
	// Capabilities is set by ListSlots when asked for.
	Capabilities *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities is what hsmenv can do with a token, in hsmenv's terms: from
// the mechanisms the token lists (with their flags) and its vendor profile,
// by the same rules OpenURI and Generate follow.
type Capabilities struct {
	// KEKs lists the KEK mechanisms (x-mechanism names) the token can run,
	// best first per key type: AES ones in the profile's order (the first
	// is what an AES key gets by default), "rsa-oaep (PADDING)" with the
	// profile's padding, "raw-ecdh".
	KEKs []string `json:"keks"`
	// Keygen lists the key types `hsmenv keygen` can make there.
	Keygen []string `json:"keygen"`
	// PKCS11 lists the PKCS#11 mechanisms hsmenv knows (for KEKs, key
	// generation and signing) that the token lists, each with the flags
	// hsmenv uses, e.g. "CKM_AES_GCM (encrypt, decrypt)". One listed here is
	// not necessarily used: the vendor profile decides (NSS lists AES-GCM,
	// which hsmenv does not use there).
	PKCS11 []string `json:"pkcs11"`
}

// tokenFlags names CK_TOKEN_INFO flags, in the order they are printed.
var tokenFlags = []struct {
	flag uint
	name string
}{
	{pkcs11.CKF_TOKEN_INITIALIZED, "initialized"},
	{pkcs11.CKF_LOGIN_REQUIRED, "login-required"},
	{pkcs11.CKF_USER_PIN_INITIALIZED, "user-pin-initialized"},
	{pkcs11.CKF_USER_PIN_LOCKED, "user-pin-locked"},
	{pkcs11.CKF_USER_PIN_FINAL_TRY, "user-pin-final-try"},
	{pkcs11.CKF_USER_PIN_COUNT_LOW, "user-pin-count-low"},
	{pkcs11.CKF_USER_PIN_TO_BE_CHANGED, "user-pin-to-be-changed"},
	{pkcs11.CKF_SO_PIN_LOCKED, "so-pin-locked"},
	{pkcs11.CKF_SO_PIN_FINAL_TRY, "so-pin-final-try"},
	{pkcs11.CKF_SO_PIN_COUNT_LOW, "so-pin-count-low"},
	{pkcs11.CKF_SO_PIN_TO_BE_CHANGED, "so-pin-to-be-changed"},
	{pkcs11.CKF_WRITE_PROTECTED, "write-protected"},
	{pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH, "protected-authentication-path"},
	{pkcs11.CKF_RNG, "rng"},
	{pkcs11.CKF_CLOCK_ON_TOKEN, "clock"},
}

// TokenFlagNames returns the names of the CK_TOKEN_INFO flags set in flags
// (initialized, login-required, user-pin-initialized, user-pin-locked,
// user-pin-final-try, user-pin-count-low, write-protected, ...), in a fixed
// order; flags it does not know are left out.
func TokenFlagNames(flags uint) []string {
	names := []string{}
	for _, f := range tokenFlags {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	return names
}

// ListSlots lists every slot of the module at path (loading it as
// LoadModule does) with its token, without logging in. With capabilities
// it also reads each present token's mechanisms (Capabilities). A slot
// whose token cannot be read is listed without it.
func ListSlots(path string, capabilities bool) ([]SlotInfo, error) {
	mod, err := LoadModule(path, "")
	if err != nil {
		return nil, err
	}
	p := mod.Ctx()
	ids, err := p.GetSlotList(false)
	if err != nil {
		return nil, fmt.Errorf("%w %s: listing slots: %v", ErrModule, mod.Path(), err)
	}
	slots := make([]SlotInfo, 0, len(ids))
	labels := map[string]int{}
	for _, id := range ids {
		si, err := p.GetSlotInfo(id)
		if err != nil {
			return nil, fmt.Errorf("%w %s: slot %d: %v", ErrModule, mod.Path(), id, err)
		}
		s := SlotInfo{
			ID: id, Description: strings.TrimSpace(si.SlotDescription), Manufacturer: strings.TrimSpace(si.ManufacturerID),
			TokenPresent: si.Flags&pkcs11.CKF_TOKEN_PRESENT != 0,
			Removable:    si.Flags&pkcs11.CKF_REMOVABLE_DEVICE != 0, Hardware: si.Flags&pkcs11.CKF_HW_SLOT != 0,
		}
		if s.TokenPresent {
			if ti, err := p.GetTokenInfo(id); err == nil {
				s.Token = newTokenInfo(mod, id, ti, capabilities)
				if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
					labels[s.Token.Label]++
				}
			}
		}
		slots = append(slots, s)
	}
	for _, s := range slots {
		if t := s.Token; t != nil && t.URI != "" && labels[t.Label] > 1 {
			t.URI = (&URI{Token: t.Label, Serial: t.Serial, ModulePath: mod.Path()}).String()
		}
	}
	return slots, nil
}

// newTokenInfo describes the token in slot id of mod.
func newTokenInfo(mod *Module, id uint, ti pkcs11.TokenInfo, capabilities bool) *TokenInfo {
	t := &Token{mod: mod, slot: id, info: ti, profile: selectProfile(ti, mod.Path())}
	info := &TokenInfo{
		Label: strings.TrimSpace(ti.Label), Manufacturer: strings.TrimSpace(ti.ManufacturerID),
		Model: strings.TrimSpace(ti.Model), Serial: strings.TrimSpace(ti.SerialNumber),
		Flags: TokenFlagNames(ti.Flags), Profile: t.profile.Name,
	}
	if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
		info.URI = (&URI{Token: info.Label, ModulePath: mod.Path()}).String()
	}
	if capabilities {
		info.Capabilities = t.capabilities()
	}
	return info
}

// capabilities says what hsmenv can do with t, by the rules of chooseAES,
// openRSA, openECDH and Generate.
func (t *Token) capabilities() *Capabilities {
	c := &Capabilities{KEKs: []string{}, Keygen: []string{}, PKCS11: []string{}}
	aes := false
	for _, m := range t.profile.AESMechanisms {
		if t.aesSupported(m) {
			c.KEKs = append(c.KEKs, m)
			aes = true
		}
	}
	padding := t.profile.RSAPadding
	rsa := t.supports(paddingMech(padding), pkcs11.CKF_DECRYPT)
	if rsa {
		c.KEKs = append(c.KEKs, MechRSAOAEP+" ("+padding+")")
	}
	ecdh := t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE)
	if ecdh {
		c.KEKs = append(c.KEKs, MechRawECDH)
	}
	if aes && t.supports(pkcs11.CKM_AES_KEY_GEN, pkcs11.CKF_GENERATE) {
		c.Keygen = append(c.Keygen, KeyAES256)
	}
	if rsa && t.supports(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR) {
		c.Keygen = append(c.Keygen, KeyRSA2048, KeyRSA3072)
	}
	if ecdh && t.supports(pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR) {
		c.Keygen = append(c.Keygen, KeyECP256, KeyECP384, KeyECP521)
	}
	for _, m := range usedMechanisms {
		if !t.supports(m.mech, 0) {
			continue
		}
		var flags []string
		for _, f := range mechFlags {
			if t.supports(m.mech, f.flag) {
				flags = append(flags, f.name)
			}
		}
		c.PKCS11 = append(c.PKCS11, fmt.Sprintf("%s (%s)", m.name, strings.Join(flags, ", ")))
	}
	return c
}

// usedMechanisms are the PKCS#11 mechanisms hsmenv may use, by name.
var usedMechanisms = []struct {
	mech uint
	name string
}{
	{pkcs11.CKM_AES_GCM, "CKM_AES_GCM"},
	{ckmCloudHSMAESGCM, "CKM_CLOUDHSM_AES_GCM"},
	{pkcs11.CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP"},
	{pkcs11.CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"},
	{ckmAESKeyWrapKWP, "CKM_AES_KEY_WRAP_KWP"},
	{ckmCloudHSMKeyWrapNoPad, "CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD"},
	{ckmCloudHSMKeyWrapZeroPad, "CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD"},
	{ckmLunaAESKW, "CKM_LUNA_AES_KW"},
	{ckmLunaAESKWP, "CKM_LUNA_AES_KWP"},
	{pkcs11.CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP"},
	{pkcs11.CKM_RSA_PKCS, "CKM_RSA_PKCS"},
	{pkcs11.CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE"},
	{pkcs11.CKM_ECDSA, "CKM_ECDSA"},
	{pkcs11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
	{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
	{pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
}

// mechFlags names the CK_MECHANISM_INFO flags hsmenv relies on.
var mechFlags = []struct {
	flag uint
	name string
}{
	{pkcs11.CKF_ENCRYPT, "encrypt"}, {pkcs11.CKF_DECRYPT, "decrypt"},
	{pkcs11.CKF_WRAP, "wrap"}, {pkcs11.CKF_UNWRAP, "unwrap"},
	{pkcs11.CKF_DERIVE, "derive"}, {pkcs11.CKF_SIGN, "sign"},
	{pkcs11.CKF_GENERATE, "generate"}, {pkcs11.CKF_GENERATE_KEY_PAIR, "generate-key-pair"},
}

// mechanismName returns the name of a mechanism hsmenv uses, else its
// number in hex.
func mechanismName(mech uint) string {
	for _, m := range usedMechanisms {
		if m.mech == mech {
			return m.name
		}
	}
	return fmt.Sprintf("mechanism %#x", mech)
}
