package hsm

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
)

// ProviderKW is the EDK provider id of AES key-wrap EDKs (C_WrapKey), a
// layout of hsmenv's own: provider info = u16 length + key name + one byte
// naming the algorithm (1 = RFC 3394, 2 = RFC 5649); ciphertext = the
// wrapped data key.
const ProviderKW = "hsmenv-kw"

// aesKW is an AES KEK that wraps with C_WrapKey (MechAESKW: RFC 3394,
// MechAESKWP: RFC 5649), its EDKs in the ProviderKW layout. The encryption
// context is not bound into these EDKs (the message header binds it).
type aesKW struct {
	*keyRef
	alg byte // kwRFC3394 or kwRFC5649, recorded in the EDK
	ckm uint // the token's mechanism number for alg
}

// Wrap wraps dek in the token: dek becomes a short-lived session object,
// wrapped by C_WrapKey and destroyed.
func (k *aesKW) Wrap(ctx context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	var wrapped []byte
	err := k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := k.tok.mod.ctx
		obj, err := p.CreateObject(h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, dek),
		})
		if err != nil {
			return opError("C_CreateObject (data key)", err)
		}
		defer p.DestroyObject(h, obj)
		wrapped, err = p.WrapKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(k.ckm, nil)}, key, obj)
		return opError("C_WrapKey", err)
	})
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: wrap: %w", k, err)
	}
	return envelope.EncryptedDataKey{ProviderID: ProviderKW, ProviderInfo: kwInfo(k.name, k.alg), Ciphertext: wrapped}, nil
}

// Claims reports whether edk is a ProviderKW EDK for this key's name, of
// either algorithm.
func (k *aesKW) Claims(edk envelope.EncryptedDataKey) bool {
	name, _, ok := parseKWInfo(edk.ProviderInfo)
	return ok && edk.ProviderID == ProviderKW && name == k.name
}

// Unwrap unwraps the data key in the token with the algorithm the EDK
// names, and reads it out of the short-lived session object it becomes.
func (k *aesKW) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	if !k.Claims(edk) {
		return nil, k.notClaimed()
	}
	_, alg, _ := parseKWInfo(edk.ProviderInfo)
	ckm, ok := k.tok.kwMechanism(alg)
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot unwrap key-wrap algorithm %d", ErrMechanism, k, alg)
	}
	var dek []byte
	err := k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := k.tok.mod.ctx
		obj, err := p.UnwrapKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckm, nil)}, key, edk.Ciphertext, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		})
		if err != nil {
			return unwrapError("C_UnwrapKey", err)
		}
		defer p.DestroyObject(h, obj)
		attrs, err := p.GetAttributeValue(h, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return opError("C_GetAttributeValue (data key)", err)
		}
		dek = attrs[0].Value
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}

// kwInfo builds the provider info of a key-wrap EDK.
func kwInfo(name string, alg byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	b = append(b, name...)
	return append(b, alg)
}

func parseKWInfo(info []byte) (name string, alg byte, ok bool) {
	if len(info) < 3 {
		return "", 0, false
	}
	n := int(binary.BigEndian.Uint16(info))
	if len(info) != 2+n+1 {
		return "", 0, false
	}
	alg = info[2+n]
	if alg != kwRFC3394 && alg != kwRFC5649 {
		return "", 0, false
	}
	return string(info[2 : 2+n]), alg, true
}
