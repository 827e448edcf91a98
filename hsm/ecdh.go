package hsm

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/asn1"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/kektemplate"
)

// rawECDH is an EC KEK in the ESDK raw ECDH keyring's layout (provider id
// rawecdh.ProviderID, the ephemeral schema): Wrap draws an ephemeral key on
// the host and agrees on a secret with the token key's public half, which
// OpenURI read once, so wrapping reaches no token and logs in to none;
// Unwrap has the token agree on the same secret with the private key
// (CKM_ECDH1_DERIVE) and finishes on the host (rawecdh.Open). An ESDK
// producer holding the public key (PublicKeyPEM) encrypts to the token;
// an ESDK raw ECDH keyring holding the private key would open its EDKs.
type rawECDH struct {
	*keyRef
	pub        *ecdh.PublicKey
	sealer     *rawecdh.KEK // the ephemeral-schema keyring to pub: Wrap, on the host
	compressed []byte       // what the provider info names the recipient by
	zLen       int          // the field length, the length of the shared secret
}

// openECDH returns the raw ECDH KEK of the EC key obj, the private key or
// (type=public-key) the public one; either way Unwrap uses the private key
// of the same label and id, looked up when it is first needed.
func (k *keyRef) openECDH(ctx context.Context, obj objectInfo) (KEK, error) {
	u := k.uri
	if u.Mechanism != "" && u.Mechanism != MechRawECDH {
		return nil, fmt.Errorf("%w: x-mechanism=%s does not fit an EC key (raw-ecdh)", ErrMechanism, u.Mechanism)
	}
	if u.Padding != "" || u.Namespace != "" || u.Name != "" {
		return nil, fmt.Errorf("%w: an EC key: its EDKs name it by its public key, so x-padding, x-namespace and x-name do not apply", ErrMechanism)
	}
	if obj.curve == nil {
		return nil, fmt.Errorf("%w: the key is on a curve raw ECDH does not use (P-256, P-384 and P-521 only)", ErrMechanism)
	}
	if !k.tok.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
		return nil, fmt.Errorf("%w: %s cannot derive with CKM_ECDH1_DERIVE, which unwrapping needs", ErrMechanism, k.tok.sel)
	}
	pub := obj.ecPub
	if obj.class == pkcs11.CKO_PRIVATE_KEY {
		if !obj.use.derive {
			return nil, fmt.Errorf("%w: the key does not have CKA_DERIVE, which raw ECDH needs", ErrMechanism)
		}
		err := k.doPublic(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
			var err error
			pub, err = k.tok.ecPublicKey(h, obj)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	priv := *u
	priv.Type = "private-key"
	k.uri, k.class, k.mech = &priv, pkcs11.CKO_PRIVATE_KEY, MechRawECDH
	if obj.class != pkcs11.CKO_PRIVATE_KEY {
		k.hasHandle = false // the handle found is the public key's
	}
	return &rawECDH{keyRef: k, pub: pub, sealer: rawecdh.NewEphemeral(pub), compressed: rawecdh.Compressed(pub), zLen: fieldLen(obj.curve)}, nil
}

// Wrap wraps dek for the token key on the host, with an ephemeral key
// drawn from crypto/rand; ctx is not used and the token is not reached.
func (k *rawECDH) Wrap(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	edk, err := k.sealer.Wrap(ctx, dek, ec)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	return edk, nil
}

// Claims reports whether edk is a raw ECDH EDK whose provider info names
// this key's public key as the recipient (a malformed one is not claimed).
func (k *rawECDH) Claims(edk envelope.EncryptedDataKey) bool {
	_, ok := k.claim(edk)
	return ok
}

func (k *rawECDH) claim(edk envelope.EncryptedDataKey) (*rawecdh.Info, bool) {
	if edk.ProviderID != rawecdh.ProviderID {
		return nil, false
	}
	info, err := rawecdh.ParseInfo(edk.ProviderInfo)
	if err != nil || !bytes.Equal(rawecdh.Compressed(info.Recipient), k.compressed) {
		return nil, false
	}
	return info, true
}

// Unwrap has the token derive the shared secret with the EDK's sender key
// and recovers the data key from it on the host. A wrong key, or an EDK or
// context altered, fails with ErrUnwrap (and rawecdh.ErrCommitment where
// the commitment check caught it).
func (k *rawECDH) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	info, ok := k.claim(edk)
	if !ok {
		return nil, k.notClaimed()
	}
	z, err := k.derive(ctx, info.Sender)
	if err != nil {
		return nil, err
	}
	defer clear(z)
	dek, err := rawecdh.Open(z, info, edk, ec)
	if err != nil {
		// rawecdh's errors say what to suspect (wrong key or context, an
		// altered EDK).
		return nil, fmt.Errorf("%w: %s: %w", ErrUnwrap, k, err)
	}
	return dek, nil
}

