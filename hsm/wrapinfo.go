package hsm

import "fmt"

// WrapInfo says how the KEK wraps data keys, for diagnostics (hsmenv
// check): the mechanism and where it runs, the layout of its EDKs, and
// that it unwraps them (in the token).
func (k *aesGCM) WrapInfo() (mechanism, layout string, unwraps bool) {
	switch k.mech {
	case MechAESGCMHSMIV:
		mechanism = "CKM_AES_GCM in the token, IV drawn by the token"
	case MechCloudHSMGCM:
		mechanism = "CKM_CLOUDHSM_AES_GCM in the token"
	default:
		mechanism = "CKM_AES_GCM in the token"
	}
	return mechanism, "ESDK raw AES", true
}

// WrapInfo says how the KEK wraps data keys (see aesGCM.WrapInfo).
func (k *aesKW) WrapInfo() (mechanism, layout string, unwraps bool) {
	rfc := "RFC 3394"
	if k.alg == kwRFC5649 {
		rfc = "RFC 5649"
	}
	return fmt.Sprintf("%s (%s) in the token", mechanismName(k.ckm), rfc), ProviderKW, true
}

// WrapInfo says how the KEK wraps data keys (see aesGCM.WrapInfo).
func (k *rsaOAEP) WrapInfo() (mechanism, layout string, unwraps bool) {
	ckm, _ := oaepMechanism(k.padding) // openRSA checked the padding
	return fmt.Sprintf("%s: %s in the token, wrap on the host", k.host.Mechanism(), mechanismName(ckm.Mechanism)), "ESDK raw RSA", true
}

// WrapInfo says how the KEK wraps data keys (see aesGCM.WrapInfo).
func (k *rawECDH) WrapInfo() (mechanism, layout string, unwraps bool) {
	return fmt.Sprintf("ECDH %v: CKM_ECDH1_DERIVE in the token, wrap on the host", k.pub.Curve()), "ESDK raw ECDH", true
}
