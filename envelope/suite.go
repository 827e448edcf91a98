package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// SuiteID is an algorithm suite identifier of the message format, as it
// appears (big-endian) in the header.
type SuiteID uint16

// The suites this package encrypts with. Both use AES-256-GCM with a key
// derived by HKDF-SHA512 and a key commitment in the header.
const (
	// SuiteCommit is AES-256-GCM, HKDF-SHA512, key commitment, no signature
	// (ESDK ALG_AES256_GCM_HKDF_SHA512_COMMIT_KEY). It is the default.
	SuiteCommit SuiteID = 0x0478
	// SuiteCommitECDSA is SuiteCommit plus an ECDSA P-384/SHA-384 signature in
	// the message footer (ESDK ..._COMMIT_KEY_ECDSA_P384).
	SuiteCommitECDSA SuiteID = 0x0578
)

// String returns the suite id as four hex digits, e.g. "0478".
func (s SuiteID) String() string { return fmt.Sprintf("%04x", uint16(s)) }

// suite describes one algorithm suite.
type suite struct {
	id         SuiteID
	version    byte             // message format version: 1 or 2
	keyLen     int              // AES key length in bytes, also the DEK length
	kdf        func() hash.Hash // nil: the DEK is the content key (legacy suites)
	committing bool
	curve      elliptic.Curve   // nil: unsigned
	sigHash    func() hash.Hash // hash the footer signature is computed over
}

const (
	ivLen        = 12
	tagLen       = 16
	commitKeyLen = 32
)

var suites = []*suite{
	{id: SuiteCommit, version: 2, keyLen: 32, kdf: sha512.New, committing: true},
	{id: SuiteCommitECDSA, version: 2, keyLen: 32, kdf: sha512.New, committing: true, curve: elliptic.P384(), sigHash: sha512.New384},
	// Legacy, non-committing suites of message format v1: decrypt only.
	{id: 0x0014, version: 1, keyLen: 16},
	{id: 0x0046, version: 1, keyLen: 24},
	{id: 0x0078, version: 1, keyLen: 32},
	{id: 0x0114, version: 1, keyLen: 16, kdf: sha256.New},
	{id: 0x0146, version: 1, keyLen: 24, kdf: sha256.New},
	{id: 0x0178, version: 1, keyLen: 32, kdf: sha256.New},
	{id: 0x0214, version: 1, keyLen: 16, kdf: sha256.New, curve: elliptic.P256(), sigHash: sha256.New},
	{id: 0x0346, version: 1, keyLen: 24, kdf: sha512.New384, curve: elliptic.P384(), sigHash: sha512.New384},
	{id: 0x0378, version: 1, keyLen: 32, kdf: sha512.New384, curve: elliptic.P384(), sigHash: sha512.New384},
}

func lookupSuite(id SuiteID) (*suite, error) {
	for _, s := range suites {
		if s.id == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: algorithm suite %s", ErrUnsupported, id)
}

// signed reports whether messages of this suite carry a footer signature.
func (s *suite) signed() bool { return s.curve != nil }

// DataKeyLen returns the length in bytes of the data keys the suite uses.
func (id SuiteID) DataKeyLen() int {
	s, err := lookupSuite(id)
	if err != nil {
		return 0
	}
	return s.keyLen
}

// Signed reports whether the suite appends an ECDSA signature footer.
func (id SuiteID) Signed() bool {
	s, err := lookupSuite(id)
	return err == nil && s.signed()
}

// deriveKeys turns a data key into the content key (and, for committing
// suites, the commit key) for one message.
func (s *suite) deriveKeys(dek, messageID []byte) (contentKey, commitKey []byte, err error) {
	if len(dek) != s.keyLen {
		return nil, nil, fmt.Errorf("%w: data key is %d bytes, suite %s needs %d", ErrMalformed, len(dek), s.id, s.keyLen)
	}
	switch {
	case s.kdf == nil:
		contentKey = append([]byte(nil), dek...)
		return contentKey, nil, nil
	case s.committing:
		// HKDF (RFC 5869) with SHA-512: PRK = HMAC(salt = message id, DEK);
		// each output is at most one hash long, so Expand is
		// T(1) = HMAC(PRK, info || 0x01). The HMACs run on pooled digests:
		// this is the per-message cost of every small message.
		h := hmacPool.Get().(*hmacSHA512)
		defer h.release()
		var prk [sha512.Size]byte
		defer clear(prk[:])
		h.mac(prk[:0], messageID, dek, nil)
		info := [...]byte{byte(s.id >> 8), byte(s.id), 'D', 'E', 'R', 'I', 'V', 'E', 'K', 'E', 'Y', 1}
		t1 := h.mac(make([]byte, 0, sha512.Size), prk[:], info[:], nil)
		contentKey = t1[:s.keyLen:s.keyLen]
		clear(t1[s.keyLen:]) // the unused tail is key material too
		commitKey = h.mac(make([]byte, 0, sha512.Size), prk[:], []byte("COMMITKEY\x01"), nil)[:commitKeyLen:commitKeyLen]
		return contentKey, commitKey, nil
	default:
		info := binary.BigEndian.AppendUint16(nil, uint16(s.id))
		info = append(info, messageID...)
		contentKey, err = hkdf.Key(s.kdf, dek, nil, string(info), s.keyLen)
		return contentKey, nil, err
	}
}

// hmacSHA512 computes HMAC-SHA512 (RFC 2104) on reusable digests.
type hmacSHA512 struct {
	inner, outer hash.Hash
	pad          [sha512.BlockSize]byte
	sum          [sha512.Size]byte
}

var hmacPool = sync.Pool{New: func() any { return &hmacSHA512{inner: sha512.New(), outer: sha512.New()} }}

// mac appends HMAC(key, a || b) to dst. key is at most one block long.
func (h *hmacSHA512) mac(dst, key, a, b []byte) []byte {
	h.setPad(key, 0x36)
	h.inner.Reset()
	h.inner.Write(h.pad[:])
	h.inner.Write(a)
	h.inner.Write(b)
	inner := h.inner.Sum(h.sum[:0])
	h.setPad(key, 0x5c)
	h.outer.Reset()
	h.outer.Write(h.pad[:])
	h.outer.Write(inner)
	return h.outer.Sum(dst)
}

func (h *hmacSHA512) setPad(key []byte, b byte) {
	for i := range h.pad {
		h.pad[i] = b
	}
	for i, k := range key {
		h.pad[i] ^= k
	}
}

// release wipes what derived from keys and returns h to the pool.
func (h *hmacSHA512) release() {
	clear(h.pad[:])
	clear(h.sum[:])
	h.inner.Reset()
	h.outer.Reset()
	hmacPool.Put(h)
}

// checkCommitment compares the derived commit key with the header's in
// constant time.
func checkCommitment(derived, stored []byte) error {
	if len(derived) != len(stored) || subtle.ConstantTimeCompare(derived, stored) != 1 {
		return fmt.Errorf("%w: the data key does not belong to this message", ErrCommitment)
	}
	return nil
}

// newGCM returns AES-GCM with 12-byte IVs and 16-byte tags.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
