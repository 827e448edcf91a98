package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
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
		// HKDF-SHA512 (RFC 5869) on crypto/hmac, inside Go's FIPS 140-3
		// module: PRK = HMAC(salt = message id, DEK); each key is the
		// first block of its Expand, HMAC(PRK, info || 0x01), both from one
		// HMAC keyed with the PRK (Reset keeps the keyed state), which
		// saves a key schedule and 10 allocations over two hkdf.Expand
		// calls. TestHKDFMatchesStandard checks it against crypto/hkdf.
		var buf [2 * sha512.Size]byte
		defer clear(buf[:])
		ext := hmac.New(sha512.New, messageID)
		ext.Write(dek)
		prk := ext.Sum(buf[:0])
		exp := hmac.New(sha512.New, prk)
		info := [...]byte{byte(s.id >> 8), byte(s.id), 'D', 'E', 'R', 'I', 'V', 'E', 'K', 'E', 'Y', 1}
		exp.Write(info[:])
		keys := make([]byte, s.keyLen+commitKeyLen)
		copy(keys, exp.Sum(buf[sha512.Size:sha512.Size]))
		exp.Reset()
		exp.Write([]byte("COMMITKEY\x01"))
		copy(keys[s.keyLen:], exp.Sum(buf[sha512.Size:sha512.Size]))
		return keys[:s.keyLen:s.keyLen], keys[s.keyLen:], nil
	default:
		info := binary.BigEndian.AppendUint16(nil, uint16(s.id))
		info = append(info, messageID...)
		contentKey, err = hkdf.Key(s.kdf, dek, nil, string(info), s.keyLen)
		return contentKey, nil, err
	}
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
