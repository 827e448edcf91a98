package hsm

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// Signer is an ECDSA P-256 private key in a token as a crypto.Signer: the
// signature is made in the token (CKM_ECDSA over the digest given), the
// key never leaves it. hsmenv uses it for authorities that sign approved
// PCR sets (tpm sign-pcrs). It is safe for concurrent use.
type Signer struct {
	ref *keyRef
	pub *ecdsa.PublicKey
	ctx context.Context
}

// OpenSigner opens the EC P-256 private key a pkcs11: URI names, which must
// have CKA_SIGN, and its public key (the public key object of the same
// label and id). ctx bounds the token calls of OpenSigner and of every
// Sign (crypto.Signer's Sign takes no context), and goes to the WithPIN
// function.
// Its errors name the key once (keyuri.KeyError).
func OpenSigner(ctx context.Context, uri string, opts ...Option) (*Signer, error) {
	s, err := openSigner(ctx, uri, opts)
	if err != nil {
		return nil, keyuri.Wrap(uri, err)
	}
	return s, nil
}

func openSigner(ctx context.Context, uri string, opts []Option) (*Signer, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, errNoObject
	}
	priv := *u
	priv.Type = "private-key"
	tr, err := openTokenRef(&priv, opts)
	if err != nil {
		return nil, err
	}
	k := &keyRef{tokenRef: tr, class: pkcs11.CKO_PRIVATE_KEY, mech: "ecdsa"}
	var pub *ecdh.PublicKey
	err = tr.do(ctx, func(h pkcs11.SessionHandle, gen uint64) error {
		obj, err := tr.tok.findKey(h, &priv)
		if err != nil {
			return err
		}
		if obj.keyType != pkcs11.CKK_EC || obj.curve != ecdh.P256() {
			return fmt.Errorf("%w: not an EC P-256 private key", ErrMechanism)
		}
		a, err := tr.tok.mod.ctx.GetAttributeValue(h, obj.handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil)})
		if !boolAttr(a, err, false) {
			return fmt.Errorf("%w: the key does not have CKA_SIGN (hsmenv keygen makes derive-only EC keys; make a signing key, e.g. pkcs11-tool --keypairgen --key-type EC:prime256v1 --usage-sign)", ErrMechanism)
		}
		if pub, err = tr.tok.ecPublicKey(h, obj); err != nil {
			return err
		}
		k.label = obj.label
		k.handle, k.handleGen, k.hasHandle, k.seen = obj.handle, gen, true, true
		return nil
	})
	if err != nil {
		return nil, err
	}
	k.uri = &priv
	ecdsaPub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pub.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMechanism, err)
	}
	return &Signer{ref: k, pub: ecdsaPub, ctx: ctx}, nil
}

// Public returns the *ecdsa.PublicKey of the key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs digest (a SHA-256 hash) in the token and returns the ASN.1
// DER signature crypto/ecdsa returns; rand and opts are not used (the
// token draws its own nonce).
func (s *Signer) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	var raw []byte
	err := s.ref.withKey(s.ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := s.ref.tok.mod.ctx
		if err := p.SignInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, key); err != nil {
			return opError("C_SignInit (ECDSA)", err)
		}
		var err error
		raw, err = p.Sign(h, digest)
		return opError("C_Sign (ECDSA)", err)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.ref.uri.describe(), err)
	}
	if len(raw) != 64 {
		return nil, fmt.Errorf("%w: CKM_ECDSA gave a %d-byte signature, P-256 needs 64", ErrMechanism, len(raw))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
}
