// Package rawecdh is the raw ECDH keyring of the AWS Encryption SDK 4.x
// (the Material Providers Library's RawEcdhKeyring), byte for byte: a data
// key is wrapped under a key agreed by ECDH on P-256, P-384 or P-521 between
// a sender and a recipient key pair, so messages interoperate with every ESDK
// that holds the matching keys.
//
// The EDK layout (docs/format.md):
//
//	provider id   "raw-ecdh"
//	provider info 0x01 || u32 len || recipient public key || u32 len || sender public key
//	              (both SEC 1 compressed: 75, 107 or 143 bytes in all)
//	ciphertext    salt (32) || commitment key (32) || AES-256-GCM(data key) || tag (16)
//
// The wrapping key comes from NIST SP 800-108 counter-mode KDF with
// HMAC-SHA384 keyed with the ECDH shared secret Z (the x-coordinate), label
// FixedInfo (the curve, both public keys, the keyring version and the
// message's canonical encryption context) and the salt as context. Its first
// 32 bytes are the commitment key, compared in constant time before the data
// key is opened; the last 32 are the AES-GCM key (zero IV, AAD = FixedInfo).
//
// Seal, Open and ParseInfo are the format for any holder of a private key:
// the software KEK of this package, and the PKCS#11 and TPM KEKs that compute
// Z in their device. KEK is the software keyring, in the ESDK's three
// schemas: ephemeral (encrypt to a recipient public key from a fresh key
// pair), discovery (decrypt with the recipient private key) and static (a
// sender private key and a recipient public key, both ways).
package rawecdh

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hsmenv/hsmenv/envelope"
)

// Scheme is the key URI scheme: raw-ecdh:curve=p256|p384|p521;schema=ephemeral|discovery|static?...
const Scheme = "raw-ecdh"

// ProviderID is the EDK provider id the ESDK raw ECDH keyring writes.
const ProviderID = "raw-ecdh"

var (
	// ErrMalformed reports provider info or an EDK ciphertext that is not
	// the raw ECDH layout, a public key in it that is not a valid point, or
	// a wrapped data key that fails AES-GCM authentication (the EDK was
	// altered after its commitment key).
	ErrMalformed = errors.New("malformed raw-ecdh EDK")
	// ErrCommitment reports an EDK whose commitment key is not the one
	// derived: the shared secret (so the key) or the encryption context is
	// not the one it was made with.
	ErrCommitment = errors.New("raw-ecdh commitment key mismatch (wrong key or encryption context)")
	// ErrSchema reports an operation the KEK's key agreement schema does
	// not allow (wrapping with discovery, unwrapping with ephemeral), or an
	// unknown schema.
	ErrSchema = errors.New("raw-ecdh key agreement schema")
	// ErrBadKey reports a key, curve or shared secret the keyring cannot
	// use, or an EDK that is not for this KEK's keys.
	ErrBadKey = errors.New("raw-ecdh key")
)

// Wire constants (MPL Constants.dfy).
const (
	version      = 0x01 // RAW_ECDH_KEYRING_VERSION
	saltLen      = 32   // KDF_SALT_LEN
	commitLen    = 32   // ECDH_COMMITMENT_KEY_LENGTH
	wrapKeyLen   = 32   // AES-256
	tagLen       = 16
	headLen      = saltLen + commitLen // where the wrapped data key starts
	kdfString    = "ecdh-key-derivation"
	kdfPRFString = "HMAC_SHA384"
)

// curve is one supported curve: its ESDK name, crypto/ecdh and
// crypto/elliptic forms, and its coordinate size in bytes.
type curve struct {
	name     string
	ecdh     ecdh.Curve
	elliptic elliptic.Curve
	size     int
}

var curves = []curve{
	{"p256", ecdh.P256(), elliptic.P256(), 32},
	{"p384", ecdh.P384(), elliptic.P384(), 48},
	{"p521", ecdh.P521(), elliptic.P521(), 66},
}

// compressedLen is the length of a SEC 1 compressed point: 33, 49 or 67.
func (c *curve) compressedLen() int { return 1 + c.size }

// infoLen is the provider info length: 75, 107 or 143.
func (c *curve) infoLen() int { return 1 + 2*(4+c.compressedLen()) }

func curveOf(c ecdh.Curve) *curve {
	for i := range curves {
		if curves[i].ecdh == c {
			return &curves[i]
		}
	}
	return nil
}

