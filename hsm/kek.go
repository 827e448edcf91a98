package hsm

import (
	"context"
	"crypto/ecdh"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// KEK is a key-encryption key held in a PKCS#11 token, as OpenURI returns it.
// Each mechanism has its own type (AES-GCM, AES key wrap, RSA-OAEP, raw
// ECDH), with its own EDK layout, chosen once by OpenURI. Wrapping and
// unwrapping happen inside the token (RSA and EC keys wrap on the host with
// the public key, calling no PKCS#11 function). A KEK is
// safe for concurrent use. Its Wrap and Unwrap honour ctx while they wait
// for a session of the token's pool, and pass it to the WithPIN function
// when the token must log in again; a PKCS#11 call already made is not
// interrupted.
type KEK interface {
	envelope.KEK
	// Mechanism returns the mechanism in use, one of the Mech constants.
	Mechanism() string
}

// OpenURI finds the key a pkcs11: URI names and chooses its mechanism once,
// from what the token reports, the vendor profile and the URI's
// x-mechanism: AES keys get AES-GCM or key wrap, RSA private keys RSA-OAEP,
// EC keys on P-256, P-384 or P-521 raw ECDH (MechRawECDH; the token must
// list CKM_ECDH1_DERIVE). A key that is extractable is refused unless the
// URI says x-allow-extractable=yes. A URI with type=public-key (an EC key)
// is opened without logging in: its KEK wraps without a PIN and logs in
// only to unwrap, with the private key of the same label and id. opts give
// the PIN source and default module the URI lacks. ctx bounds the wait for
// a session and goes to the WithPIN function if the token needs a login;
// it is not kept.
//
// Its errors name the key once (keyuri.KeyError), never with its PIN.
func OpenURI(ctx context.Context, uri string, opts ...Option) (KEK, error) {
	k, err := openURI(ctx, uri, opts)
	if err != nil {
		return nil, keyuri.Wrap(uri, err)
	}
	return k, nil
}

func openURI(ctx context.Context, uri string, opts []Option) (KEK, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, errNoObject
	}
	tr, err := openTokenRef(u, opts)
	if err != nil {
		return nil, err
	}
	k := &keyRef{tokenRef: tr}
	var obj objectInfo
	// A public key is found without logging in: wrapping with it needs no
	// PIN (raw ECDH).
	find := tr.do
	if u.Type == "public-key" {
		find = tr.doPublic
	}
	err = find(ctx, func(h pkcs11.SessionHandle, gen uint64) error {
		var err error
		obj, err = tr.tok.findKey(h, u)
		if err == nil {
			k.handle, k.handleGen, k.hasHandle, k.seen = obj.handle, gen, true, true
			k.identity = keyIdentity(obj)
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
	if obj.keyType == pkcs11.CKK_EC {
		return k.openECDH(ctx, obj)
	}
	k.namespace, k.name = u.Namespace, u.Name
	if k.namespace == "" {
		k.namespace = DefaultNamespace
	}
	if k.name == "" {
		k.name = obj.label
	}
	if k.name == "" {
		return nil, fmt.Errorf("%w: the key has no label; give x-name= for its EDKs", ErrKeyNotFound)
	}
	if err := rawaes.CheckNames(k.namespace, k.name); err != nil {
		return nil, err
	}
	switch obj.keyType {
	case pkcs11.CKK_AES:
		return k.openAES(obj)
	case pkcs11.CKK_RSA:
		return k.openRSA(obj)
	}
	return nil, fmt.Errorf("%w: the key is neither an AES, an RSA nor an EC key (CKA_KEY_TYPE %#x)", ErrMechanism, obj.keyType)
}

// openAES returns the KEK of the AES key k: AES-GCM or AES key wrap, as
// the token, the profile, the key's usage flags and x-mechanism allow.
func (k *keyRef) openAES(obj objectInfo) (KEK, error) {
	if k.uri.Padding != "" {
		return nil, fmt.Errorf("%w: x-padding is for RSA keys, this one is AES", ErrMechanism)
	}
	mech, err := k.tok.chooseAES(k.uri.Mechanism, obj.use)
	if err != nil {
		return nil, err
	}
	k.mech = mech
	if !isKeyWrap(mech) {
		return &aesGCM{keyRef: k}, nil
	}
	alg := kwRFC3394
	if mech == MechAESKWP {
		alg = kwRFC5649
	}
	ckm, _ := k.tok.kwMechanism(alg) // chooseAES checked it is there
	return &aesKW{keyRef: k, alg: alg, ckm: ckm}, nil
}

// openRSA returns the RSA-OAEP KEK of the RSA private key k.
func (k *keyRef) openRSA(obj objectInfo) (KEK, error) {
	u := k.uri
	if u.Mechanism != "" && u.Mechanism != MechRSAOAEP {
		return nil, fmt.Errorf("%w: x-mechanism=%s does not fit an RSA key (rsa-oaep)", ErrMechanism, u.Mechanism)
	}
	if obj.class != pkcs11.CKO_PRIVATE_KEY {
		return nil, fmt.Errorf("%w: an RSA public key; name the private key (type=private-key) so the token can unwrap", ErrKeyNotFound)
	}
	padding := u.Padding
	if padding == "" {
		padding = k.tok.profile.RSAPadding
	}
	if _, err := oaepMechanism(padding); err != nil {
		return nil, err
	}
	host, err := rawrsa.ParsePadding(padding)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMechanism, err)
	}
	if !k.tok.supports(paddingMech(padding), pkcs11.CKF_DECRYPT) {
		return nil, fmt.Errorf("%w: %s cannot decrypt with %s", ErrMechanism, k.tok.sel, padding)
	}
	k.mech = MechRSAOAEP
	return &rsaOAEP{keyRef: k, pub: obj.pub, padding: padding, host: host}, nil
}

func paddingMech(padding string) uint {
	if padding == "pkcs1" {
		return pkcs11.CKM_RSA_PKCS
	}
	return pkcs11.CKM_RSA_PKCS_OAEP
}

// tokenRef is the token a URI names as one call reaches it: the Token that
// every URI naming it shares, and the PIN source of this URI and call.
type tokenRef struct {
	uri  *URI
	tok  *Token
	pins pinSource
}

// openTokenRef opens u's token with the call's options; nothing is sent to
// the token yet.
func openTokenRef(u *URI, opts []Option) (tokenRef, error) {
	o := applyOptions(opts)
	tok, err := openToken(u, o)
	if err != nil {
		return tokenRef{}, err
	}
	return tokenRef{uri: u, tok: tok, pins: newPINSource(u, o)}, nil
}

// do runs fn on a logged-in session of the token (Token.do), logging in
// with this reference's PIN if needed.
func (r tokenRef) do(ctx context.Context, fn func(h pkcs11.SessionHandle, objGen uint64) error) error {
	return r.tok.do(ctx, &r.pins, fn)
}

// doPublic runs fn on a session of the token without logging in (Token.do
// with no PIN source): fn sees the public objects, and no PIN is asked for.
func (r tokenRef) doPublic(ctx context.Context, fn func(h pkcs11.SessionHandle, objGen uint64) error) error {
	return r.tok.do(ctx, nil, fn)
}

// keyRef is the key object a URI names, shared by the KEK types of every
// mechanism: its token, the names its EDKs carry, and the object handle
// found last, looked up (and checked) again when it goes stale.
type keyRef struct {
	tokenRef
	mech      string // the Mech constant of the KEK, for Mechanism and messages
	label     string
	class     uint
	namespace string // EDK provider id
	name      string // EDK key name

	mu        sync.Mutex
	handle    pkcs11.ObjectHandle
	handleGen uint64
	hasHandle bool
	seen      bool   // the key object was found once: missing now, it vanished
	identity  []byte // CKA_ID and CKA_CHECK_VALUE as found by OpenURI
}

// String names the KEK in errors (no PIN).
func (k *keyRef) String() string {
	return fmt.Sprintf("%s (%s)", k.uri.describe(), k.mech)
}

// Mechanism returns the mechanism in use, one of the Mech constants.
func (k *keyRef) Mechanism() string { return k.mech }

// KeyIdentity returns what tells this key object apart from another made
// under the same label: its CKA_ID and, for secret keys, CKA_CHECK_VALUE
// (the token's digest of the key value), as found when the KEK was opened,
// each after its length; empty if the token gives neither. A key
// regenerated under the same label gets a new one (hsmenv keygen draws a
// random CKA_ID); every host that opens the same object sees the same. ctx
// is not used.
func (k *keyRef) KeyIdentity(context.Context) ([]byte, error) { return k.identity, nil }

// keyIdentity is KeyIdentity's value for obj.
func keyIdentity(obj objectInfo) []byte {
	if len(obj.id) == 0 && len(obj.checkValue) == 0 {
		return nil
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(len(obj.id)))
	b = append(b, obj.id...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(obj.checkValue)))
	return append(b, obj.checkValue...)
}

