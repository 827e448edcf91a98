package envelope

// The message format, in one place: the header (with its EDK entries), the
// body frames and the footer, as the ESDK specification defines them
// (awslabs/aws-encryption-sdk-specification: data-format/message-header.md,
// message-body.md, message-footer.md). The encryption context's own
// serialization is in context.go. Everything that writes or reads message
// bytes (the encrypter, the streaming and small decrypters, ranged reads,
// rewrap, cache ids) goes through these functions; the crypto that fills
// the fields is elsewhere (suite.go, body.go).

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Content types of the message body.
const (
	contentNonFramed byte = 0x01
	contentFramed    byte = 0x02
)

const (
	messageIDLenV2 = 32
	messageIDLenV1 = 16
	v1MessageType  = 0x80
)

// Header is the parsed header of a message. It is what `hsmenv inspect`
// shows; none of it is secret.
type Header struct {
	// Version is the message format version, 1 or 2.
	Version byte
	// Suite is the algorithm suite.
	Suite SuiteID
	// MessageID is the random per-message identifier (32 bytes in v2, 16 in v1).
	MessageID []byte
	// Context is the encryption context stored in the header, including the
	// reserved aws-crypto-public-key of signed suites.
	Context EncryptionContext
	// UnstoredContext holds the pairs the message authenticates but does
	// not store: on encrypt those of EncryptOptions.RequiredContextKeys, on
	// decrypt those of DecryptOptions.ReproducedContext the header lacks.
	// It is nil for a header only parsed (ParseHeader).
	UnstoredContext EncryptionContext
	// EDKs are the encrypted data keys, one or more.
	EDKs []EncryptedDataKey
	// Framed reports a framed body; non-framed bodies are decrypt-only.
	Framed bool
	// FrameLength is the plaintext length of each regular frame.
	FrameLength uint32
	// CommitKey is the key commitment (v2 only).
	CommitKey []byte

	suite   *suite
	ctxSer  []byte // the serialized context, as read or written
	ivLen   int    // v1 header: IV length, always 12
	authIV  []byte // v1: the header auth IV
	authTag []byte
	// authData is every header byte before the auth IV/tag: the AAD of the
	// header authentication, exactly as read.
	authData []byte
}

// Size returns the serialized length of the header including its
// authentication fields.
func (h *Header) Size() int { return len(h.authData) + len(h.authIV) + len(h.authTag) }

// marshalHeaderV2 serializes everything of a v2 header before its auth tag,
// with the context already serialized (ecBytes), leaving room for the tag.
func marshalHeaderV2(suite SuiteID, messageID, ecBytes []byte, edks []EncryptedDataKey, frameLength uint32, commitKey []byte) ([]byte, error) {
	if len(edks) == 0 || len(edks) > math.MaxUint16 {
		return nil, fmt.Errorf("%d encrypted data keys, need 1 to %d", len(edks), math.MaxUint16)
	}
	if len(ecBytes) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: serialized context is %d bytes, at most %d", ErrContext, len(ecBytes), math.MaxUint16)
	}
	n := 1 + 2 + len(messageID) + 2 + len(ecBytes) + 2 + 1 + 4 + len(commitKey)
	for _, e := range edks {
		n += 6 + len(e.ProviderID) + len(e.ProviderInfo) + len(e.Ciphertext)
	}
	b := make([]byte, 1, n+tagLen) // room for the tag the caller appends
	b[0] = 2
	b = binary.BigEndian.AppendUint16(b, uint16(suite))
	b = append(b, messageID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ecBytes)))
	b = append(b, ecBytes...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(edks)))
	var err error
	for i, e := range edks {
		if b, err = appendEDK(b, i, e); err != nil {
			return nil, err
		}
	}
	b = append(b, contentFramed)
	b = binary.BigEndian.AppendUint32(b, frameLength)
	b = append(b, commitKey...)
	return b, nil
}

