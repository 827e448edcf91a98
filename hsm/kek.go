package hsm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// ProviderKW is the EDK provider id of AES key-wrap EDKs (C_WrapKey), a
// layout of hsmenv's own: provider info = u16 length + key name + one byte
// naming the algorithm (1 = RFC 3394, 2 = RFC 5649); ciphertext = the
// wrapped data key.
const ProviderKW = "hsmenv-kw"

// KEK is a key-encryption key held in a PKCS#11 token. Wrapping and
// unwrapping happen inside the token (RSA wraps on the host with the public
// key). It is safe for concurrent use.
type KEK struct {
	tok       *Token
	uri       *URI
	mech      string // one of the Mech constants
	label     string
	namespace string
	name      string
	class     uint

	kwMech uint // AES key wrap: the mechanism number
	kwAlg  byte

	pub     *rsa.PublicKey
	padding string

	mu        sync.Mutex
	handle    pkcs11.ObjectHandle
	handleGen uint64
	hasHandle bool
}

// OpenURI opens the KEK a pkcs11: URI names (for the resolver).
func OpenURI(ctx context.Context, uri string) (envelope.KEK, error) {
	return Open(ctx, uri)
}

// Open finds the key a pkcs11: URI names and chooses its mechanism from what
// the token reports, the vendor profile and the URI's x-mechanism. A key that
// is extractable is refused unless the URI says x-allow-extractable=yes.
func Open(ctx context.Context, uri string) (*KEK, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, fmt.Errorf("%w: %s: the URI names no object (object= or id=)", ErrKeyNotFound, u.describe())
	}
	tok, err := OpenToken(u)
	if err != nil {
		return nil, err
	}
	k := &KEK{tok: tok, uri: u}
	var obj objectInfo
	err = tok.do(ctx, func(h pkcs11.SessionHandle, gen uint64) error {
		var err error
		obj, err = tok.findKey(h, u)
		if err == nil {
			k.handle, k.handleGen, k.hasHandle = obj.handle, gen, true
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := checkExtractable(u, obj); err != nil {
		return nil, err
	}
	k.class, k.label = obj.class, obj.label
	k.namespace, k.name = u.Namespace, u.Name
	if k.namespace == "" {
		k.namespace = DefaultNamespace
	}
	if k.name == "" {
		k.name = obj.label
	}
	if k.name == "" {
		return nil, fmt.Errorf("%w: %s has no label; give x-name= for its EDKs", ErrKeyNotFound, u.describe())
	}
	if err := rawaes.CheckNames(k.namespace, k.name); err != nil {
		return nil, err
	}
	switch obj.keyType {
	case pkcs11.CKK_AES:
		if u.Padding != "" {
			return nil, fmt.Errorf("%w: x-padding is for RSA keys, %s is AES", ErrMechanism, u.describe())
		}
		if k.mech, err = tok.chooseAES(u.Mechanism, obj.use); err != nil {
			return nil, err
		}
		switch k.mech {
		case MechAESKW:
			k.kwAlg = kwRFC3394
		case MechAESKWP:
			k.kwAlg = kwRFC5649
		}
		if k.kwAlg != 0 {
			k.kwMech, _ = tok.kwMechanism(k.kwAlg)
		}
	case pkcs11.CKK_RSA:
		if u.Mechanism != "" && u.Mechanism != MechRSAOAEP {
			return nil, fmt.Errorf("%w: x-mechanism=%s does not fit the RSA key %s", ErrMechanism, u.Mechanism, u.describe())
		}
		if obj.class != pkcs11.CKO_PRIVATE_KEY {
			return nil, fmt.Errorf("%w: %s is an RSA public key; name the private key (type=private-key) so the token can unwrap", ErrKeyNotFound, u.describe())
		}
		k.mech, k.pub, k.padding = MechRSAOAEP, obj.pub, u.Padding
		if k.padding == "" {
			k.padding = tok.profile.RSAPadding
		}
		if _, err := oaepMechanism(k.padding); err != nil {
			return nil, err
		}
		if !tok.supports(paddingMech(k.padding), pkcs11.CKF_DECRYPT) {
			return nil, fmt.Errorf("%w: token %s cannot decrypt with %s", ErrMechanism, tok.sel, k.padding)
		}
	default:
		return nil, fmt.Errorf("%w: %s is neither an AES nor an RSA key (CKA_KEY_TYPE %#x)", ErrMechanism, u.describe(), obj.keyType)
	}
	return k, nil
}

func paddingMech(padding string) uint {
	if padding == "pkcs1" {
		return pkcs11.CKM_RSA_PKCS
	}
	return pkcs11.CKM_RSA_PKCS_OAEP
}

// String names the KEK in errors (no PIN).
func (k *KEK) String() string {
	return fmt.Sprintf("%s (%s)", k.uri.describe(), k.mech)
}

// Mechanism returns the mechanism in use, one of the Mech constants.
func (k *KEK) Mechanism() string { return k.mech }

// Padding returns the RSA padding (RSA KEKs only).
func (k *KEK) Padding() string { return k.padding }

// PublicKey returns the RSA public key of an RSA KEK, nil otherwise.
func (k *KEK) PublicKey() *rsa.PublicKey { return k.pub }

// keyHandle returns the cached object handle if it is still of the current
// generation, else looks the key up again.
func (k *KEK) keyHandle(h pkcs11.SessionHandle, gen uint64) (pkcs11.ObjectHandle, error) {
	k.mu.Lock()
	if k.hasHandle && k.handleGen == gen {
		oh := k.handle
		k.mu.Unlock()
		return oh, nil
	}
	k.mu.Unlock()
	obj, err := k.tok.findKey(h, k.uri)
	if err != nil {
		return 0, err
	}
	if obj.label != k.label || obj.class != k.class {
		return 0, fmt.Errorf("%w: %s now names another object", ErrKeyNotFound, k.uri.describe())
	}
	// The object found again (after a token reset, a lost session) may
	// not be the one Open checked: check it as Open did.
	if err := checkExtractable(k.uri, obj); err != nil {
		return 0, err
	}
	k.mu.Lock()
	k.handle, k.handleGen, k.hasHandle = obj.handle, gen, true
	k.mu.Unlock()
	return obj.handle, nil
}

// withKey runs fn on a session with the key's current object handle,
// recovering as Token.do does (a stale handle is looked up again).
func (k *KEK) withKey(ctx context.Context, fn func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error) error {
	return k.tok.do(ctx, func(h pkcs11.SessionHandle, gen uint64) error {
		key, err := k.keyHandle(h, gen)
		if err != nil {
			return err
		}
		return fn(h, key)
	})
}

// Wrap wraps dek in the token (AES) or on the host with the public key (RSA).
func (k *KEK) Wrap(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	switch k.mech {
	case MechRSAOAEP:
		p, err := rawrsa.ParsePadding(k.padding)
		if err != nil {
			return envelope.EncryptedDataKey{}, err
		}
		ct, err := p.Encrypt(k.pub, dek)
		if err != nil {
			return envelope.EncryptedDataKey{}, fmt.Errorf("%s: %w", k, err)
		}
		return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: []byte(k.name), Ciphertext: ct}, nil
	case MechAESKW, MechAESKWP:
		return k.wrapKW(ctx, dek)
	}
	return k.wrapGCM(ctx, dek, ec)
}

// Claims reports whether edk names this key in this KEK's layout.
func (k *KEK) Claims(edk envelope.EncryptedDataKey) bool {
	switch k.mech {
	case MechRSAOAEP:
		return edk.ProviderID == k.namespace && string(edk.ProviderInfo) == k.name
	case MechAESKW, MechAESKWP:
		name, _, ok := parseKWInfo(edk.ProviderInfo)
		return ok && edk.ProviderID == ProviderKW && name == k.name
	}
	_, ok := rawaes.ParseProviderInfo(edk.ProviderInfo, k.name)
	return ok && edk.ProviderID == k.namespace
}

// Unwrap recovers the data key inside the token.
func (k *KEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	if !k.Claims(edk) {
		return nil, fmt.Errorf("%w: the EDK is not for %s", ErrUnwrap, k)
	}
	switch k.mech {
	case MechRSAOAEP:
		return k.unwrapRSA(ctx, edk.Ciphertext)
	case MechAESKW, MechAESKWP:
		return k.unwrapKW(ctx, edk.ProviderInfo, edk.Ciphertext)
	}
	return k.unwrapGCM(ctx, edk, ec)
}

// gcmMechanism builds the AES-GCM mechanism of this KEK.
func (k *KEK) gcmMechanism(iv, aad []byte) (*pkcs11.Mechanism, *pkcs11.GCMParams) {
	params := pkcs11.NewGCMParams(iv, aad, 128)
	mech := uint(pkcs11.CKM_AES_GCM)
	if k.mech == MechCloudHSMGCM {
		mech = ckmCloudHSMAESGCM
	}
	return pkcs11.NewMechanism(mech, params), params
}

func (k *KEK) wrapGCM(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	aad, err := ec.Serialize()
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	var iv, ct []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		switch k.mech {
		case MechAESGCM:
			iv = make([]byte, 12)
			if _, err := rand.Read(iv); err != nil {
				return err
			}
		case MechAESGCMHSMIV:
			iv = make([]byte, 12) // the token overwrites it
		case MechCloudHSMGCM:
			iv = nil // the token prepends its IV to the output
		}
		mech, params := k.gcmMechanism(iv, aad)
		defer params.Free()
		if err := k.tok.mod.ctx.EncryptInit(h, []*pkcs11.Mechanism{mech}, key); err != nil {
			return opError("C_EncryptInit (AES-GCM)", err)
		}
		out, err := k.tok.mod.ctx.Encrypt(h, dek)
		if err != nil {
			return opError("C_Encrypt (AES-GCM)", err)
		}
		switch k.mech {
		case MechAESGCMHSMIV:
			iv = params.IV()
		case MechCloudHSMGCM:
			if len(out) < 12 {
				return fmt.Errorf("%w: CKM_CLOUDHSM_AES_GCM returned %d bytes", ErrMechanism, len(out))
			}
			iv, out = out[:12], out[12:]
		}
		ct = out
		return nil
	})
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: wrap: %w", k, err)
	}
	if len(iv) != 12 || len(ct) != len(dek)+16 {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: %s: AES-GCM gave a %d-byte IV and %d bytes for a %d-byte key", ErrMechanism, k, len(iv), len(ct), len(dek))
	}
	return envelope.EncryptedDataKey{ProviderID: k.namespace, ProviderInfo: rawaes.ProviderInfo(k.name, iv), Ciphertext: ct}, nil
}

