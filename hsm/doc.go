// Package hsm holds KEKs in PKCS#11 tokens (SoftHSM2, NSS softokn, AWS
// CloudHSM, YubiHSM2, Luna, and anything behind p11-kit), named by RFC 7512
// URIs:
//
//	pkcs11:token=LABEL;object=LABEL[;type=secret-key|private-key|public-key]?module-path=SO&pin-source=file:PATH
//
// Open (or OpenURI, for tables of envelope.KEK openers) returns the KEK a
// URI names. The key's type, its usage attributes, the token's mechanism
// list and a vendor profile choose its mechanism once; each mechanism is a
// type of its own implementing KEK, with its own EDK layout:
//
//   - AES-GCM in the token, with the ESDK raw AES keyring's layout (an ESDK
//     holding the same key bytes opens these EDKs);
//   - AES key wrap (RFC 3394) or key wrap with padding (RFC 5649) through
//     C_WrapKey/C_UnwrapKey, provider id ProviderKW;
//   - RSA-OAEP, wrapping on the host with the public key and unwrapping in
//     the token, with the ESDK raw RSA keyring's layout;
//   - raw ECDH with an EC key (P-256, P-384, P-521), wrapping on the host
//     with the public key and an ephemeral key and unwrapping with
//     CKM_ECDH1_DERIVE in the token, with the ESDK raw ECDH keyring's layout
//     (provider id raw-ecdh). Its public key is read without logging in, so
//     a KEK opened with type=public-key wraps without a PIN.
//
// The package reads no environment variable and prompts on no terminal.
// What a URI does not say comes from the caller as an Option: WithPIN gives
// a function asked for the PIN when the URI has neither pin-value nor
// pin-source (it may prompt; it gets the operation's ctx), WithModule the
// module used when the URI has no module-path (else ErrNoModule). An empty
// PIN is refused before it reaches the token, and a PIN the token rejected
// is never sent to it again, whatever supplies it.
//
// Every URI naming the same module and token shares one Token: one login
// and a bounded pool of sessions, which recovers from lost sessions, a lost
// login, a token that went away and came back (found again by label) and
// C_Finalize behind its back; each key found again is checked as OpenURI
// checked it. An extractable key, or one whose CKA_EXTRACTABLE cannot be
// read, is refused unless the URI says x-allow-extractable=yes. A ctx given
// to OpenURI, Generate, List, PublicKeyPEM, Wrap or Unwrap bounds the wait for
// a pooled session and goes to the WithPIN function; a PKCS#11 call already
// made runs to its end.
//
// Generate makes non-extractable, sensitive keys with only the usage they
// need and reads their attributes back; List and PublicKeyPEM (RSA and EC
// public keys as PEM SubjectPublicKeyInfo) do the rest of key management.
// Errors wrap the sentinels in errors.go.
//
// Opening a key with a PIN from the caller and wrapping a data key:
//
//	askPIN := func(ctx context.Context, what string) (string, error) {
//		return pinFromVault(ctx, what) // or a prompt showing what
//	}
//	kek, err := hsm.OpenURI(ctx, "pkcs11:token=demo;object=kek",
//		hsm.WithModule("/usr/lib/softhsm/libsofthsm2.so"), hsm.WithPIN(askPIN))
//	if err != nil {
//		return err // errors.Is(err, hsm.ErrPIN), hsm.ErrNoModule, ...
//	}
//	edk, err := kek.Wrap(ctx, dek, ec)       // in the token
//	...
//	dek2, err := kek.Unwrap(ctx, edk, ec)    // dek2 equals dek
package hsm