// Curve returns the curve of a name: "p256", "p384", "p521" (crypto/ecdh
// curves). Other names fail with ErrBadKey.
func Curve(name string) (ecdh.Curve, error) {
	for i := range curves {
		if curves[i].name == name {
			return curves[i].ecdh, nil
		}
	}
	return nil, fmt.Errorf("%w: curve %q (one of p256, p384, p521)", ErrBadKey, name)
}

// CurveName returns "p256", "p384" or "p521" for a supported curve, and
// fails with ErrBadKey for any other (X25519).
func CurveName(c ecdh.Curve) (string, error) {
	if cv := curveOf(c); cv != nil {
		return cv.name, nil
	}
	return "", fmt.Errorf("%w: curve %v is not P-256, P-384 or P-521", ErrBadKey, c)
}

// checkKey returns the curve of pub, which must be on a supported curve.
func checkKey(what string, pub *ecdh.PublicKey) (*curve, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: no %s public key", ErrBadKey, what)
	}
	cv := curveOf(pub.Curve())
	if cv == nil {
		return nil, fmt.Errorf("%w: the %s key is on %v, not P-256, P-384 or P-521", ErrBadKey, what, pub.Curve())
	}
	return cv, nil
}

// Compressed returns the SEC 1 compressed form of a public key (what
// provider info holds): 0x02 or 0x03 (the parity of y), then x. It returns
// nil for a key that is not on P-256, P-384 or P-521.
func Compressed(pub *ecdh.PublicKey) []byte {
	if pub == nil || curveOf(pub.Curve()) == nil {
		return nil
	}
	raw := pub.Bytes() // 0x04 || x || y
	n := (len(raw) - 1) / 2
	out := make([]byte, 1+n)
	out[0] = 2 | raw[len(raw)-1]&1
	copy(out[1:], raw[1:1+n])
	return out
}

// Decompress returns the public key of a SEC 1 compressed point on curve
// (P-256, P-384 or P-521), as Compressed writes it. A point off the curve,
// infinity or another length fails with ErrBadKey.
func Decompress(curve ecdh.Curve, b []byte) (*ecdh.PublicKey, error) {
	cv := curveOf(curve)
	if cv == nil {
		return nil, fmt.Errorf("%w: not P-256, P-384 or P-521", ErrBadKey)
	}
	pub, err := decompress(cv, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pub, nil
}

// decompress returns the public key of a compressed point on cv. The
// point must be on the curve (x below the field prime, y² = x³ - 3x + b
// solvable) and not infinity.
func decompress(cv *curve, b []byte) (*ecdh.PublicKey, error) {
	if len(b) != cv.compressedLen() || b[0] != 2 && b[0] != 3 {
		return nil, errors.New("not a compressed point (prefix 0x02 or 0x03)")
	}
	x, y := elliptic.UnmarshalCompressed(cv.elliptic, b)
	if x == nil {
		return nil, errors.New("not a point on the curve")
	}
	raw := make([]byte, 1+2*cv.size)
	raw[0] = 4
	x.FillBytes(raw[1 : 1+cv.size])
	y.FillBytes(raw[1+cv.size:])
	return cv.ecdh.NewPublicKey(raw)
}

// Info is a parsed raw-ecdh provider info: both public keys validated on its
// curve (the curve follows from the info length 75/107/143).
type Info struct {
	Curve     ecdh.Curve
	Recipient *ecdh.PublicKey
	Sender    *ecdh.PublicKey
}

// splitInfo checks the layout of provider info without decoding its points:
// a length of 75, 107 or 143 (which gives the curve), version 0x01, and both
// length fields equal to the curve's compressed point length. It returns
// the raw recipient and sender points.
func splitInfo(b []byte) (cv *curve, recipient, sender []byte, err error) {
	for i := range curves {
		if len(b) == curves[i].infoLen() {
			cv = &curves[i]
		}
	}
	if cv == nil {
		return nil, nil, nil, fmt.Errorf("%w: provider info is %d bytes; it is 75 (p256), 107 (p384) or 143 (p521)", ErrMalformed, len(b))
	}
	if b[0] != version {
		return nil, nil, nil, fmt.Errorf("%w: provider info version 0x%02x; the raw ECDH keyring writes 0x01", ErrMalformed, b[0])
	}
	n := cv.compressedLen()
	if l := binary.BigEndian.Uint32(b[1:]); l != uint32(n) {
		return nil, nil, nil, fmt.Errorf("%w: recipient key length field %d; a compressed %s key is %d bytes", ErrMalformed, l, cv.name, n)
	}
	recipient = b[5 : 5+n]
	if l := binary.BigEndian.Uint32(b[5+n:]); l != uint32(n) {
		return nil, nil, nil, fmt.Errorf("%w: sender key length field %d; a compressed %s key is %d bytes", ErrMalformed, l, cv.name, n)
	}
	return cv, recipient, b[9+n:], nil
}

// ParseInfo parses and validates provider info (version 0x01, lengths,
// points on the curve, not infinity). Errors wrap ErrMalformed.
func ParseInfo(providerInfo []byte) (*Info, error) {
	cv, rc, sc, err := splitInfo(providerInfo)
	if err != nil {
		return nil, err
	}
	recipient, err := decompress(cv, rc)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient key: %v", ErrMalformed, err)
	}
	sender, err := decompress(cv, sc)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key: %v", ErrMalformed, err)
	}
	return &Info{Curve: cv.ecdh, Recipient: recipient, Sender: sender}, nil
}

