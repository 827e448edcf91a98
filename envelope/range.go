package envelope

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// RangeReader gives random access to the plaintext of a framed, unsigned
// message held in an io.ReaderAt. Frames have a fixed length, so a plaintext
// offset maps to its frame by arithmetic: ReadAt reads only the frames that
// cover the range asked for, and authenticates each before returning any of
// its bytes. It is safe for concurrent use.
type RangeReader struct {
	ra         io.ReaderAt
	header     *Header
	headerSize int64
	frameLen   int64
	regular    int64 // number of regular frames
	finalLen   int64
	size       int64 // plaintext size

	mu         sync.Mutex
	contentKey []byte // zeroed by Close
	ciphers    []*frameCipher
	closed     bool

	framesRead atomic.Int64
}

// maxRangeChunk bounds the ciphertext ReadAt reads in one go, so a huge
// range costs bounded memory.
const maxRangeChunk = 4 << 20

// OpenRange authenticates the header of the message held in ra (size bytes
// long), recovers its data key through kr, and checks the final frame, which
// authenticates the plaintext size. Signed suites and non-framed messages
// are refused with ErrRange: their integrity is only known after reading
// everything.
func OpenRange(ctx context.Context, ra io.ReaderAt, size int64, kr Keyring, opts DecryptOptions) (*RangeReader, error) {
	o, err := openHeader(ctx, bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 4096), kr, opts)
	if err != nil {
		return nil, err
	}
	h := o.header
	switch {
	case h.suite.signed():
		clear(o.contentKey)
		return nil, fmt.Errorf("%w: suite %s signs the whole message, so no part of it can be trusted before all of it is read; decrypt it as a stream", ErrRange, h.Suite)
	case !h.Framed:
		clear(o.contentKey)
		return nil, fmt.Errorf("%w: the message is not framed; decrypt it as a stream", ErrRange)
	}
	r := &RangeReader{ra: ra, header: h, headerSize: int64(h.Size()), frameLen: int64(h.FrameLength), contentKey: o.contentKey}
	if err := r.layout(size); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// layout derives the frame count from the message size and checks it by
// reading and authenticating the final frame.
func (r *RangeReader) layout(size int64) error {
	body := size - r.headerSize
	if body < finalOverhead {
		return fmt.Errorf("%w: %d bytes after the header, a final frame alone takes %d", ErrTruncated, body, finalOverhead)
	}
	stride := r.frameLen + regularOverhead
	r.regular = (body - finalOverhead) / stride
	r.finalLen = (body - finalOverhead) % stride
	if r.finalLen > r.frameLen || r.regular >= maxFrames {
		return fmt.Errorf("%w: a message of %d bytes cannot end in a final frame with frames of %d bytes (truncated or extended)", ErrMalformed, size, r.frameLen)
	}
	r.size = r.regular*r.frameLen + r.finalLen
	if _, err := r.readFrames(make([]byte, 0, r.finalLen), r.regular, r.regular); err != nil {
		return err
	}
	return nil
}

// Header returns the authenticated header.
func (r *RangeReader) Header() *Header { return r.header }

// Size returns the plaintext size, authenticated by the final frame.
func (r *RangeReader) Size() int64 { return r.size }

// FramesRead returns how many frames ReadAt (and OpenRange) have read and
// authenticated so far.
func (r *RangeReader) FramesRead() int64 { return r.framesRead.Load() }