func (k *KEK) unwrapGCM(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	iv, _ := rawaes.ParseProviderInfo(edk.ProviderInfo, k.name)
	aad, err := ec.Serialize()
	if err != nil {
		return nil, err
	}
	var dek []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		// Decryption always takes the IV from the EDK: plain CKM_AES_GCM.
		params := pkcs11.NewGCMParams(iv, aad, 128)
		defer params.Free()
		if err := k.tok.mod.ctx.DecryptInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return opError("C_DecryptInit (AES-GCM)", err)
		}
		dek, err = k.tok.mod.ctx.Decrypt(h, edk.Ciphertext)
		return unwrapError("C_Decrypt (AES-GCM)", err)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return dek, nil
}

// unwrapError turns the token's "this ciphertext is wrong" answers into
// ErrUnwrap.
func unwrapError(what string, err error) error {
	if err == nil {
		return nil
	}
	if isRV(err, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, ckrAEADDecryptFails,
		pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE) {
		return fmt.Errorf("%w: %s: %v (wrong key, or the EDK or encryption context was altered)", ErrUnwrap, what, err)
	}
	return opError(what, err)
}

func (k *KEK) wrapKW(ctx context.Context, dek []byte) (envelope.EncryptedDataKey, error) {
	var wrapped []byte
	err := k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := k.tok.mod.ctx
		// The data key becomes a short-lived session object so the token can
		// wrap it; it is destroyed right after.
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
		wrapped, err = p.WrapKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(k.kwMech, nil)}, key, obj)
		return opError("C_WrapKey", err)
	})
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: wrap: %w", k, err)
	}
	return envelope.EncryptedDataKey{ProviderID: ProviderKW, ProviderInfo: kwInfo(k.name, k.kwAlg), Ciphertext: wrapped}, nil
}