// keyHandle returns the cached object handle if it is still of the current
// generation, else looks the key up again.
func (k *keyRef) keyHandle(h pkcs11.SessionHandle, gen uint64) (pkcs11.ObjectHandle, error) {
	k.mu.Lock()
	if k.hasHandle && k.handleGen == gen {
		oh := k.handle
		k.mu.Unlock()
		return oh, nil
	}
	seen := k.seen
	k.mu.Unlock()
	obj, err := k.tok.findKey(h, k.uri)
	if errors.Is(err, ErrKeyNotFound) && seen {
		return 0, fmt.Errorf("%w (%w; looked for again after re-initializing the module)", err, errKeyVanished)
	}
	if err != nil {
		return 0, err
	}
	if obj.label != k.label || obj.class != k.class {
		return 0, fmt.Errorf("%w: %s now names another object", ErrKeyNotFound, k.uri.describe())
	}
	// The object found again (after a token reset, a lost session) may
	// not be the one Open checked: check it as OpenURI did.
	if err := checkExtractable(k.uri, obj); err != nil {
		return 0, err
	}
	k.mu.Lock()
	k.handle, k.handleGen, k.hasHandle, k.seen = obj.handle, gen, true, true
	k.mu.Unlock()
	return obj.handle, nil
}

// withKey runs fn on a session with the key's current object handle,
// recovering as Token.do does (a stale handle is looked up again).
func (k *keyRef) withKey(ctx context.Context, fn func(h pkcs11.SessionHandle, key pkcs11.ObjectHandle) error) error {
	return k.do(ctx, func(h pkcs11.SessionHandle, gen uint64) error {
		key, err := k.keyHandle(h, gen)
		if err != nil {
			return err
		}
		return fn(h, key)
	})
}

