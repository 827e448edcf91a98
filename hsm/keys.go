package hsm

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// Key types for Generate.
const (
	KeyAES256  = "aes-256"
	KeyRSA2048 = "rsa-2048"
	KeyRSA3072 = "rsa-3072"
)

// KeyInfo describes a key object on a token, as read back from it.
type KeyInfo struct {
	Label            string   `json:"label"`
	ID               []byte   `json:"id"`
	Class            string   `json:"class"` // secret-key, private-key, public-key
	Type             string   `json:"type"`  // aes, rsa, ec, other
	Bits             int      `json:"bits"`
	Token            bool     `json:"token"`
	Sensitive        bool     `json:"sensitive"`
	Extractable      bool     `json:"extractable"`
	AlwaysSensitive  bool     `json:"always_sensitive"`
	NeverExtractable bool     `json:"never_extractable"`
	Usage            []string `json:"usage"` // encrypt, decrypt, wrap, unwrap, sign, verify
}

// Generate creates a KEK on the token the URI names, labelled object= (and
// with id= if given, else a random id): an AES-256 key with only the usage
// flags of the mechanism the token will use for it, or an RSA key pair whose
// private half only decrypts. Keys are token objects, sensitive and never
// extractable; the attributes are read back and checked.
func Generate(ctx context.Context, uri, keyType string) (*KeyInfo, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" {
		return nil, fmt.Errorf("%w: keygen needs object=LABEL in the URI", ErrKeyNotFound)
	}
	tok, err := OpenToken(u)
	if err != nil {
		return nil, err
	}
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 8)
		rand.Read(id)
	}
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
	}
	secret := func(class uint) []*pkcs11.Attribute {
		return append(common(class),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	}
	var mech []*pkcs11.Mechanism
	var tmpl, pubTmpl []*pkcs11.Attribute
	switch keyType {
	case KeyAES256:
		m, err := tok.chooseAES(u.Mechanism, anyUse)
		if err != nil {
			return nil, err
		}
		gcm := m == MechAESGCM || m == MechAESGCMHSMIV || m == MechCloudHSMGCM
		mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
		tmpl = append(secret(pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, gcm),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, gcm),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, !gcm),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, !gcm),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
	case KeyRSA2048, KeyRSA3072:
		bits := 2048
		if keyType == KeyRSA3072 {
			bits = 3072
		}
		mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}
		pubTmpl = append(common(pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false))
		tmpl = append(secret(pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
	default:
		return nil, fmt.Errorf("%w: key type %q (one of %s, %s, %s)", ErrMechanism, keyType, KeyAES256, KeyRSA3072, KeyRSA2048)
	}
	var info KeyInfo
	err = tok.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		p := tok.mod.ctx
		existing, err := tok.findObjects(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)}, 1)
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return fmt.Errorf("%w: %q on token %s", ErrExists, u.Object, tok.sel)
		}
		var oh pkcs11.ObjectHandle
		if pubTmpl != nil {
			_, oh, err = p.GenerateKeyPair(h, mech, pubTmpl, tmpl)
			err = opError("C_GenerateKeyPair", err)
		} else {
			oh, err = p.GenerateKey(h, mech, tmpl)
			err = opError("C_GenerateKey", err)
		}
		if err != nil {
			return err
		}
		info, err = tok.readKeyInfo(h, oh)
		if err != nil {
			return err
		}
		if info.Extractable || !info.Sensitive || !info.NeverExtractable {
			p.DestroyObject(h, oh)
			return fmt.Errorf("%w: the token made %q extractable=%v sensitive=%v never-extractable=%v; destroyed it", ErrExtractable, u.Object, info.Extractable, info.Sensitive, info.NeverExtractable)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// ImportAESKey stores known AES key bytes on the token as a sensitive,
// non-extractable KEK labelled object= (restoring a key from a backup, or
// sharing one with an ESDK raw AES keyring). mechanism is as for Generate:
// the usage flags follow the token's AES mechanism.
func ImportAESKey(ctx context.Context, uri string, key []byte) (*KeyInfo, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: an AES key of %d bytes", ErrMechanism, len(key))
	}
	if u.Object == "" {
		return nil, fmt.Errorf("%w: import needs object=LABEL in the URI", ErrKeyNotFound)
	}
	tok, err := OpenToken(u)
	if err != nil {
		return nil, err
	}
	m, err := tok.chooseAES(u.Mechanism, anyUse)
	if err != nil {
		return nil, err
	}
	gcm := m == MechAESGCM || m == MechAESGCMHSMIV || m == MechCloudHSMGCM
	id := u.ID
	if len(id) == 0 {
		id = make([]byte, 8)
		rand.Read(id)
	}
	var info KeyInfo
	err = tok.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		existing, err := tok.findObjects(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object)}, 1)
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return fmt.Errorf("%w: %q on token %s", ErrExists, u.Object, tok.sel)
		}
		oh, err := tok.mod.ctx.CreateObject(h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, key),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, gcm),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, gcm),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, !gcm),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, !gcm),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		})
		if err != nil {
			return opError("C_CreateObject", err)
		}
		info, err = tok.readKeyInfo(h, oh)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// openURI parses a pkcs11: URI and opens its token.
func openURI(uri string) (*URI, *Token, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, nil, err
	}
	tok, err := OpenToken(u)
	if err != nil {
		return nil, nil, err
	}
	return u, tok, nil
}

// List returns the key objects on the token the URI names (object= and id=,
// if given, filter).
func List(ctx context.Context, uri string) ([]KeyInfo, error) {
	u, tok, err := openURI(uri)
	if err != nil {
		return nil, err
	}
	var keys []KeyInfo
	err = tok.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		keys = keys[:0]
		for _, class := range []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			handles, err := tok.findObjects(h, objectTemplate(class, u), 10000)
			if err != nil {
				return err
			}
			for _, oh := range handles {
				ki, err := tok.readKeyInfo(h, oh)
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

// PublicKeyPEM returns the PEM SPKI of the RSA key the URI names (its public
// or private object), for producers that wrap without the token.
func PublicKeyPEM(ctx context.Context, uri string) ([]byte, error) {
	u, tok, err := openURI(uri)
	if err != nil {
		return nil, err
	}
	var obj objectInfo
	err = tok.do(ctx, func(h pkcs11.SessionHandle, _ uint64) error {
		classes := []string{u.Type}
		if u.Type == "" {
			classes = []string{"public-key", "private-key"}
		}
		var err error
		for _, c := range classes {
			uu := *u
			uu.Type = c
			if obj, err = tok.findKey(h, &uu); err == nil {
				return nil
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if obj.pub == nil {
		return nil, fmt.Errorf("%w: %s is not an RSA key, it has no public half", ErrMechanism, u.describe())
	}
	der, err := x509.MarshalPKIXPublicKey(obj.pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
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
	}{{pkcs11.CKA_ENCRYPT, "encrypt"}, {pkcs11.CKA_DECRYPT, "decrypt"}, {pkcs11.CKA_WRAP, "wrap"}, {pkcs11.CKA_UNWRAP, "unwrap"}, {pkcs11.CKA_SIGN, "sign"}, {pkcs11.CKA_VERIFY, "verify"}} {
		if flag(u.attr) {
			ki.Usage = append(ki.Usage, u.name)
		}
	}
	return ki, nil
}
