package hsm

import (
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// Mechanism names, as x-mechanism= selects them.
const (
	// MechAESGCM is AES-GCM in the token with a host-drawn IV; EDKs in the
	// ESDK raw AES layout.
	MechAESGCM = "aes-gcm"
	// MechAESGCMHSMIV is AES-GCM where the token draws the IV and writes it
	// back into CK_GCM_PARAMS.pIv (AWS CloudHSM's CKM_AES_GCM).
	MechAESGCMHSMIV = "aes-gcm-hsm-iv"
	// MechCloudHSMGCM is CKM_CLOUDHSM_AES_GCM: the token draws the IV and
	// prepends it to the output.
	MechCloudHSMGCM = "cloudhsm-aes-gcm"
	// MechAESKW is RFC 3394 key wrap through C_WrapKey/C_UnwrapKey.
	MechAESKW = "aes-kw"
	// MechAESKWP is RFC 5649 key wrap with padding.
	MechAESKWP = "aes-kwp"
	// MechRSAOAEP is RSA-OAEP (or PKCS#1 v1.5 with x-padding=pkcs1): wrap on
	// the host with the public key, unwrap in the token; EDKs in the ESDK raw
	// RSA layout.
	MechRSAOAEP = "rsa-oaep"
	// MechRawECDH is raw ECDH with an EC key: wrap on the host with the
	// public key and an ephemeral key, unwrap with CKM_ECDH1_DERIVE in the
	// token; EDKs in the ESDK raw ECDH layout (provider id raw-ecdh).
	MechRawECDH = "raw-ecdh"
)

// Mechanism numbers miekg/pkcs11 has no constant for.
const (
	ckmAESKeyWrapKWP    = 0x210B     // PKCS#11 3.0 CKM_AES_KEY_WRAP_KWP (RFC 5649)
	ckmCloudHSMAESGCM   = 0x80001087 // CKM_CLOUDHSM_AES_GCM
	ckrAEADDecryptFails = 0x35       // PKCS#11 3.0 CKR_AEAD_DECRYPT_FAILED
)

// Key wrap algorithms as recorded in KW EDKs. They name the algorithm, not
// the mechanism number, which means different things on different tokens.
const (
	kwRFC3394 byte = 1
	kwRFC5649 byte = 2
)

// mechInfo caches what the token says of one mechanism.
type mechInfo struct {
	ok    bool
	flags uint
}

// supports reports whether the token lists mech with every one of flags.
func (t *Token) supports(mech, flags uint) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mechs == nil {
		t.mechs = map[uint]mechInfo{}
		list, err := t.mod.ctx.GetMechanismList(t.slot)
		if err != nil {
			return false
		}
		for _, m := range list {
			t.mechs[m.Mechanism] = mechInfo{}
		}
	}
	mi, listed := t.mechs[mech]
	if !listed {
		return false
	}
	if !mi.ok {
		info, err := t.mod.ctx.GetMechanismInfo(t.slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)})
		if err != nil {
			return false
		}
		mi = mechInfo{ok: true, flags: info.Flags}
		t.mechs[mech] = mi
	}
	return mi.flags&flags == flags
}

// kwMechanism returns the mechanism number that performs alg on this token,
// if any, from the profile's table.
func (t *Token) kwMechanism(alg byte) (uint, bool) {
	table := t.profile.KeyWrap
	if table == nil {
		table = defaultKeyWrap
	}
	for _, m := range table[alg] {
		if t.supports(m, pkcs11.CKF_WRAP|pkcs11.CKF_UNWRAP) {
			return m, true
		}
	}
	return 0, false
}

// keyUse says what an existing key's attributes allow; Generate passes
// anyUse since it sets the attributes itself.
type keyUse struct{ encrypt, wrap, derive bool }

var anyUse = keyUse{encrypt: true, wrap: true}

// allows reports whether a key with these attributes can run mechanism m.
func (u keyUse) allows(m string) bool {
	if isKeyWrap(m) {
		return u.wrap
	}
	return u.encrypt
}

// isKeyWrap reports whether the AES mechanism m is key wrap (C_WrapKey,
// CKA_WRAP/CKA_UNWRAP) rather than AES-GCM (C_Encrypt, CKA_ENCRYPT/CKA_DECRYPT).
func isKeyWrap(m string) bool { return m == MechAESKW || m == MechAESKWP }

// chooseAES picks the AES mechanism: the URI's, else the profile's first
// that the token supports and the key's usage attributes allow (so a key
// made for key wrap keeps being used for key wrap).
func (t *Token) chooseAES(want string, use keyUse) (string, error) {
	candidates := t.profile.AESMechanisms
	if want != "" {
		candidates = []string{want}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("%w: %s tokens have no AES mechanism that can carry an EDK; use an RSA KEK (keygen --type rsa-3072)", ErrMechanism, t.profile.Name)
	}
	var tried []string
	for _, m := range candidates {
		if !use.allows(m) {
			if want != "" {
				return "", fmt.Errorf("%w: x-mechanism=%s needs CKA_%s on the key, which it does not have", ErrMechanism, m, map[bool]string{true: "WRAP/CKA_UNWRAP", false: "ENCRYPT/CKA_DECRYPT"}[isKeyWrap(m)])
			}
			continue
		}
		if t.aesSupported(m) {
			return m, nil
		}
		tried = append(tried, m)
	}
	return "", fmt.Errorf("%w: %s supports none of %s for an AES KEK", ErrMechanism, t.sel, strings.Join(tried, ", "))
}

func (t *Token) aesSupported(m string) bool {
	const crypt = pkcs11.CKF_ENCRYPT | pkcs11.CKF_DECRYPT
	switch m {
	case MechAESGCM, MechAESGCMHSMIV:
		return t.supports(pkcs11.CKM_AES_GCM, crypt)
	case MechCloudHSMGCM:
		return t.supports(ckmCloudHSMAESGCM, crypt)
	case MechAESKW:
		_, ok := t.kwMechanism(kwRFC3394)
		return ok
	case MechAESKWP:
		_, ok := t.kwMechanism(kwRFC5649)
		return ok
	}
	return false
}

// oaepMechanism builds CKM_RSA_PKCS_OAEP with hash and MGF1 of the same hash
// and no label, or CKM_RSA_PKCS for PKCS#1 v1.5.
func oaepMechanism(padding string) (*pkcs11.Mechanism, error) {
	var hash, mgf uint
	switch padding {
	case "pkcs1":
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), nil
	case "oaep-sha1":
		hash, mgf = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
	case "oaep-sha256":
		hash, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	case "oaep-sha384":
		hash, mgf = pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384
	case "oaep-sha512":
		hash, mgf = pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512
	default:
		return nil, fmt.Errorf("%w: RSA padding %q", ErrMechanism, padding)
	}
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(hash, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil)), nil
}
