package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// object is a TPM object as stored outside the TPM (in an EDK or a key
// file): its public and private areas, the SRK it was made under, and the
// policy its authPolicy encodes.
type object struct {
	srkName []byte
	pub     tpm2.TPM2BPublic
	priv    tpm2.TPM2BPrivate
	head    publicHead
	public  *tpm2.TPMTPublic // pub, fully parsed (key files only)
	policy  policy
}

// name returns the object's TPM name, computed from its public area:
// nameAlg (SHA-256, which checkPublic requires) || SHA-256(TPMT_PUBLIC).
func (o *object) name() []byte {
	sum := sha256.Sum256(o.pub.Bytes())
	return append(binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgSHA256)), sum[:]...)
}

// blob returns TPM2B_PUBLIC || TPM2B_PRIVATE.
func (o *object) blob() []byte {
	return append(tpm2.Marshal(o.pub), tpm2.Marshal(o.priv)...)
}

// parseBlob splits TPM2B_PUBLIC || TPM2B_PRIVATE into o (copies) and reads
// the head of the public area. bad is the sentinel to wrap on failure. It
// returns the public area's bytes.
func (o *object) parseBlob(b []byte, bad error) ([]byte, error) {
	field := func(what string) ([]byte, error) {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: %s: truncated", bad, what)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || len(b) < 2+n {
			return nil, fmt.Errorf("%w: %s: length %d, %d bytes left", bad, what, n, len(b)-2)
		}
		f := b[2 : 2+n]
		b = b[2+n:]
		return f, nil
	}
	pub, err := field("TPM2B_PUBLIC")
	if err != nil {
		return nil, err
	}
	priv, err := field("TPM2B_PRIVATE")
	if err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after TPM2B_PRIVATE", bad, len(b))
	}
	pub = bytes.Clone(pub)
	if o.head, err = parseHead(pub); err != nil {
		return nil, fmt.Errorf("%w: TPM2B_PUBLIC: %v", bad, err)
	}
	o.pub = tpm2.BytesAs2B[tpm2.TPMTPublic](pub)
	o.priv = tpm2.TPM2BPrivate{Buffer: bytes.Clone(priv)}
	return pub, nil
}

// TPMA_OBJECT bits.
const (
	attrFixedTPM            = 1 << 1
	attrFixedParent         = 1 << 4
	attrSensitiveDataOrigin = 1 << 5
	attrUserWithAuth        = 1 << 6
	attrNoDA                = 1 << 10
	attrRestricted          = 1 << 16
	attrDecrypt             = 1 << 17
	attrSign                = 1 << 18
)

// publicHead is the start of a TPMT_PUBLIC, read by hand (go-tpm's
// reflection would cost more than the rest of an unwrap on the host), and
// what follows it.
type publicHead struct {
	typ, nameAlg tpm2.TPMAlgID
	attrs        uint32
	authPolicy   []byte
	rest         []byte // parameters and unique
}

func parseHead(b []byte) (publicHead, error) {
	if len(b) < 10 {
		return publicHead{}, fmt.Errorf("truncated")
	}
	h := publicHead{
		typ:     tpm2.TPMAlgID(binary.BigEndian.Uint16(b)),
		nameAlg: tpm2.TPMAlgID(binary.BigEndian.Uint16(b[2:])),
		attrs:   binary.BigEndian.Uint32(b[4:]),
	}
	n := int(binary.BigEndian.Uint16(b[8:]))
	if len(b) < 10+n {
		return publicHead{}, fmt.Errorf("authPolicy: truncated")
	}
	h.authPolicy, h.rest = b[10:10+n], b[10+n:]
	return h, nil
}

// has reports whether every bit of mask is set.
func (h publicHead) has(mask uint32) bool { return h.attrs&mask == mask }

// parsePublic unmarshals a TPMT_PUBLIC that must use all of b.
func parsePublic(b []byte) (pub *tpm2.TPMTPublic, err error) {
	defer func() {
		if r := recover(); r != nil { // defensive: reflection over hostile bytes
			pub, err = nil, fmt.Errorf("unparseable public area")
		}
	}()
	pub, err = tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(tpm2.Marshal(*pub), b) {
		return nil, fmt.Errorf("public area does not round-trip (trailing or non-canonical bytes)")
	}
	return pub, nil
}