// providerInfo serializes the provider info of two compressed keys,
// recipient first.
func providerInfo(recipient, sender []byte) []byte {
	b := make([]byte, 0, 1+8+len(recipient)+len(sender))
	b = append(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recipient)))
	b = append(b, recipient...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sender)))
	return append(b, sender...)
}

// fixedInfo is the KDF label and the AES-GCM AAD (MPL SerializeFixedInfo):
// "ecdh-key-derivation" 00 curve 00 "HMAC_SHA384" 00 sender recipient 00 01 00
// canonical context (no bytes at all for an empty context).
func fixedInfo(cv *curve, sender, recipient, context []byte) []byte {
	b := make([]byte, 0, len(kdfString)+len(cv.name)+len(kdfPRFString)+len(sender)+len(recipient)+6+len(context))
	b = append(b, kdfString...)
	b = append(b, 0)
	b = append(b, cv.name...)
	b = append(b, 0)
	b = append(b, kdfPRFString...)
	b = append(b, 0)
	b = append(b, sender...)
	b = append(b, recipient...)
	b = append(b, 0, version, 0)
	return append(b, context...)
}

// counterKDF is NIST SP 800-108 KDF in counter mode with HMAC-SHA384, the
// 32-bit big-endian counter from 1 before the fixed input data: the first
// n bytes of HMAC(key, 1 || fixed) || HMAC(key, 2 || fixed) || ... The
// caller zeroes the result.
func counterKDF(key, fixed []byte, n int) []byte {
	mac := hmac.New(sha512.New384, key)
	out := make([]byte, 0, n+mac.Size())
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		mac.Reset()
		mac.Write(ctr[:])
		mac.Write(fixed)
		out = mac.Sum(out)
	}
	clear(out[n:])
	return out[:n]
}

// deriveKeys returns the commitment key (first 32 bytes) and the wrapping
// key (last 32) the MPL's KdfCtr derives from z: fixed input data = label
// (FixedInfo) || 0x00 || context (salt) || L (512 bits as u32). The caller
// zeroes okm.
func deriveKeys(z, fixed, salt []byte) (okm []byte) {
	in := make([]byte, 0, len(fixed)+1+len(salt)+4)
	in = append(in, fixed...)
	in = append(in, 0)
	in = append(in, salt...)
	in = binary.BigEndian.AppendUint32(in, (commitLen+wrapKeyLen)*8)
	return counterKDF(z, in, commitLen+wrapKeyLen)
}

// gcm returns AES-256-GCM under key.
func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// checkSecret checks that z is an x-coordinate of cv.
func checkSecret(cv *curve, z []byte) error {
	if len(z) != cv.size {
		return fmt.Errorf("%w: the shared secret is %d bytes; a %s x-coordinate is %d", ErrBadKey, len(z), cv.name, cv.size)
	}
	return nil
}

// checkDataKey checks a data key length: 16, 24 or 32 bytes (the ESDK suites).
func checkDataKey(n int) bool { return n == 16 || n == 24 || n == 32 }

