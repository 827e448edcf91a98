package envelope

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// frameCipher seals and opens body frames of one message (their layout is
// in format.go). It is not safe for concurrent use: each worker has its own.
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
	}
	dst = appendFrameHead(dst, seq, final, len(plaintext), iv[:])
	return fc.aead.Seal(dst, iv[:], plaintext, fc.bodyAAD(content, seq, len(plaintext)))
}

// openFrames decrypts a batch of frames (regular frames of frameLen bytes
// of content, then possibly the final frame) whose structure the reader
// already checked, and appends the plaintext to dst.
func (fc *frameCipher) openFrames(dst, in []byte, firstSeq uint32, frameLen int) ([]byte, error) {
	for seq := firstSeq; len(in) > 0; seq++ {
		f, n := parseFrame(in, seq, frameLen)
		var err error
		if dst, err = fc.openFrame(dst, f); err != nil {
			return dst, err
		}
		in = in[n:]
	}
	return dst, nil
}

// openFrame authenticates and decrypts one frame and appends its plaintext
// to dst. A frame's IV must be its sequence number (the ESDK encrypt spec;
// every ESDK writes it): a message whose frames carry other IVs was not
// made by an ESDK, and only a key holder could have made one that
// authenticates.
func (fc *frameCipher) openFrame(dst []byte, f frame) ([]byte, error) {
	content := contentStringFrame
	if f.final {
		content = contentStringFinal
	}
	if want := seqIV(f.seq); !bytes.Equal(f.iv, want[:]) {
		return dst, fmt.Errorf("%w: frame %d was altered: its IV does not match its sequence number", ErrMalformed, f.seq)
	}
	return fc.open(dst, f, content)
}

// openSingle decrypts a non-framed body, which keeps whatever IV its
// producer chose.
func (fc *frameCipher) openSingle(dst, in []byte) ([]byte, error) {
	return fc.open(dst, parseSingle(in), contentStringSingle)
}

func (fc *frameCipher) open(dst []byte, f frame, content string) ([]byte, error) {
	out, err := fc.aead.Open(dst, f.iv, f.sealed, fc.bodyAAD(content, f.seq, f.n))
	if err != nil {
		return dst, fmt.Errorf("%w: frame %d was altered or belongs to another message", ErrFrameAuth, f.seq)
	}
	return out, nil
}
