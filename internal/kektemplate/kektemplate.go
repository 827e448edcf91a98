// Package kektemplate builds the PKCS#11 attribute templates of hsmenv's KEK
// objects, in one place for hsm.Generate and for the test harness that
// imports known key bytes (internal/softhsmtest), so a generated and an
// imported KEK carry the same attributes.
package kektemplate

import "github.com/miekg/pkcs11"

// Usage is what a KEK is for; it decides the key type and usage flags.
type Usage int

const (
	// AESEncrypt is an AES key for AES-GCM: CKA_ENCRYPT and CKA_DECRYPT only.
	AESEncrypt Usage = iota
	// AESWrap is an AES key for key wrap: CKA_WRAP and CKA_UNWRAP only.
	AESWrap
	// RSADecrypt is an RSA key pair for RSA-OAEP: the private key only
	// decrypts, the public key only encrypts (public exponent 65537).
	RSADecrypt
	// ECDerive is an EC key pair for raw ECDH (CKM_ECDH1_DERIVE): the
	// private key only derives; the public key has no usage at all (it is
	// read and used on the host) and is not private, so it can be read
	// without logging in.
	ECDerive
)

// ECParams returns CKA_EC_PARAMS for the NIST curve of the given size
// (256, 384 or 521): the DER of its named-curve OID; nil for other sizes.
func ECParams(bits int) []byte {
	switch bits {
	case 256:
		return []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // 1.2.840.10045.3.1.7
	case 384:
		return []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22} // 1.3.132.0.34
	case 521:
		return []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23} // 1.3.132.0.35
	}
	return nil
}

// Template returns the attributes of a new KEK labelled label with CKA_ID
// id: a token object that is private, sensitive and not extractable, with
// only the usage flags of u and every other usage flag false. pub is the
// template of the public half for RSADecrypt and ECDerive, nil otherwise.
// Callers add the size (CKA_VALUE_LEN, CKA_MODULUS_BITS), the curve
// (ECParams, to pub) or the key bytes (CKA_VALUE).
func Template(u Usage, label string, id []byte) (key, pub []*pkcs11.Attribute) {
	object := func(class, keyType uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
	}
	secret := func(class, keyType uint) []*pkcs11.Attribute {
		return append(object(class, keyType),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, u == ECDerive))
	}
	// SoftHSM2 makes CKA_SIGN_RECOVER true unless told otherwise.
	private := func(keyType uint) []*pkcs11.Attribute {
		return append(secret(pkcs11.CKO_PRIVATE_KEY, keyType),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, u == RSADecrypt),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN_RECOVER, false))
	}
	public := func(keyType uint) []*pkcs11.Attribute {
		return append(object(pkcs11.CKO_PUBLIC_KEY, keyType),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, u == RSADecrypt),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY_RECOVER, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false))
	}
	switch u {
	case RSADecrypt:
		return private(pkcs11.CKK_RSA), append(public(pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	case ECDerive:
		return private(pkcs11.CKK_EC), append(public(pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
	}
	encrypt := u == AESEncrypt
	return append(secret(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, !encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, !encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false)), nil
}