// PublicKey returns the EC key's public half, as the token reported it when
// the KEK was opened.
func (k *rawECDH) PublicKey() *ecdh.PublicKey { return k.pub }

// ECDH returns the ECDH shared secret of the token's private key and peer,
// the x-coordinate of the product at field length, computed in the token
// (CKM_ECDH1_DERIVE): the same operation Unwrap starts with, for protocols
// other than the ESDK's that agree a key with the token key (the age
// plugin's p256tag stanzas). peer must be on the key's curve. ctx bounds the
// wait for a session and goes to the WithPIN function if the token needs a
// login. The caller zeroes the result.
func (k *rawECDH) ECDH(ctx context.Context, peer *ecdh.PublicKey) ([]byte, error) {
	if peer == nil || peer.Curve() != k.pub.Curve() {
		return nil, fmt.Errorf("%w: %s: the peer key is not on the key's curve", ErrMechanism, k)
	}
	z, err := k.derive(ctx, peer)
	if err != nil {
		return nil, err
	}
	return z, nil
}

// derive returns Z, the x-coordinate of the private key times peer, from
// the token: CKM_ECDH1_DERIVE with no KDF (CKD_NULL) into a session object
// that is read and destroyed at once. The caller zeroes Z.
func (k *rawECDH) derive(ctx context.Context, peer *ecdh.PublicKey) ([]byte, error) {
	var z []byte
	err := k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := k.tok.mod.ctx
		params := pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer.Bytes())
		// Z must come to the host, where the ESDK's KDF (HMAC-SHA-384 in
		// counter mode over Z and the context) runs: this derived secret,
		// and only it, is neither sensitive nor unextractable. It is a
		// session object, destroyed as soon as it is read; Z is zeroed
		// after use.
		obj, err := p.DeriveKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, params)}, key, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, k.zLen),
		})
		if err != nil {
			if isRV(err, pkcs11.CKR_FUNCTION_FAILED, pkcs11.CKR_GENERAL_ERROR) {
				return fmt.Errorf("%w: C_DeriveKey (ECDH): %v (wrong key, or the EDK or encryption context was altered)", ErrUnwrap, err)
			}
			return opError("C_DeriveKey (ECDH)", err)
		}
		attrs, err := p.GetAttributeValue(h, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if derr := p.DestroyObject(h, obj); derr != nil {
			if err == nil {
				clear(attrs[0].Value)
			}
			return opError("C_DestroyObject (derived secret)", derr)
		}
		if err != nil {
			return opError("C_GetAttributeValue (derived secret)", err)
		}
		if len(attrs[0].Value) != k.zLen {
			clear(attrs[0].Value)
			return fmt.Errorf("%w: CKM_ECDH1_DERIVE gave %d bytes, the curve needs %d", ErrMechanism, len(attrs[0].Value), k.zLen)
		}
		z = attrs[0].Value
		return nil
	})
	return z, err
}

