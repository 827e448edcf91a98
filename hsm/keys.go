package hsm

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/internal/kektemplate"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// Key types for Generate.
const (
	KeyAES256  = "aes-256"
	KeyRSA2048 = "rsa-2048"
	KeyRSA3072 = "rsa-3072"
	// KeyECP256, KeyECP384 and KeyECP521 are EC key pairs for raw ECDH
	// (MechRawECDH) on NIST P-256, P-384 and P-521.
	KeyECP256 = "ec-p256"
	KeyECP384 = "ec-p384"
	KeyECP521 = "ec-p521"
)

// keyTypes lists the key types Generate makes, for its error message.
var keyTypes = []string{KeyAES256, KeyRSA3072, KeyRSA2048, KeyECP256, KeyECP384, KeyECP521}

// KeyInfo describes a key object on a token, as read back from it.
type KeyInfo struct {
	Label            string   `json:"label"`
	ID               []byte   `json:"id"`
	Class            string   `json:"class"` // secret-key, private-key, public-key
	Type             string   `json:"type"`  // aes, rsa, ec, other
	Bits             int      `json:"bits"`  // AES and RSA key size, EC curve size
	Token            bool     `json:"token"`
	Sensitive        bool     `json:"sensitive"`
	Extractable      bool     `json:"extractable"`
	AlwaysSensitive  bool     `json:"always_sensitive"`
	NeverExtractable bool     `json:"never_extractable"`
	Usage            []string `json:"usage"` // encrypt, decrypt, wrap, unwrap, sign, verify, derive
}

// Generate creates a KEK on the token the URI names, labelled object= (and
// with id= if given, else a random id): an AES-256 key with only the usage
// flags of the mechanism the token will use for it, an RSA key pair whose
// private half only decrypts, or an EC key pair (KeyECP256, KeyECP384,
// KeyECP521) whose private half only derives (CKM_ECDH1_DERIVE, which the
// token must offer) and whose public half can be read without logging in.
// Keys are token objects, sensitive and never extractable (the template
// internal/kektemplate builds, less the usage attributes the vendor
// profile's KeygenOmit leaves to the token); the attributes are read back
// and checked, and a key the token made otherwise is destroyed, both halves
// of a pair. The KeyInfo returned describes the secret or private key. opts
// give the PIN source and default module the URI lacks; ctx bounds the wait
// for a session and goes to the WithPIN function.
//
// Its errors name the key once (keyuri.KeyError).
func Generate(ctx context.Context, uri, keyType string, opts ...Option) (*KeyInfo, error) {
	ki, err := generate(ctx, uri, keyType, opts)
	return ki, keyuri.Wrap(uri, err)
}