func (k *KEK) unwrapKW(ctx context.Context, info, wrapped []byte) ([]byte, error) {
	_, alg, _ := parseKWInfo(info)
	mech, ok := k.tok.kwMechanism(alg)
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot unwrap key-wrap algorithm %d", ErrMechanism, k, alg)
	}
	var dek []byte
	err := k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		p := k.tok.mod.ctx
		obj, err := p.UnwrapKey(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, key, wrapped, []*pkcs11.Attribute{
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
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	return dek, nil
}

func (k *KEK) unwrapRSA(ctx context.Context, ct []byte) ([]byte, error) {
	mech, err := oaepMechanism(k.padding)
	if err != nil {
		return nil, err
	}
	var dek []byte
	err = k.withKey(ctx, func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error {
		if err := k.tok.mod.ctx.DecryptInit(h, []*pkcs11.Mechanism{mech}, key); err != nil {
			return opError("C_DecryptInit (RSA "+k.padding+")", err)
		}
		dek, err = k.tok.mod.ctx.Decrypt(h, ct)
		return unwrapError("C_Decrypt (RSA "+k.padding+")", err)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
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

// checkExtractable refuses a key that can leave the token unless the URI
// accepts it (x-allow-extractable=yes).
func checkExtractable(u *URI, obj objectInfo) error {
	if obj.extractable && !u.AllowExtractable {
		return fmt.Errorf("%w: %s has CKA_EXTRACTABLE set or unreadable, so it may leave the token; use a non-extractable key (hsmenv keygen), or x-allow-extractable=yes to accept it", ErrExtractable, u.describe())
	}
	return nil
}

// objectInfo is what Open needs to know of a key object.
type objectInfo struct {
	handle      pkcs11.ObjectHandle
	class       uint
	keyType     uint
	label       string
	extractable bool
	use         keyUse
	pub         *rsa.PublicKey
}

// findKey finds the one key object u names: a secret key, else a private
// key, unless type= says which.
func (t *Token) findKey(h pkcs11.SessionHandle, u *URI) (objectInfo, error) {
	classes := []uint{pkcs11.CKO_SECRET_KEY, pkcs11.CKO_PRIVATE_KEY}
	switch u.Type {
	case "secret-key":
		classes = []uint{pkcs11.CKO_SECRET_KEY}
	case "private-key":
		classes = []uint{pkcs11.CKO_PRIVATE_KEY}
	case "public-key":
		classes = []uint{pkcs11.CKO_PUBLIC_KEY}
	}
	for _, class := range classes {
		handles, err := t.findObjects(h, objectTemplate(class, u), 2)
		if err != nil {
			return objectInfo{}, err
		}
		switch len(handles) {
		case 0:
			continue
		case 1:
			return t.describeObject(h, handles[0], class)
		default:
			return objectInfo{}, fmt.Errorf("%w: %s; give id= or type= to pick one", ErrAmbiguous, u.describe())
		}
	}
	return objectInfo{}, fmt.Errorf("%w: no key %s on token %s", ErrKeyNotFound, u.describe(), t.sel)
}

// objectTemplate matches objects of class with the URI's label and id.
func objectTemplate(class uint, u *URI) []*pkcs11.Attribute {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if u.Object != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	return tmpl
}

// findObjects returns up to max handles matching tmpl.
func (t *Token) findObjects(h pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	p := t.mod.ctx
	if err := p.FindObjectsInit(h, tmpl); err != nil {
		return nil, opError("C_FindObjectsInit", err)
	}
	handles, _, err := p.FindObjects(h, max)
	ferr := p.FindObjectsFinal(h)
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, opError("C_FindObjects", err)
	}
	return handles, nil
}

func (t *Token) describeObject(h pkcs11.SessionHandle, oh pkcs11.ObjectHandle, class uint) (objectInfo, error) {
	p := t.mod.ctx
	info := objectInfo{handle: oh, class: class}
	attrs, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
	})
	if err != nil {
		return info, opError("C_GetAttributeValue", err)
	}
	info.keyType = attrUint(attrs[0].Value)
	info.label = string(attrs[1].Value)
	// flag reads a CK_BBOOL attribute; unknown is the answer when the token
	// gives none.
	flag := func(attr uint, unknown bool) bool {
		a, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(attr, nil)})
		return boolAttr(a, err, unknown)
	}
	if class != pkcs11.CKO_PUBLIC_KEY {
		// A token that does not say (CKR_ATTRIBUTE_TYPE_INVALID, an empty
		// value) gets no benefit of the doubt: unknown is extractable.
		info.extractable = flag(pkcs11.CKA_EXTRACTABLE, true)
	}
	if class == pkcs11.CKO_SECRET_KEY {
		info.use = keyUse{
			encrypt: flag(pkcs11.CKA_ENCRYPT, false) && flag(pkcs11.CKA_DECRYPT, false),
			wrap:    flag(pkcs11.CKA_WRAP, false) && flag(pkcs11.CKA_UNWRAP, false),
		}
	}
	if info.keyType == pkcs11.CKK_RSA {
		a, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return info, opError("reading the RSA public key", err)
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31 || len(a[0].Value) == 0 {
			return info, errors.New("the token returned an unusable RSA public key")
		}
		info.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}
	}
	return info, nil
}

// boolAttr decodes the CK_BBOOL of a one-attribute C_GetAttributeValue,
// or returns unknown when the token did not give one.
func boolAttr(a []*pkcs11.Attribute, err error, unknown bool) bool {
	if err != nil || len(a) != 1 || len(a[0].Value) != 1 {
		return unknown
	}
	return a[0].Value[0] != 0
}

// attrUint decodes a CK_ULONG attribute (native byte order, as returned).
func attrUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}
