package tpm

import "github.com/hsmenv/hsmenv/envelope/rawrsa"

// Forms lists the forms of tpm: URIs ParseURI accepts, as `hsmenv version`
// names the KEK kinds: tpm:seal, tpm:key-file=PATH, and tpm:ek (on the
// device) or tpm:ek=PEMFILE (encrypt-only, without the TPM).
var Forms = []string{"seal", "key-file", "ek"}

// WrapInfo says how the KEK wraps data keys, for diagnostics (hsmenv
// check): each data key sealed to the SRK (TPM2_Create, TPM2_Unseal), EDKs
// in the ProviderSeal layout, which it unwraps.
func (k *SealKEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	return "sealed to the SRK in the TPM (TPM2_Create, TPM2_Unseal)", ProviderSeal, true
}

// WrapInfo says how the KEK wraps data keys (see SealKEK.WrapInfo): with
// the public key on the host, unwrapped in the TPM (TPM2_RSA_Decrypt, or
// TPM2_ECDH_ZGen), in the ESDK raw RSA or raw ECDH layout.
func (k *KeyKEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	if k.rsaPub != nil {
		return rawrsa.OAEPSHA256.Mechanism() + ": TPM2_RSA_Decrypt in the TPM, wrap on the host", "ESDK raw RSA", true
	}
	return "ECDH P-256: TPM2_ECDH_ZGen in the TPM, wrap on the host", "ESDK raw ECDH", true
}

// WrapInfo says how the KEK wraps data keys (see SealKEK.WrapInfo): sealed
// to the endorsement key as a duplication blob (TPM2_Import), in the
// ProviderEK layout; made from a PEM file (tpm:ek=PEMFILE) it has no TPM
// and does not unwrap (encrypt-only).
func (k *EKKEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	if k.dev == nil {
		return "sealed to the endorsement key on the host (for TPM2_Import)", ProviderEK, false
	}
	return "sealed to the endorsement key (TPM2_Import, TPM2_Unseal in the TPM)", ProviderEK, true
}