func generate(ctx context.Context, uri, keyType string, opts []Option) (*KeyInfo, error) {
	if !slices.Contains(keyTypes, keyType) {
		return nil, fmt.Errorf("%w: key type %q; a PKCS#11 token makes %s", ErrMechanism, keyType, strings.Join(keyTypes, ", "))
	}
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" {
		return nil, fmt.Errorf("%w: keygen needs the new key's label: add ;object=LABEL to the URI (before any '?')", keyuri.ErrSyntax)
	}
	tr, err := openTokenRef(u, opts)
	if err != nil {
		return nil, err
	}
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 8)
		rand.Read(id)
	}
	var mech *pkcs11.Mechanism
	var tmpl, pubTmpl []*pkcs11.Attribute
	switch keyType {
	case KeyAES256:
		m, err := tr.tok.chooseAES(u.Mechanism, anyUse)
		if err != nil {
			return nil, err
		}
		use := kektemplate.AESEncrypt
		if isKeyWrap(m) {
			use = kektemplate.AESWrap
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)
		tmpl, _ = kektemplate.Template(use, u.Object, id)
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32))
	case KeyRSA2048, KeyRSA3072:
		bits := 2048
		if keyType == KeyRSA3072 {
			bits = 3072
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)
		tmpl, pubTmpl = kektemplate.Template(kektemplate.RSADecrypt, u.Object, id)
		pubTmpl = append(pubTmpl, pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits))
	case KeyECP256, KeyECP384, KeyECP521:
		if !tr.tok.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
			return nil, fmt.Errorf("%w: %s cannot derive with CKM_ECDH1_DERIVE, which a raw ECDH KEK needs", ErrMechanism, tr.tok.sel)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)
		tmpl, pubTmpl = kektemplate.Template(kektemplate.ECDerive, u.Object, id)
		pubTmpl = append(pubTmpl, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ecKeyParams(keyType)))
	}
	tmpl, pubTmpl = omitAttributes(tmpl, tr.tok.profile.KeygenOmit), omitAttributes(pubTmpl, tr.tok.profile.KeygenOmit)
	var info KeyInfo
	err = tr.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		tok := tr.tok
		p := tok.mod.ctx
		existing, err := tok.findObjects(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)}, 1)
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return fmt.Errorf("%w: %q on %s", ErrExists, u.Object, tok.sel)
		}
		var oh, pubOH pkcs11.ObjectHandle
		if pubTmpl != nil {
			pubOH, oh, err = p.GenerateKeyPair(h, []*pkcs11.Mechanism{mech}, pubTmpl, tmpl)
			err = opError("C_GenerateKeyPair", err)
		} else {
			oh, err = p.GenerateKey(h, []*pkcs11.Mechanism{mech}, tmpl)
			err = opError("C_GenerateKey", err)
		}
		if err != nil {
			return fmt.Errorf("generating the %s key on %s: %w", keyType, tok.sel, err)
		}
		destroy := func() {
			p.DestroyObject(h, oh)
			if pubTmpl != nil {
				p.DestroyObject(h, pubOH)
			}
		}
		info, err = tok.readKeyInfo(h, oh)
		if err != nil {
			destroy()
			return err
		}
		if info.Extractable || !info.Sensitive || !info.NeverExtractable {
			destroy()
			return fmt.Errorf("%w: the token made %q extractable=%v sensitive=%v never-extractable=%v; destroyed it", ErrExtractable, u.Object, info.Extractable, info.Sensitive, info.NeverExtractable)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// omitAttributes returns tmpl without the attributes of the types in omit
// (nil stays nil).
func omitAttributes(tmpl []*pkcs11.Attribute, omit []uint) []*pkcs11.Attribute {
	if len(omit) == 0 || tmpl == nil {
		return tmpl
	}
	out := make([]*pkcs11.Attribute, 0, len(tmpl))
	for _, a := range tmpl {
		if !slices.Contains(omit, a.Type) {
			out = append(out, a)
		}
	}
	return out
}

// List returns the key objects on the token the URI names (object= and id=,
// if given, filter). opts, ctx and errors are as for Generate.
func List(ctx context.Context, uri string, opts ...Option) ([]KeyInfo, error) {
	keys, err := list(ctx, uri, opts)
	return keys, keyuri.Wrap(uri, err)
}

func list(ctx context.Context, uri string, opts []Option) ([]KeyInfo, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	tr, err := openTokenRef(u, opts)
	if err != nil {
		return nil, err
	}
	var keys []KeyInfo
	err = tr.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		keys = keys[:0]
		for _, class := range []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			handles, err := tr.tok.findObjects(h, objectTemplate(class, u), 10000)
			if err != nil {
				return err
			}
			for _, oh := range handles {
				ki, err := tr.tok.readKeyInfo(h, oh)
				if err != nil {
					return err
				}
				keys = append(keys, ki)
			}
		}
		return nil
	})
	return keys, err
}

// PublicKeyPEM returns the PEM SubjectPublicKeyInfo ("PUBLIC KEY") of the
// RSA or EC key the URI names (its public or private object), what a
// producer needs to wrap without the token: an ESDK raw RSA keyring, or an
// ESDK raw ECDH keyring of the ephemeral schema (the DER inside the PEM is
// its recipient public key). The public object is looked for first, on a
// session that does not log in, so a token whose public keys are public
// objects (as Generate makes EC keys) needs no PIN; then the private one,
// which does. A secret (symmetric) key of that label or id is ErrNoPublicKey,
// not ErrKeyNotFound. opts, ctx and errors are as for Generate.
func PublicKeyPEM(ctx context.Context, uri string, opts ...Option) ([]byte, error) {
	pem, err := publicKeyPEM(ctx, uri, opts)
	return pem, keyuri.Wrap(uri, err)
}