// Seal wraps dek for the EDK of a key agreement whose shared secret z (the
// raw x-coordinate, as crypto/ecdh's ECDH returns it) the caller computed
// between sender and recipient; ec is the full encryption context the
// message binds (the keyring passes it). It draws the salt from crypto/rand.
// sender and recipient must be on the same supported curve, z the size of
// its x-coordinate and dek 16, 24 or 32 bytes (ErrBadKey otherwise). Seal
// neither keeps nor zeroes z and dek: the caller does.
func Seal(z []byte, sender, recipient *ecdh.PublicKey, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	cv, err := checkKey("sender", sender)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	if rcv, err := checkKey("recipient", recipient); err != nil {
		return envelope.EncryptedDataKey{}, err
	} else if rcv != cv {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: the sender key is on %s, the recipient key on %s", ErrBadKey, cv.name, rcv.name)
	}
	if err := checkSecret(cv, z); err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	if !checkDataKey(len(dek)) {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%w: a %d-byte data key; raw-ecdh wraps 16, 24 or 32 bytes", ErrBadKey, len(dek))
	}
	context, err := ec.Serialize()
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("raw-ecdh: encryption context: %w", err)
	}
	sc, rc := Compressed(sender), Compressed(recipient)
	fixed := fixedInfo(cv, sc, rc, context)
	ct := make([]byte, headLen, headLen+len(dek)+tagLen)
	if _, err := rand.Read(ct[:saltLen]); err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("raw-ecdh: drawing the salt: %w", err)
	}
	okm := deriveKeys(z, fixed, ct[:saltLen])
	defer clear(okm)
	copy(ct[saltLen:], okm[:commitLen])
	aead, err := gcm(okm[commitLen:])
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	var iv [12]byte // a fresh key per EDK: the zero IV is the format's
	ct = aead.Seal(ct, iv[:], dek, fixed)
	return envelope.EncryptedDataKey{ProviderID: ProviderID, ProviderInfo: providerInfo(rc, sc), Ciphertext: ct}, nil
}

// Open recovers the data key of edk (provider id raw-ecdh) from z, the
// shared secret between info.Sender and info.Recipient that the caller
// computed with whichever private key it holds (in software, a PKCS#11
// token: CKM_ECDH1_DERIVE, or a TPM: ECDH_ZGen). info must be the parsed
// provider info of edk. The commitment key is compared in constant time
// before the AES-GCM open. The ciphertext is checked to be 64 bytes, a
// wrapped data key of 16, 24 or 32 bytes and a 16-byte tag before anything
// is derived. Errors wrap ErrCommitment (wrong key or context), ErrMalformed
// or ErrBadKey (a z of the wrong size); no key is returned with an error.
// The caller owns and zeroes the data key, and z.
func Open(z []byte, info *Info, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	if edk.ProviderID != ProviderID {
		return nil, fmt.Errorf("%w: provider id %q, not %q", ErrMalformed, edk.ProviderID, ProviderID)
	}
	if info == nil {
		return nil, fmt.Errorf("%w: no provider info", ErrMalformed)
	}
	cv := curveOf(info.Curve)
	if cv == nil {
		return nil, fmt.Errorf("%w: provider info on curve %v", ErrMalformed, info.Curve)
	}
	for _, k := range []*ecdh.PublicKey{info.Recipient, info.Sender} {
		if k == nil || k.Curve() != cv.ecdh {
			return nil, fmt.Errorf("%w: provider info keys are not both on %s", ErrMalformed, cv.name)
		}
	}
	sc, rc := Compressed(info.Sender), Compressed(info.Recipient)
	if !bytes.Equal(edk.ProviderInfo, providerInfo(rc, sc)) {
		return nil, fmt.Errorf("%w: info is not the EDK's provider info", ErrMalformed)
	}
	if err := checkSecret(cv, z); err != nil {
		return nil, err
	}
	ct := edk.Ciphertext
	if !checkDataKey(len(ct) - headLen - tagLen) {
		return nil, fmt.Errorf("%w: the EDK ciphertext is %d bytes; it is 64 + a 16-, 24- or 32-byte wrapped key + a 16-byte tag", ErrMalformed, len(ct))
	}
	context, err := ec.Serialize()
	if err != nil {
		return nil, fmt.Errorf("raw-ecdh: encryption context: %w", err)
	}
	fixed := fixedInfo(cv, sc, rc, context)
	okm := deriveKeys(z, fixed, ct[:saltLen])
	defer clear(okm)
	if subtle.ConstantTimeCompare(okm[:commitLen], ct[saltLen:headLen]) != 1 {
		return nil, ErrCommitment
	}
	aead, err := gcm(okm[commitLen:])
	if err != nil {
		return nil, err
	}
	var iv [12]byte
	dek, err := aead.Open(nil, iv[:], ct[headLen:], fixed)
	if err != nil {
		return nil, fmt.Errorf("%w: the wrapped data key fails AES-GCM authentication (the EDK was altered)", ErrMalformed)
	}
	return dek, nil
}