// appendEDK appends EDK i (0-based, for errors) as the header stores it:
// provider id, provider info and ciphertext, each after its u16 length.
func appendEDK(b []byte, i int, e EncryptedDataKey) ([]byte, error) {
	for _, f := range [3][]byte{[]byte(e.ProviderID), e.ProviderInfo, e.Ciphertext} {
		if len(f) > math.MaxUint16 {
			return nil, fmt.Errorf("EDK %d has a %d-byte field, at most %d", i+1, len(f), math.MaxUint16)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// MarshalBinary returns the EDK as a message header stores it (provider
// id, provider info and ciphertext, each after its big-endian u16 length),
// for callers that carry an EDK outside a message, such as the age plugin's
// stanzas. It fails if a field is longer than 65535 bytes.
func (e EncryptedDataKey) MarshalBinary() ([]byte, error) {
	return appendEDK(nil, 0, e)
}

// UnmarshalBinary parses what MarshalBinary returns: exactly one EDK, no
// byte after it. The fields are copies, not views of b. A short or long
// input fails with ErrMalformed.
func (e *EncryptedDataKey) UnmarshalBinary(b []byte) error {
	r := bytes.NewReader(b)
	hr := &headerReader{r: r}
	edk, ok := hr.edk("EDK")
	if !ok {
		return fmt.Errorf("%w: the EDK ends inside its fields", ErrMalformed)
	}
	if r.Len() > 0 {
		return fmt.Errorf("%w: %d bytes after the EDK", ErrMalformed, r.Len())
	}
	*e = edk
	return nil
}

// headerReader reads header fields from r and keeps every byte it read.
type headerReader struct {
	r   io.Reader
	buf []byte
	err error
}

func (h *headerReader) take(n int, what string) []byte {
	if h.err != nil {
		return nil
	}
	start := len(h.buf)
	h.buf = append(h.buf, make([]byte, n)...)
	if _, err := io.ReadFull(h.r, h.buf[start:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			h.err = fmt.Errorf("%w: it ends inside the header (in its %s)", ErrTruncated, what)
		} else {
			h.err = fmt.Errorf("reading the message header: %w", err)
		}
		return nil
	}
	return h.buf[start:len(h.buf):len(h.buf)]
}

func (h *headerReader) u8(what string) byte {
	b := h.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (h *headerReader) u16(what string) uint16 {
	b := h.take(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (h *headerReader) u32(what string) uint32 {
	b := h.take(4, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// edk reads one EDK as appendEDK writes it; what names it in errors.
func (h *headerReader) edk(what string) (EncryptedDataKey, bool) {
	id := h.field16(what + " provider id")
	info := h.field16(what + " provider info")
	ct := h.field16(what + " ciphertext")
	if h.err != nil {
		return EncryptedDataKey{}, false
	}
	return EncryptedDataKey{ProviderID: string(id), ProviderInfo: info, Ciphertext: ct}, true
}

func (h *headerReader) field16(what string) []byte {
	n := h.u16(what + " length")
	return h.take(int(n), what)
}

// readHeader parses a v1 or v2 header from r, reading no byte past it.
// Every length is bounded by its 16-bit field; maxEDKs (if > 0) bounds the
// EDK count before any EDK is read.
func readHeader(r io.Reader, maxEDKs int) (*Header, error) {
	hr := &headerReader{r: r, buf: make([]byte, 0, 512)}
	h := &Header{}
	// The first bytes tell a message from anything else: a version byte of
	// 1 or 2, then (v1) the message type 0x80, then a known algorithm
	// suite; random bytes pass all three by chance once in millions, so
	// whatever fails them is reported as not a message rather than as a
	// message with an odd version or suite.
	h.Version = hr.u8("version")
	switch {
	case errors.Is(hr.err, ErrTruncated):
		return nil, notMessage(hr.err, "the input is empty")
	case hr.err != nil:
		return nil, hr.err
	case h.Version != 1 && h.Version != 2:
		return nil, notMessage(ErrUnsupported, "")
	}
	if h.Version == 1 {
		if t := hr.u8("message type"); hr.err == nil && t != v1MessageType {
			return nil, notMessage(ErrMalformed, "")
		}
	}
	h.Suite = SuiteID(hr.u16("algorithm suite"))
	if hr.err == nil {
		s, err := lookupSuite(h.Suite)
		if err != nil {
			return nil, notMessage(err, "")
		}
		if s.version != h.Version {
			return nil, fmt.Errorf("%w: suite %s does not belong to message format v%d", ErrMalformed, h.Suite, h.Version)
		}
		h.suite = s
	}
	idLen := messageIDLenV2
	if h.Version == 1 {
		idLen = messageIDLenV1
	}
	h.MessageID = hr.take(idLen, "message id")
	ecBytes := hr.field16("encryption context")
	if hr.err == nil {
		ec, err := parseContext(ecBytes)
		if err != nil {
			return nil, err
		}
		h.Context, h.ctxSer = ec, ecBytes
	}
	n := hr.u16("EDK count")
	if hr.err == nil {
		if n == 0 {
			return nil, fmt.Errorf("%w: the header has no encrypted data key", ErrMalformed)
		}
		if maxEDKs > 0 && int(n) > maxEDKs {
			return nil, fmt.Errorf("%w: the message has %d, at most %d allowed", ErrTooManyEDKs, n, maxEDKs)
		}
	}
	for i := 0; i < int(n) && hr.err == nil; i++ {
		if e, ok := hr.edk(fmt.Sprintf("EDK %d", i+1)); ok {
			h.EDKs = append(h.EDKs, e)
		}
	}
	switch ct := hr.u8("content type"); {
	case hr.err != nil:
	case ct == contentFramed:
		h.Framed = true
	case ct == contentNonFramed:
	default:
		return nil, fmt.Errorf("%w: content type %#02x", ErrMalformed, ct)
	}
	if h.Version == 1 {
		if rsv := hr.take(4, "reserved field"); rsv != nil && binary.BigEndian.Uint32(rsv) != 0 {
			return nil, fmt.Errorf("%w: v1 reserved field is not zero", ErrMalformed)
		}
		if l := hr.u8("IV length"); hr.err == nil && l != ivLen {
			return nil, fmt.Errorf("%w: IV length %d, the suite uses %d", ErrMalformed, l, ivLen)
		}
		h.ivLen = ivLen
	}
	h.FrameLength = hr.u32("frame length")
	if hr.err == nil {
		switch {
		case h.Framed && h.FrameLength == 0:
			return nil, fmt.Errorf("%w: framed message with frame length 0", ErrMalformed)
		case !h.Framed && h.FrameLength != 0:
			return nil, fmt.Errorf("%w: non-framed message with frame length %d", ErrMalformed, h.FrameLength)
		}
	}
	if h.Version == 2 {
		h.CommitKey = hr.take(commitKeyLen, "key commitment")
	}
	if hr.err != nil {
		return nil, hr.err
	}
	h.authData = hr.buf
	// The auth fields are kept apart from authData.
	ar := &headerReader{r: r}
	if h.Version == 1 {
		h.authIV = ar.take(ivLen, "header auth IV")
	}
	h.authTag = ar.take(tagLen, "header auth tag")
	if ar.err != nil {
		return nil, ar.err
	}
	return h, nil
}

// headerAuthAAD is what the header authentication tag covers: the header
// bytes before it, then the serialized pairs authenticated but not stored
// (nothing when there are none; message-header.md, encrypt.md
// "Construct the header").
func headerAuthAAD(authData, unstoredSer []byte) []byte {
	if len(unstoredSer) == 0 {
		return authData
	}
	return append(authData[:len(authData):len(authData)], unstoredSer...)
}

// verifyAuth checks the header authentication tag with the content key's
// AES-GCM, over the header and the serialized unstored pairs.
func (h *Header) verifyAuth(aead cipher.AEAD, unstoredSer []byte) error {
	iv := h.authIV
	if iv == nil {
		iv = make([]byte, ivLen)
	}
	if _, err := aead.Open(nil, iv, h.authTag, headerAuthAAD(h.authData, unstoredSer)); err != nil {
		if len(h.UnstoredContext) > 0 {
			return fmt.Errorf("%w: the header was altered, or the reproduced pairs it does not store (keys %s) are not those it was made with",
				ErrHeaderAuth, strings.Join(h.UnstoredContext.sortedKeys(), ", "))
		}
		return fmt.Errorf("%w: the header was altered, or the message binds encryption-context pairs it does not store (give them as the reproduced context)", ErrHeaderAuth)
	}
	return nil
}

// ParseHeader reads and parses the header at the start of r, without any
// key: for inspection. It reads through a buffer, so r's position after it is
// unspecified; the header is not authenticated. A header with more than
// DefaultMaxEncryptedDataKeys EDKs is refused with ErrTooManyEDKs before
// any EDK is read (each may take 192 KiB); ParseHeaderMax sets the bound.
func ParseHeader(r io.Reader) (*Header, error) {
	return ParseHeaderMax(r, 0)
}

// ParseHeaderMax is ParseHeader with max bounding the EDK count as
// DecryptOptions.MaxEncryptedDataKeys does: zero means
// DefaultMaxEncryptedDataKeys, negative means no bound (a header may then
// take up to 12 GiB: 65,535 EDKs of three 64 KiB fields).
func ParseHeaderMax(r io.Reader, max int) (*Header, error) {
	return readHeader(bufio.NewReaderSize(r, 4096), maxEDKs(max))
}

// Body frames. A regular frame is
//
//	seq (u32) | IV (12) | content (frame length) | tag (16)
//
// and the final frame, which may hold 0 to frame length bytes,
//
//	0xFFFFFFFF | seq (u32) | IV (12) | content length (u32) | content | tag (16).
//
// A non-framed (legacy) body is IV (12) | content length (u64) | content |
// tag (16).

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
	// finalHeadLen is the part of a final frame before its content.
	finalHeadLen = finalOverhead - tagLen
	// maxFrames bounds the sequence numbers: the final-frame marker is not one.
	maxFrames = finalFrameMarker - 1
	// singleHeadLen is IV | length before a non-framed body's content.
	singleHeadLen = ivLen + 8
)

// frame is one body frame, located in a buffer.
type frame struct {
	seq    uint32
	final  bool
	iv     []byte
	sealed []byte // content || tag
	n      int    // plaintext length
}

// isFinalFrame reports whether b, the first 4 or more bytes of a frame,
// starts the final frame.
func isFinalFrame(b []byte) bool { return binary.BigEndian.Uint32(b) == finalFrameMarker }

// frameSize checks the start of frame seq and returns its whole length. b
// holds the first 4 bytes of the frame, or finalHeadLen if they are the
// final-frame marker (isFinalFrame). frameLen is the header's frame length.
func frameSize(b []byte, seq uint32, frameLen int) (int, error) {
	if !isFinalFrame(b) {
		if got := binary.BigEndian.Uint32(b); got != seq {
			return 0, fmt.Errorf("%w: frame has sequence number %d, expected %d", ErrMalformed, got, seq)
		}
		if seq == maxFrames {
			return 0, fmt.Errorf("%w: more than %d frames", ErrMalformed, uint64(maxFrames))
		}
		return regularOverhead + frameLen, nil
	}
	if got := binary.BigEndian.Uint32(b[4:]); got != seq {
		return 0, fmt.Errorf("%w: final frame has sequence number %d, expected %d", ErrMalformed, got, seq)
	}
	n := binary.BigEndian.Uint32(b[8+ivLen:])
	if int64(n) > int64(frameLen) {
		return 0, fmt.Errorf("%w: final frame holds %d bytes, more than the frame length %d", ErrMalformed, n, frameLen)
	}
	return finalOverhead + int(n), nil
}

// parseFrame locates frame seq at the start of b, which holds at least the
// whole frame (a frameSize already checked), and returns it with its
// length in b.
func parseFrame(b []byte, seq uint32, frameLen int) (frame, int) {
	if isFinalFrame(b) {
		n := int(binary.BigEndian.Uint32(b[8+ivLen:]))
		return frame{seq: seq, final: true, iv: b[8 : 8+ivLen], sealed: b[finalHeadLen : finalOverhead+n], n: n}, finalOverhead + n
	}
	return frame{seq: seq, iv: b[4 : 4+ivLen], sealed: b[4+ivLen : regularOverhead+frameLen], n: frameLen}, regularOverhead + frameLen
}

// appendFrameHead appends what precedes the sealed content of frame seq.
func appendFrameHead(dst []byte, seq uint32, final bool, n int, iv []byte) []byte {
	if final {
		dst = binary.BigEndian.AppendUint32(dst, finalFrameMarker)
	}
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = append(dst, iv...)
	if final {
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return dst
}

// singleSize checks the start of a non-framed body (singleHeadLen bytes)
// against maxBody and returns the body's whole length.
func singleSize(b []byte, maxBody int) (int, error) {
	n := binary.BigEndian.Uint64(b[ivLen:])
	if n > uint64(maxBody) {
		return 0, fmt.Errorf("%w: non-framed body of %d bytes is above the limit of %d", ErrMalformed, n, maxBody)
	}
	return singleHeadLen + int(n) + tagLen, nil
}

// parseSingle locates the non-framed body that b holds (a singleSize
// already checked).
func parseSingle(b []byte) frame {
	n := int(binary.BigEndian.Uint64(b[ivLen:]))
	return frame{seq: 1, final: true, iv: b[:ivLen], sealed: b[singleHeadLen : singleHeadLen+n+tagLen], n: n}
}

// The footer of signed suites: signature length (u16) | DER signature.

// appendFooter appends the footer holding sig.
func appendFooter(dst, sig []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(sig)))
	return append(dst, sig...)
}

// readFooter reads the footer from r and returns its signature.
func readFooter(r io.Reader) ([]byte, error) {
	var lenBuf [2]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("%w: its signature footer is missing", ErrTruncated)
	}
	sig := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
	if _, err := io.ReadFull(r, sig); err != nil {
		return nil, fmt.Errorf("%w: it ends inside its signature footer", ErrTruncated)
	}
	return sig, nil
}