// ReadAt reads len(p) plaintext bytes at off. It follows io.ReaderAt: fewer
// bytes only at the end of the plaintext, with io.EOF.
func (r *RangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrRange, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	n := 0
	framesPerChunk := max(1, maxRangeChunk/(r.frameLen+finalOverhead))
	buf := make([]byte, 0, min(framesPerChunk, (end-off)/r.frameLen+2)*r.frameLen)
	for first := off / r.frameLen; off < end; first = off / r.frameLen {
		last := min((end-1)/r.frameLen, first+framesPerChunk-1)
		pt, err := r.readFrames(buf[:0], first, last)
		if err != nil {
			return n, err
		}
		start := off - first*r.frameLen
		c := copy(p[n:], pt[start:min(int64(len(pt)), start+end-off)])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// frameOffset returns where frame index i (0-based) starts in the message.
func (r *RangeReader) frameOffset(i int64) int64 {
	return r.headerSize + i*(r.frameLen+regularOverhead)
}

// readFrames reads frames first..last (0-based, inclusive) in one ReadAt,
// checks and authenticates each, and appends their plaintext to dst.
func (r *RangeReader) readFrames(dst []byte, first, last int64) ([]byte, error) {
	fc, err := r.cipher()
	if err != nil {
		return dst, err
	}
	defer r.putCipher(fc)
	endOff := r.frameOffset(last + 1)
	if last == r.regular {
		endOff = r.frameOffset(last) + finalOverhead + r.finalLen
	}
	raw := make([]byte, endOff-r.frameOffset(first))
	if _, err := r.ra.ReadAt(raw, r.frameOffset(first)); err != nil {
		if errors.Is(err, io.EOF) {
			return dst, fmt.Errorf("%w: frame %d is cut short", ErrTruncated, last+1)
		}
		return dst, fmt.Errorf("envelope: reading frames %d..%d: %w", first+1, last+1, err)
	}
	for i := first; i <= last; i++ {
		seq := uint32(i + 1)
		if i == r.regular {
			if binary.BigEndian.Uint32(raw) != finalFrameMarker || binary.BigEndian.Uint32(raw[4:]) != seq ||
				int64(binary.BigEndian.Uint32(raw[8+ivLen:])) != r.finalLen {
				return dst, fmt.Errorf("%w: no final frame %d of %d bytes where the message size puts it", ErrMalformed, seq, r.finalLen)
			}
			dst, err = fc.open(dst, raw[8:8+ivLen], raw[finalOverhead-tagLen:], contentStringFinal, seq, int(r.finalLen))
		} else {
			if got := binary.BigEndian.Uint32(raw); got != seq {
				return dst, fmt.Errorf("%w: frame has sequence number %d, expected %d", ErrMalformed, got, seq)
			}
			dst, err = fc.open(dst, raw[4:4+ivLen], raw[4+ivLen:regularOverhead+r.frameLen], contentStringFrame, seq, int(r.frameLen))
			raw = raw[regularOverhead+r.frameLen:]
		}
		r.framesRead.Add(1)
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (r *RangeReader) cipher() (*frameCipher, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("envelope: range reader: %w", ErrClosed)
	}
	if n := len(r.ciphers); n > 0 {
		fc := r.ciphers[n-1]
		r.ciphers = r.ciphers[:n-1]
		return fc, nil
	}
	return newFrameCipher(r.contentKey, r.header.MessageID)
}

func (r *RangeReader) putCipher(fc *frameCipher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.ciphers = append(r.ciphers, fc)
	}
}

// Close zeroes the content key; ReadAt fails afterwards.
func (r *RangeReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	clear(r.contentKey)
	r.ciphers = nil
	return nil
}

// WriteRange writes plaintext bytes [start, end) to w, reading frame-aligned
// chunks so that no frame is read twice.
func (r *RangeReader) WriteRange(w io.Writer, start, end int64) (int64, error) {
	if start < 0 || end < start || end > r.size {
		return 0, fmt.Errorf("%w: bytes %d to %d are outside the plaintext of %d bytes", ErrRange, start, end, r.size)
	}
	chunk := max(1, maxRangeChunk/r.frameLen) * r.frameLen
	buf := make([]byte, min(chunk, end-start))
	var written int64
	for off := start; off < end; {
		next := min(end, (off/chunk+1)*chunk)
		n, err := r.ReadAt(buf[:next-off], off)
		if err != nil && !(err == io.EOF && int64(n) == next-off) {
			return written, err
		}
		m, err := w.Write(buf[:n])
		written += int64(m)
		if err != nil {
			return written, err
		}
		off = next
	}
	return written, nil
}