func publicKeyPEM(ctx context.Context, uri string, opts []Option) ([]byte, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	tr, err := openTokenRef(u, opts)
	if err != nil {
		return nil, err
	}
	classes := []string{u.Type}
	if u.Type == "" {
		classes = []string{"public-key", "private-key"}
	}
	var pub any
	for _, c := range classes {
		uu := *u
		uu.Type = c
		find := tr.do
		if c == "public-key" {
			find = tr.doPublic
		}
		err = find(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
			obj, err := tr.tok.findKey(h, &uu)
			switch {
			case err != nil:
				return err
			case obj.pub != nil:
				pub = obj.pub
			case obj.ecPub != nil:
				pub = obj.ecPub
			case obj.curve != nil && obj.class == pkcs11.CKO_PRIVATE_KEY:
				pub, err = tr.tok.ecPublicKey(h, obj)
			default:
				err = fmt.Errorf("%w: the key is neither an RSA key nor an EC key on P-256, P-384 or P-521", ErrMechanism)
			}
			return err
		})
		if err == nil || !errors.Is(err, ErrKeyNotFound) {
			break
		}
	}
	if errors.Is(err, ErrKeyNotFound) && u.Type == "" {
		err = tr.symmetric(ctx, u, err)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// symmetric returns ErrNoPublicKey if u names a secret key, else notFound
// (or the error of looking).
func (r tokenRef) symmetric(ctx context.Context, u *URI, notFound error) error {
	err := r.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		handles, err := r.tok.findObjects(h, objectTemplate(pkcs11.CKO_SECRET_KEY, u), 1)
		if err != nil || len(handles) == 0 {
			return err
		}
		ki, err := r.tok.readKeyInfo(h, handles[0])
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: a symmetric %s-%d key has none (pubkey is for RSA and EC keys)", ErrNoPublicKey, strings.ToUpper(ki.Type), ki.Bits)
	})
	if err != nil {
		return err
	}
	return notFound
}

// readKeyInfo reads an object's attributes one by one (a token may refuse
// some, e.g. CKA_VALUE_LEN on RSA keys).
func (t *Token) readKeyInfo(h pkcs11.SessionHandle, oh pkcs11.ObjectHandle) (KeyInfo, error) {
	p := t.mod.ctx
	get := func(attr uint) []byte {
		a, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(attr, nil)})
		if err != nil || len(a) == 0 {
			return nil
		}
		return a[0].Value
	}
	flag := func(attr uint) bool { v := get(attr); return len(v) > 0 && v[0] != 0 }
	var ki KeyInfo
	classVal := get(pkcs11.CKA_CLASS)
	if classVal == nil {
		return ki, fmt.Errorf("%w: reading an object's class failed", ErrKeyNotFound)
	}
	switch attrUint(classVal) {
	case pkcs11.CKO_SECRET_KEY:
		ki.Class = "secret-key"
	case pkcs11.CKO_PRIVATE_KEY:
		ki.Class = "private-key"
	case pkcs11.CKO_PUBLIC_KEY:
		ki.Class = "public-key"
	default:
		ki.Class = "other"
	}
	ki.Label, ki.ID = string(get(pkcs11.CKA_LABEL)), get(pkcs11.CKA_ID)
	switch attrUint(get(pkcs11.CKA_KEY_TYPE)) {
	case pkcs11.CKK_AES:
		ki.Type = "aes"
		ki.Bits = int(attrUint(get(pkcs11.CKA_VALUE_LEN))) * 8
	case pkcs11.CKK_RSA:
		ki.Type = "rsa"
		ki.Bits = len(strings.TrimLeft(string(get(pkcs11.CKA_MODULUS)), "\x00")) * 8
	case pkcs11.CKK_EC:
		ki.Type = "ec"
		_, ki.Bits = ecCurve(get(pkcs11.CKA_EC_PARAMS))
	default:
		ki.Type = "other"
	}
	ki.Token = flag(pkcs11.CKA_TOKEN)
	if ki.Class != "public-key" {
		ki.Sensitive, ki.Extractable = flag(pkcs11.CKA_SENSITIVE), flag(pkcs11.CKA_EXTRACTABLE)
		ki.AlwaysSensitive, ki.NeverExtractable = flag(pkcs11.CKA_ALWAYS_SENSITIVE), flag(pkcs11.CKA_NEVER_EXTRACTABLE)
	}
	for _, u := range []struct {
		attr uint
		name string
	}{{pkcs11.CKA_ENCRYPT, "encrypt"}, {pkcs11.CKA_DECRYPT, "decrypt"}, {pkcs11.CKA_WRAP, "wrap"}, {pkcs11.CKA_UNWRAP, "unwrap"}, {pkcs11.CKA_SIGN, "sign"}, {pkcs11.CKA_VERIFY, "verify"}, {pkcs11.CKA_DERIVE, "derive"}} {
		if flag(u.attr) {
			ki.Usage = append(ki.Usage, u.name)
		}
	}
	return ki, nil
}