// checkPublic verifies what every hsmenv object needs: SHA-256 names, bound
// to this TPM and its parent, and an authPolicy that is exactly the policy
// recorded beside it (and the empty auth value usable only without one).
func checkPublic(h publicHead, p policy, bad error) error {
	if h.nameAlg != tpm2.TPMAlgSHA256 || !h.has(attrFixedTPM|attrFixedParent) {
		return fmt.Errorf("%w: the object is not a SHA-256, fixedTPM, fixedParent object", bad)
	}
	if !bytes.Equal(h.authPolicy, p.digest()) {
		return fmt.Errorf("%w: the object's authPolicy is not the policy recorded with it (%s): altered", bad, p.describe())
	}
	if h.has(attrUserWithAuth) != p.empty() || h.has(attrNoDA) == p.pin {
		return fmt.Errorf("%w: the object's attributes do not fit its policy (%s): altered", bad, p.describe())
	}
	return nil
}

// use loads o under its SRK, runs cmd on it with a salted session that
// encrypts the response parameter and satisfies o's policy (auth is the
// PIN's auth value, if any, from pins), and flushes it. A PIN the TPM
// rejected before is not sent again; one it rejects now is recorded in pins.
// Failures are classified into the package's sentinel errors; connection
// failures pass unchanged.
func (c *conn) use(o *object, what string, auth []byte, pins *pinCache, bad error, cmd func(h tpm2.AuthHandle) error) error {
	if o.policy.pin {
		if err := pins.usable(auth); err != nil {
			return err
		}
	}
	err := c.load(o, what, auth, bad, cmd)
	if o.policy.pin && errors.Is(err, ErrPIN) {
		pins.reject(auth)
	}
	return err
}

// load is use without the PIN bookkeeping.
func (c *conn) load(o *object, what string, auth []byte, bad error, cmd func(h tpm2.AuthHandle) error) error {
	s, err := c.srkFor(o.srkName)
	if err != nil {
		return err
	}
	if err := o.policy.prepare(c.l); err != nil {
		return err
	}
	lr, err := (tpm2.Load{ParentHandle: s.parent(), InPrivate: o.priv, InPublic: o.pub}).Execute(c.l)
	if err != nil {
		if isLink(err) || isRetry(err) {
			return err
		}
		if isRC(err, tpm2.TPMRCIntegrity) {
			return fmt.Errorf("%w: %s: the TPM refused to load the object (TPM_RC_INTEGRITY): it was altered, or made under another SRK with the same name", bad, what)
		}
		return fmt.Errorf("%w: %s: TPM2_Load: %v", bad, what, err)
	}
	defer flushHandle(c.l, lr.ObjectHandle)
	// The session HMAC binds the name given here; the TPM checks it against
	// the object at the handle. Taking the name from the Load response
	// would let something on the link load another object (one whose
	// secret it chose) and hand back that object's handle and name.
	name := o.name()
	if !bytes.Equal(lr.Name.Buffer, name) {
		return fmt.Errorf("%w: %s: TPM2_Load answered with the name %s, but the object sent has the name %s: something between hsmenv and the TPM altered the command or the response",
			ErrTampered, what, shortName(lr.Name.Buffer), shortName(name))
	}
	var sess tpm2.Session
	if o.policy.empty() {
		sess = s.hmacOut(nil)
	} else {
		sess = s.policyOut(o.policy, auth)
	}
	err = cmd(tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: tpm2.TPM2BName{Buffer: name}, Auth: sess})
	if err == nil {
		return nil
	}
	flushSessions(c.l, sess)
	return c.classify(o.policy, what, bad, err)
}

// classify turns a TPM failure on an object with policy p into the
// package's errors: ErrPIN, ErrLockout, ErrPCR (naming the PCRs that
// differ), else bad.
func (c *conn) classify(p policy, what string, bad error, err error) error {
	switch {
	case isLink(err), isRetry(err):
		return err // the device reconnects or retries
	case isRC(err, tpm2.TPMRCLockout):
		return lockoutError(lockout(c.l))
	case isAuthFail(err) && p.pin:
		left := "wrong PINs lead to dictionary-attack lockout"
		if info := lockout(c.l); info != nil && info.maxTries > info.counter {
			left = fmt.Sprintf("%d more lock the TPM out", info.maxTries-info.counter)
		} else if info != nil {
			left = "the TPM is now in dictionary-attack lockout"
		}
		return fmt.Errorf("%w: the TPM rejected the PIN (wrong PIN); %s", ErrPIN, left)
	case isRC(err, tpm2.TPMRCPolicyFail, tpm2.TPMRCPCR) && len(p.pcrs) > 0:
		return p.pcrError(c.l, err)
	}
	return fmt.Errorf("%w: %s: %v", bad, what, err)
}
