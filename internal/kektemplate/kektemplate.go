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
)

// Template returns the attributes of a new KEK labelled label with CKA_ID
// id: a token object that is private, sensitive and not extractable, with
// only the usage flags of u and every other usage flag false. pub is the
// template of the public half for RSADecrypt, nil otherwise. Callers add
// the size (CKA_VALUE_LEN, CKA_MODULUS_BITS) or the key bytes (CKA_VALUE).
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
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
	}
	if u == RSADecrypt {
		key = append(secret(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false))
		pub = append(object(pkcs11.CKO_PUBLIC_KEY, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false))
		return key, pub
	}
	encrypt := u == AESEncrypt
	return append(secret(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, !encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, !encrypt),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false)), nil
}
