package envelope

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// Body content strings bound into each frame's AAD.
const (
	contentStringFrame  = "AWSKMSEncryptionClient Frame"
	contentStringFinal  = "AWSKMSEncryptionClient Final Frame"
	contentStringSingle = "AWSKMSEncryptionClient Single Block"
)

const (
	finalFrameMarker = 0xFFFFFFFF
	// regularOverhead is seq | IV | tag around a regular frame's content.
	regularOverhead = 4 + ivLen + tagLen
	// finalOverhead is marker | seq | IV | length | tag around a final frame's.
	finalOverhead = 4 + 4 + ivLen + 4 + tagLen
	// maxFrames bounds the sequence numbers: the final-frame marker is not one.
	maxFrames = finalFrameMarker - 1
)

// frameCipher seals and opens body frames of one message. It is not safe for
// concurrent use: each worker has its own.
type frameCipher struct {
	aead      cipher.AEAD
	messageID []byte
	aad       []byte
}

func newFrameCipher(contentKey, messageID []byte) (*frameCipher, error) {
	aead, err := newGCM(contentKey)
	if err != nil {
		return nil, err
	}
	return &frameCipher{aead: aead, messageID: messageID, aad: make([]byte, 0, len(messageID)+64)}, nil
}

// bodyAAD builds message id || content string || seq || plaintext length.
func (fc *frameCipher) bodyAAD(content string, seq uint32, n int) []byte {
	a := append(fc.aad[:0], fc.messageID...)
	a = append(a, content...)
	a = binary.BigEndian.AppendUint32(a, seq)
	a = binary.BigEndian.AppendUint64(a, uint64(n))
	fc.aad = a
	return a
}

// seqIV is the IV of frame seq: the sequence number as a 12-byte big-endian
// integer.
func seqIV(seq uint32) [ivLen]byte {
	var iv [ivLen]byte
	binary.BigEndian.PutUint32(iv[ivLen-4:], seq)
	return iv
}

// sealFrame appends frame seq holding plaintext to dst, as a final frame if
// final is set.
func (fc *frameCipher) sealFrame(dst []byte, seq uint32, final bool, plaintext []byte) []byte {
	iv := seqIV(seq)
	content := contentStringFrame
	if final {
		content = contentStringFinal
		dst = binary.BigEndian.AppendUint32(dst, finalFrameMarker)
	}
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = append(dst, iv[:]...)
	if final {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(plaintext)))
	}
	return fc.aead.Seal(dst, iv[:], plaintext, fc.bodyAAD(content, seq, len(plaintext)))
}

// openFrames decrypts a batch of serialized frames (regular frames of
// frameLen bytes of content, then one final frame if final) and appends the
// plaintext to dst. The producer already checked their structure.
func (fc *frameCipher) openFrames(dst, in []byte, firstSeq uint32, frameLen int, final bool) ([]byte, error) {
	seq := firstSeq
	for len(in) > 0 {
		if final && binary.BigEndian.Uint32(in) == finalFrameMarker {
			n := int(binary.BigEndian.Uint32(in[8+ivLen:]))
			iv, ct := in[8:8+ivLen], in[finalOverhead-tagLen:]
			var err error
			dst, err = fc.open(dst, iv, ct, contentStringFinal, seq, n)
			return dst, err
		}
		iv, ct := in[4:4+ivLen], in[4+ivLen:regularOverhead+frameLen]
		var err error
		if dst, err = fc.open(dst, iv, ct, contentStringFrame, seq, frameLen); err != nil {
			return dst, err
		}
		in = in[regularOverhead+frameLen:]
		seq++
	}
	return dst, nil
}

// open authenticates and decrypts one frame's ciphertext||tag. A frame's IV
// must be its sequence number (the ESDK encrypt spec; every ESDK writes
// it): a message whose frames carry other IVs was not made by an ESDK, and
// only a key holder could have made one that authenticates. The single
// block of a legacy non-framed body keeps whatever IV its producer chose.
func (fc *frameCipher) open(dst, iv, ct []byte, content string, seq uint32, n int) ([]byte, error) {
	if content != contentStringSingle {
		if want := seqIV(seq); !bytes.Equal(iv, want[:]) {
			return dst, fmt.Errorf("%w: frame %d has IV %x, not its sequence number", ErrMalformed, seq, iv)
		}
	}
	out, err := fc.aead.Open(dst, iv, ct, fc.bodyAAD(content, seq, n))
	if err != nil {
		return dst, fmt.Errorf("%w: frame %d was altered or belongs to another message", ErrFrameAuth, seq)
	}
	return out, nil
}
