// Package hsm holds KEKs in PKCS#11 tokens (SoftHSM2, NSS softokn, AWS
// CloudHSM, YubiHSM2, Luna, and anything behind p11-kit), named by RFC 7512
// URIs:
//
//	pkcs11:token=LABEL;object=LABEL[;type=secret-key|private-key]?module-path=SO&pin-source=file:PATH
//
// Open returns the KEK a URI names. The key's type, its usage attributes,
// the token's mechanism list and a vendor profile choose how it wraps data
// keys, each with its EDK layout:
//
//   - AES-GCM in the token, with the ESDK raw AES keyring's layout (an ESDK
//     holding the same key bytes opens these EDKs);
//   - AES key wrap (RFC 3394) or key wrap with padding (RFC 5649) through
//     C_WrapKey/C_UnwrapKey, provider id ProviderKW;
//   - RSA-OAEP, wrapping on the host with the public key and unwrapping in
//     the token, with the ESDK raw RSA keyring's layout.
//
// Every URI naming the same module and token shares one Token: one login
// and a bounded pool of sessions, which recovers from lost sessions, a lost
// login, a token that went away and came back (found again by label) and
// C_Finalize behind its back; each key found again is checked as Open
// checked it. A PIN the token rejects is never sent again. An extractable
// key, or one whose CKA_EXTRACTABLE cannot be read, is refused unless the
// URI says x-allow-extractable=yes.
//
// Generate makes non-extractable, sensitive keys with only the usage they
// need and reads their attributes back; List, PublicKeyPEM and ImportAESKey
// do the rest of key management. Errors wrap the sentinels in errors.go.
package hsm
