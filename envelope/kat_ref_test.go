package envelope_test

// An independent reference reader of ESDK message format v2, written from
// the specification with the standard library only (it does not call the
// envelope package). The known-answer tests use it to check the vectors made
// by the AWS Encryption SDK for JavaScript byte by byte, and to check that
// hsmenv agrees with it.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// refEDK is one encrypted data key as stored in the header.
type refEDK struct {
	providerID string
	info       []byte
	ct         []byte
}

// refMessage is a v2 message split into its fields.
type refMessage struct {
	raw         []byte
	suite       uint16
	msgID       []byte
	ctxOff      int    // offset of the serialized context (after its u16 length)
	ctxBytes    []byte // serialized context without its outer u16 length
	edks        []refEDK
	contentType byte
	frameLen    uint32
	commitKey   []byte
	tagOff      int // offset of the header auth tag = length of the authenticated header
	tag         []byte
	bodyOff     int
}

type refReader struct {
	b   []byte
	off int
	err error
}

func (r *refReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.off+n > len(r.b) {
		r.err = fmt.Errorf("truncated at %s (offset %d, need %d bytes)", what, r.off, n)
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *refReader) u8(what string) byte {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *refReader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *refReader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// refParse splits the header of a v2 message.
func refParse(b []byte) (*refMessage, error) {
	r := &refReader{b: b}
	m := &refMessage{raw: b}
	if v := r.u8("version"); r.err == nil && v != 2 {
		return nil, fmt.Errorf("version %d, want 2", v)
	}
	m.suite = r.u16("suite")
	m.msgID = r.take(32, "message id")
	n := r.u16("context length")
	m.ctxOff = r.off
	m.ctxBytes = r.take(int(n), "context")
	count := r.u16("EDK count")
	for i := 0; i < int(count) && r.err == nil; i++ {
		id := r.take(int(r.u16("provider id length")), "provider id")
		info := r.take(int(r.u16("provider info length")), "provider info")
		ct := r.take(int(r.u16("EDK ciphertext length")), "EDK ciphertext")
		m.edks = append(m.edks, refEDK{providerID: string(id), info: info, ct: ct})
	}
	m.contentType = r.u8("content type")
	m.frameLen = r.u32("frame length")
	m.commitKey = r.take(32, "commit key")
	m.tagOff = r.off
	m.tag = r.take(16, "header auth tag")
	m.bodyOff = r.off
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// refParseContext decodes serialized context bytes (without the outer
// length) into a map, checking the byte order of the keys.
func refParseContext(b []byte) (map[string]string, error) {
	out := map[string]string{}
	if len(b) == 0 {
		return out, nil
	}
	r := &refReader{b: b}
	n := r.u16("pair count")
	prev := ""
	for i := 0; i < int(n) && r.err == nil; i++ {
		k := string(r.take(int(r.u16("key length")), "key"))
		v := string(r.take(int(r.u16("value length")), "value"))
		if r.err != nil {
			break
		}
		if i > 0 && k <= prev {
			return nil, fmt.Errorf("key %q does not sort after %q by bytes", k, prev)
		}
		out[k], prev = v, k
	}
	if r.err == nil && r.off != len(b) {
		return nil, fmt.Errorf("%d stray bytes after the context", len(b)-r.off)
	}
	return out, r.err
}

func refGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// refUnwrapAES opens a raw AES keyring EDK: provider info = key name ||
// tag bits (u32) || IV length (u32) || IV; ciphertext = encrypted DEK || tag;
// AAD = the serialized context without its outer length.
func refUnwrapAES(key []byte, name string, edk refEDK, aad []byte) ([]byte, error) {
	if len(edk.info) != len(name)+4+4+12 || string(edk.info[:len(name)]) != name {
		return nil, fmt.Errorf("provider info %x does not have the raw AES layout for key %q", edk.info, name)
	}
	rest := edk.info[len(name):]
	if tagBits, ivLen := binary.BigEndian.Uint32(rest), binary.BigEndian.Uint32(rest[4:]); tagBits != 128 || ivLen != 12 {
		return nil, fmt.Errorf("tag bits %d, IV length %d; want 128, 12", tagBits, ivLen)
	}
	return refGCM(key).Open(nil, rest[8:], edk.ct, aad)
}

// refUnwrapRSA opens a raw RSA keyring EDK with the named padding.
func refUnwrapRSA(priv *rsa.PrivateKey, padding string, edk refEDK) ([]byte, error) {
	var h hash.Hash
	switch padding {
	case "pkcs1":
		//lint:ignore SA1019 the reference decoder opens the ESDK's PKCS#1 v1.5 vectors as written, independently of rawrsa
		return rsa.DecryptPKCS1v15(nil, priv, edk.ct)
	case "oaep-sha1":
		h = sha1.New()
	case "oaep-sha256":
		h = sha256.New()
	case "oaep-sha384":
		h = sha512.New384()
	case "oaep-sha512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("unknown padding %q", padding)
	}
	return rsa.DecryptOAEP(h, nil, priv, edk.ct, nil)
}

// refDerive derives the content key and the commit key of a committing
// suite: PRK = HKDF-Extract(SHA-512, salt = message id, DEK); content key =
// Expand(suite id || "DERIVEKEY", 32); commit key = Expand("COMMITKEY", 32).
func refDerive(dek, msgID []byte, suite uint16) (contentKey, commitKey []byte, err error) {
	prk, err := hkdf.Extract(sha512.New, dek, msgID)
	if err != nil {
		return nil, nil, err
	}
	info := string([]byte{byte(suite >> 8), byte(suite)}) + "DERIVEKEY"
	if contentKey, err = hkdf.Expand(sha512.New, prk, info, 32); err != nil {
		return nil, nil, err
	}
	if commitKey, err = hkdf.Expand(sha512.New, prk, "COMMITKEY", 32); err != nil {
		return nil, nil, err
	}
	return contentKey, commitKey, nil
}

// refCheckHeaderAuth verifies the header auth tag: AES-GCM under the content
// key, zero IV, empty plaintext, AAD = every header byte before the tag.
func refCheckHeaderAuth(m *refMessage, contentKey []byte) error {
	_, err := refGCM(contentKey).Open(nil, make([]byte, 12), m.tag, m.raw[:m.tagOff])
	return err
}

// refBodyFrame describes one decrypted frame.
type refBodyFrame struct {
	seq   uint32
	final bool
	n     int
}

// refDecryptBody decrypts a framed body and returns the plaintext, the frames
// and the offset just past the final frame.
func refDecryptBody(m *refMessage, contentKey []byte) ([]byte, []refBodyFrame, int, error) {
	if m.contentType != 2 {
		return nil, nil, 0, fmt.Errorf("content type %d, want 2 (framed)", m.contentType)
	}
	aead := refGCM(contentKey)
	r := &refReader{b: m.raw, off: m.bodyOff}
	var pt []byte
	var frames []refBodyFrame
	for want := uint32(1); ; want++ {
		seq := r.u32("sequence number")
		final := seq == 0xFFFFFFFF
		content := "AWSKMSEncryptionClient Frame"
		n := int(m.frameLen)
		if final {
			content = "AWSKMSEncryptionClient Final Frame"
			seq = r.u32("final sequence number")
		}
		iv := r.take(12, "IV")
		if final {
			n = int(r.u32("final frame length"))
		}
		ct := r.take(n+16, "frame content")
		if r.err != nil {
			return nil, nil, 0, r.err
		}
		if seq != want {
			return nil, nil, 0, fmt.Errorf("frame sequence number %d, want %d", seq, want)
		}
		var wantIV [12]byte
		binary.BigEndian.PutUint32(wantIV[8:], seq)
		if string(iv) != string(wantIV[:]) {
			return nil, nil, 0, fmt.Errorf("frame %d IV %x, want %x", seq, iv, wantIV)
		}
		if final && n > int(m.frameLen) {
			return nil, nil, 0, fmt.Errorf("final frame of %d bytes exceeds the frame length %d", n, m.frameLen)
		}
		aad := append([]byte(nil), m.msgID...)
		aad = append(aad, content...)
		aad = binary.BigEndian.AppendUint32(aad, seq)
		aad = binary.BigEndian.AppendUint64(aad, uint64(n))
		var err error
		if pt, err = aead.Open(pt, iv, ct, aad); err != nil {
			return nil, nil, 0, fmt.Errorf("frame %d: %v", seq, err)
		}
		frames = append(frames, refBodyFrame{seq: seq, final: final, n: n})
		if final {
			return pt, frames, r.off, nil
		}
	}
}

// refVerifyFooter checks what follows the body: nothing for 0x0478; for
// 0x0578 a u16-length DER ECDSA P-384 signature over SHA-384 of the header
// and body, under the compressed point in aws-crypto-public-key.
func refVerifyFooter(m *refMessage, ctx map[string]string, bodyEnd int) (sigLen int, err error) {
	switch m.suite {
	case 0x0478:
		if bodyEnd != len(m.raw) {
			return 0, fmt.Errorf("%d bytes after the body of an unsigned message", len(m.raw)-bodyEnd)
		}
		return 0, nil
	case 0x0578:
	default:
		return 0, fmt.Errorf("suite %04x", m.suite)
	}
	raw, err := base64.StdEncoding.DecodeString(ctx["aws-crypto-public-key"])
	if err != nil {
		return 0, fmt.Errorf("aws-crypto-public-key: %v", err)
	}
	if len(raw) != 49 {
		return 0, fmt.Errorf("aws-crypto-public-key is %d bytes, want 49 (compressed P-384)", len(raw))
	}
	x, y := elliptic.UnmarshalCompressed(elliptic.P384(), raw)
	if x == nil {
		return 0, errors.New("aws-crypto-public-key is not a compressed P-384 point")
	}
	//lint:ignore SA1019 the reference decoder builds the key from the coordinates, independently of envelope's parser
	pub := &ecdsa.PublicKey{Curve: elliptic.P384(), X: x, Y: y}
	r := &refReader{b: m.raw, off: bodyEnd}
	sig := r.take(int(r.u16("signature length")), "signature")
	if r.err != nil {
		return 0, r.err
	}
	if r.off != len(m.raw) {
		return 0, fmt.Errorf("%d bytes after the signature", len(m.raw)-r.off)
	}
	digest := sha512.Sum384(m.raw[:bodyEnd])
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return 0, errors.New("footer signature does not verify")
	}
	return len(sig), nil
}
