package tpm

import (
	"context"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// oaepSHA256 is the RSA scheme of TPM RSA keys: OAEP with SHA-256 (MGF1
// SHA-256), empty label, as rawrsa.OAEPSHA256 on the host.
var oaepSHA256 = tpm2.TPMTRSADecrypt{
	Scheme:  tpm2.TPMAlgOAEP,
	Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP, &tpm2.TPMSEncSchemeOAEP{HashAlg: tpm2.TPMAlgSHA256}),
}

// rsaTemplate is the public area of an RSA-2048 decryption key with policy
// p, its scheme fixed to OAEP-SHA256 so the TPM refuses PKCS#1 v1.5.
func rsaTemplate(p policy) tpm2.TPMTPublic {
	digest := p.digest()
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgRSA,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: keyAttributes(p),
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: digest},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTRSAScheme{
				Scheme:  tpm2.TPMAlgOAEP,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP, &tpm2.TPMSEncSchemeOAEP{HashAlg: tpm2.TPMAlgSHA256}),
			},
			KeyBits: 2048,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
	}
}

// keyAttributes are the attributes of an asymmetric decryption key with
// policy p: TPM-generated, bound to this TPM and the SRK, noDA unless a PIN
// protects it.
func keyAttributes(p policy) tpm2.TPMAObject {
	return tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        p.empty(),
		NoDA:                !p.pin,
		Decrypt:             true,
	}
}

// wrapRSA encrypts dek with RSA-OAEP-SHA256 in the ESDK raw RSA layout:
// provider id = namespace, provider info = key name.
func (k *KeyKEK) wrapRSA(dek []byte) (envelope.EncryptedDataKey, error) {
	ct, err := rawrsa.OAEPSHA256.Encrypt(k.rsaPub, dek)
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("RSA-OAEP-SHA256: %w", err)
	}
	return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: []byte(k.name), Ciphertext: ct}, nil
}

// unwrapRSA runs TPM2_RSA_Decrypt (OAEP-SHA256, empty label) on the EDK
// (its size checked by parseEDK).
func (k *KeyKEK) unwrapRSA(ctx context.Context, edk envelope.EncryptedDataKey, auth []byte) ([]byte, error) {
	var dek []byte
	err := k.dev.run(ctx, func(c *conn) error {
		return c.use(&k.kf.obj, "the key", auth, k.pins, ErrUnwrap, func(h tpm2.AuthHandle) error {
			rsp, err := (tpm2.RSADecrypt{
				KeyHandle:  h,
				CipherText: tpm2.TPM2BPublicKeyRSA{Buffer: edk.Ciphertext},
				InScheme:   oaepSHA256,
			}).Execute(c.l)
			if err != nil {
				return err
			}
			dek = append([]byte(nil), rsp.Message.Buffer...)
			clear(rsp.Message.Buffer)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}
