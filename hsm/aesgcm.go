package hsm

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// aesGCM is an AES KEK that wraps with AES-GCM in the token, the encryption
// context as AAD, its EDKs in the ESDK raw AES layout (provider id the
// namespace; provider info the key name, tag bits, IV length and IV). Its
// mechanism (MechAESGCM, MechAESGCMHSMIV or MechCloudHSMGCM) says who draws
// the IV and where the token returns it; unwrapping is plain CKM_AES_GCM
// with the EDK's IV for all three.
type aesGCM struct{ *keyRef }

// Wrap encrypts dek under the key in the token, binding ec.
func (k *aesGCM) Wrap(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	aad, err := ec.Serialize()
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	var iv, ct []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		ckm := uint(pkcs11.CKM_AES_GCM)
		switch k.mech {
		case MechAESGCM:
			iv = make([]byte, 12)
			if _, err := rand.Read(iv); err != nil {
				return err
			}
		case MechAESGCMHSMIV:
			iv = make([]byte, 12) // the token overwrites it
		case MechCloudHSMGCM:
			iv, ckm = nil, ckmCloudHSMAESGCM // the token prepends its IV to the output
		}
		params := pkcs11.NewGCMParams(iv, aad, 128)
		defer params.Free()
		if err := k.tok.mod.ctx.EncryptInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckm, params)}, key); err != nil {
			return opError("C_EncryptInit (AES-GCM)", err)
		}
		out, err := k.tok.mod.ctx.Encrypt(h, dek)
		if err != nil {
			return opError("C_Encrypt (AES-GCM)", err)
		}
		switch k.mech {
		case MechAESGCMHSMIV:
			iv = params.IV()
		case MechCloudHSMGCM:
			if len(out) < 12 {
				return fmt.Errorf("%w: CKM_CLOUDHSM_AES_GCM returned %d bytes", ErrMechanism, len(out))
			}
			iv, out = out[:12], out[12:]
		}
		ct = out
		return nil
	})
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: wrap: %w", k, err)
	}
	if len(iv) != 12 || len(ct) != len(dek)+16 {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: %s: AES-GCM gave a %d-byte IV and %d bytes for a %d-byte key", ErrMechanism, k, len(iv), len(ct), len(dek))
	}
	return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: rawaes.ProviderInfo(k.name, iv), Ciphertext: ct}, nil
}

// Claims reports whether edk is in the ESDK raw AES layout for this key's
// namespace and name.
func (k *aesGCM) Claims(edk envelope.EncryptedDataKey) bool {
	_, ok := rawaes.ParseProviderInfo(edk.ProviderInfo, k.name)
	return ok && edk.ProviderID == k.namespace
}

// Unwrap decrypts the data key in the token; a wrong key, or an EDK or
// context altered, fails with ErrUnwrap.
func (k *aesGCM) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	if !k.Claims(edk) {
		return nil, k.notClaimed()
	}
	iv, _ := rawaes.ParseProviderInfo(edk.ProviderInfo, k.name)
	aad, err := ec.Serialize()
	if err != nil {
		return nil, err
	}
	var dek []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		params := pkcs11.NewGCMParams(iv, aad, 128)
		defer params.Free()
		if err := k.tok.mod.ctx.DecryptInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return opError("C_DecryptInit (AES-GCM)", err)
		}
		dek, err = k.tok.mod.ctx.Decrypt(h, edk.Ciphertext)
		if isRV(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED) {
			// SoftHSM2's answer to a tag that does not verify.
			return fmt.Errorf("%w: the token's AES-GCM tag did not verify: wrong key, or the EDK or encryption context was altered", ErrUnwrap)
		}
		return unwrapError("C_Decrypt (AES-GCM)", err)
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}