// ecPublicKey reads the public half of the EC private key priv: the one
// public key object of the same label and id. Private keys carry no
// CKA_EC_POINT.
func (t *Token) ecPublicKey(h pkcs11.SessionHandle, priv objectInfo) (*ecdh.PublicKey, error) {
	if priv.label == "" && len(priv.id) == 0 {
		return nil, fmt.Errorf("%w: the EC private key has neither label nor id to find its public key by", ErrKeyNotFound)
	}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
	}
	if priv.label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, priv.label))
	}
	if len(priv.id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, priv.id))
	}
	handles, err := t.findObjects(h, tmpl, 2)
	if err != nil {
		return nil, err
	}
	switch len(handles) {
	case 0:
		return nil, fmt.Errorf("%w: no public key object labelled %q on %s with the EC private key's id; raw ECDH wraps with it (import it, or make the pair with hsmenv keygen)", ErrKeyNotFound, priv.label, t.sel)
	case 1:
	default:
		return nil, fmt.Errorf("%w: several public key objects labelled %q with the EC private key's id", ErrAmbiguous, priv.label)
	}
	obj, err := t.describeObject(h, handles[0], pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	if obj.ecPub == nil || obj.curve != priv.curve {
		return nil, fmt.Errorf("%w: the public key object labelled %q is not on the private key's curve", ErrKeyNotFound, priv.label)
	}
	return obj.ecPub, nil
}

// The curves of raw ECDH: Generate's key type, the curve and its size;
// CKA_EC_PARAMS names it by kektemplate.ECParams(bits).
var ecCurves = []struct {
	keyType string
	curve   ecdh.Curve
	bits    int
}{
	{KeyECP256, ecdh.P256(), 256},
	{KeyECP384, ecdh.P384(), 384},
	{KeyECP521, ecdh.P521(), 521},
}

// ecKeyParams returns the CKA_EC_PARAMS of an EC key type of Generate.
func ecKeyParams(keyType string) []byte {
	for _, c := range ecCurves {
		if c.keyType == keyType {
			return kektemplate.ECParams(c.bits)
		}
	}
	return nil
}

// ecCurve returns the curve CKA_EC_PARAMS names, and its size in bits; nil
// for any other curve or for explicit parameters.
func ecCurve(params []byte) (ecdh.Curve, int) {
	for _, c := range ecCurves {
		if bytes.Equal(params, kektemplate.ECParams(c.bits)) {
			return c.curve, c.bits
		}
	}
	return nil, 0
}

// fieldLen is the length of a field element of curve, and so of Z and of
// each coordinate of a point.
func fieldLen(curve ecdh.Curve) int {
	for _, c := range ecCurves {
		if c.curve == curve {
			return (c.bits + 7) / 8
		}
	}
	return 0
}

// parseECPoint decodes CKA_EC_POINT, the uncompressed point as a DER
// OCTET STRING (PKCS#11 2.40; SoftHSM2 and NSS) or bare (some older
// tokens), and checks it is on curve.
func parseECPoint(curve ecdh.Curve, v []byte) (*ecdh.PublicKey, error) {
	point := v
	if len(v) != 1+2*fieldLen(curve) {
		if rest, err := asn1.Unmarshal(v, &point); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("%w: CKA_EC_POINT is neither a point nor a DER OCTET STRING", ErrMechanism)
		}
	}
	pub, err := curve.NewPublicKey(point)
	if err != nil {
		return nil, fmt.Errorf("%w: CKA_EC_POINT: %v", ErrMechanism, err)
	}
	return pub, nil
}

// describeEC fills in what OpenURI needs of an EC key object: its curve,
// whether a private key may derive, and a public key object's point.
func describeEC(p *pkcs11.Ctx, h pkcs11.SessionHandle, oh pkcs11.ObjectHandle, info *objectInfo) error {
	a, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil)})
	if err != nil {
		return opError("reading CKA_EC_PARAMS", err)
	}
	info.curve, _ = ecCurve(a[0].Value)
	if info.curve == nil {
		return nil // openECDH says why it cannot be used
	}
	switch info.class {
	case pkcs11.CKO_PRIVATE_KEY:
		d, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil)})
		info.use.derive = boolAttr(d, err, false)
	case pkcs11.CKO_PUBLIC_KEY:
		pt, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return opError("reading CKA_EC_POINT", err)
		}
		if info.ecPub, err = parseECPoint(info.curve, pt[0].Value); err != nil {
			return err
		}
	}
	return nil
}