// notClaimed is Unwrap's error for an EDK the KEK does not claim.
func (k *keyRef) notClaimed() error {
	return fmt.Errorf("%w: the EDK is not for %s", ErrUnwrap, k)
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

// checkExtractable refuses a key that can leave the token unless the URI
// accepts it (x-allow-extractable=yes).
func checkExtractable(u *URI, obj objectInfo) error {
	if obj.extractable && !u.AllowExtractable {
		return fmt.Errorf("%w: CKA_EXTRACTABLE is set or unreadable, so it may leave the token; use a non-extractable key (hsmenv keygen), or x-allow-extractable=yes to accept it", ErrExtractable)
	}
	return nil
}

// objectInfo is what OpenURI needs to know of a key object.
type objectInfo struct {
	handle      pkcs11.ObjectHandle
	class       uint
	keyType     uint
	label       string
	id          []byte
	extractable bool
	use         keyUse
	checkValue  []byte // CKA_CHECK_VALUE of a secret key, if the token gives it
	pub         *rsa.PublicKey
	curve       ecdh.Curve      // EC keys on a curve raw ECDH uses, else nil
	ecPub       *ecdh.PublicKey // EC public key objects
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
			return objectInfo{}, t.ambiguous(h, objectTemplate(class, u))
		}
	}
	return objectInfo{}, fmt.Errorf("%w on %s", ErrKeyNotFound, t.sel)
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

// maxListed bounds the objects an ErrAmbiguous error lists.
const maxListed = 4

// ambiguous is ErrAmbiguous for the objects tmpl matches, listing the
// first maxListed (label, id, class, type) and how many more there are.
func (t *Token) ambiguous(h pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) error {
	handles, err := t.findObjects(h, tmpl, maxListed+1)
	if err != nil {
		return err
	}
	var shown []string
	for _, oh := range handles[:min(len(handles), maxListed)] {
		ki, err := t.readKeyInfo(h, oh)
		if err != nil {
			return err
		}
		shown = append(shown, fmt.Sprintf("%q id %x %s %s-%d", ki.Label, ki.ID, ki.Class, ki.Type, ki.Bits))
	}
	more := ""
	if len(handles) > maxListed {
		more = " and more"
	}
	return fmt.Errorf("%w: %s%s; give id= or type= to pick one", ErrAmbiguous, strings.Join(shown, ", "), more)
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
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
	})
	if err != nil {
		return info, opError("C_GetAttributeValue", err)
	}
	info.keyType = attrUint(attrs[0].Value)
	info.label = string(attrs[1].Value)
	info.id = attrs[2].Value
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
		if a, err := p.GetAttributeValue(h, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CHECK_VALUE, nil)}); err == nil && len(a) == 1 {
			info.checkValue = a[0].Value
		}
		info.use = keyUse{
			encrypt: flag(pkcs11.CKA_ENCRYPT, false) && flag(pkcs11.CKA_DECRYPT, false),
			wrap:    flag(pkcs11.CKA_WRAP, false) && flag(pkcs11.CKA_UNWRAP, false),
		}
	}
	if info.keyType == pkcs11.CKK_EC {
		if err := describeEC(p, h, oh, &info); err != nil {
			return info, err
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
