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
// everything. ctx bounds the keyring call and the final frame's check only;
// WriteRange takes its own.
func OpenRange(ctx context.Context, ra io.ReaderAt, size int64, kr *Keyring, opts DecryptOptions) (*RangeReader, error) {
	h, err := readAtHeader(ra, size, opts)
	if err != nil {
		return nil, err
	}
	return openRange(ctx, ra, size, h, kr, opts)
}

// readAtHeader parses the header at the start of ra.
func readAtHeader(ra io.ReaderAt, size int64, opts DecryptOptions) (*Header, error) {
	return readHeader(bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 4096), maxEDKs(opts.MaxEncryptedDataKeys))
}

// openRange is OpenRange for a header already parsed. Messages it cannot
// serve are refused before the keyring is asked for their data key.
func openRange(ctx context.Context, ra io.ReaderAt, size int64, h *Header, kr *Keyring, opts DecryptOptions) (*RangeReader, error) {
	switch {
	case h.suite.signed():
		return nil, fmt.Errorf("%w: suite %s signs the whole message, so no part of it can be trusted before all of it is read; decrypt it as a stream", ErrRange, h.Suite)
	case !h.Framed:
		return nil, fmt.Errorf("%w: the message is not framed; decrypt it as a stream", ErrRange)
	}
	o, dk, err := openParsed(ctx, h, kr, opts)
	if err != nil {
		return nil, err
	}
	dk.Release()
	return newRangeReader(ra, size, o)
}

// newRangeReader serves the framed, unsigned message of o held in ra; it
// takes o's content key (Close zeroes it) and cipher.
func newRangeReader(ra io.ReaderAt, size int64, o *opened) (*RangeReader, error) {
	h := o.header
	r := &RangeReader{ra: ra, header: h, headerSize: int64(h.Size()), frameLen: int64(h.FrameLength), contentKey: o.contentKey, ciphers: []*frameCipher{o.fc}}
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
		return fmt.Errorf("%w: it ends before its final frame", ErrTruncated)
	}
	stride := r.frameLen + regularOverhead
	r.regular = (body - finalOverhead) / stride
	r.finalLen = (body - finalOverhead) % stride
	if r.finalLen > r.frameLen || r.regular >= maxFrames {
		head := make([]byte, finalHeadLen)
		if _, err := r.ra.ReadAt(head, r.frameOffset(r.regular)); err != nil {
			return fmt.Errorf("reading the message: %w", err)
		}
		return r.badEnd(head)
	}
	r.size = r.regular*r.frameLen + r.finalLen
	// The buffers of one WriteRange job, from and back to their pools: a
	// DecryptAt that follows reuses them instead of holding twice as much.
	inCap, outCap := r.jobCaps()
	scratch, dst := getBuf(inCap), getBuf(outCap)
	defer func() { putBuf(scratch); putBuf(dst) }()
	_, err := r.readFramesWith(dst, &scratch, r.regular, r.regular)
	return err
}

// jobCaps returns the ciphertext and plaintext buffer sizes of a
// WriteRange job: whole frames of about batchBytes together (about
// mappedBatchBytes from a memory-mapped file), at least one.
func (r *RangeReader) jobCaps() (in, out int) {
	batch := batchBytes
	if _, ok := r.ra.(viewer); ok {
		batch = mappedBatchBytes
	}
	frames := int64(batchFrames(int(r.frameLen), batch))
	return int(frames*(r.frameLen+regularOverhead) + finalOverhead), int(frames * r.frameLen)
}

// Header returns the authenticated header.
func (r *RangeReader) Header() *Header { return r.header }

// Size returns the plaintext size, authenticated by the final frame.
func (r *RangeReader) Size() int64 { return r.size }

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
	chunkFrames := min(framesPerChunk, (end-off)/r.frameLen+2)
	// Pooled buffers: a server answering many small ranges allocates
	// nothing per request (putBuf zeroes the plaintext).
	buf := getBuf(int(chunkFrames * r.frameLen))
	scratch := getBuf(int(chunkFrames * (r.frameLen + finalOverhead)))
	defer func() { putBuf(buf); putBuf(scratch) }()
	for first := off / r.frameLen; off < end; first = off / r.frameLen {
		last := min((end-1)/r.frameLen, first+framesPerChunk-1)
		pt, err := r.readFramesWith(buf[:0], &scratch, first, last)
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

// readFramesWith reads frames first..last (0-based, inclusive) in one
// ReadAt into *scratch, which it grows as needed (so that a worker can
// reuse one buffer), or as one view of a memory-mapped file, checks and
// authenticates each, and appends their plaintext to dst.
func (r *RangeReader) readFramesWith(dst []byte, scratch *[]byte, first, last int64) ([]byte, error) {
	fc, err := r.cipher()
	if err != nil {
		return dst, err
	}
	defer r.putCipher(fc)
	start, end := r.frameOffset(first), r.frameOffset(last+1)
	if last == r.regular {
		end = r.frameOffset(last) + finalOverhead + r.finalLen
	}
	n := int(end - start)
	if v, ok := r.ra.(viewer); ok {
		// A view that cannot be had (one larger than the mapping bound, a
		// file cut short) is read by copy below, which says what is wrong.
		if raw, release, err := v.View(start, n); err == nil {
			defer release()
			err = v.Guard(func() error {
				var err error
				dst, err = r.openFrames(fc, dst, raw, first, last)
				return err
			})
			return dst, err
		}
	}
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	raw := (*scratch)[:n]
	if _, err := r.ra.ReadAt(raw, start); err != nil {
		if errors.Is(err, io.EOF) {
			return dst, fmt.Errorf("%w: it ends inside frame %d", ErrTruncated, last+1)
		}
		return dst, fmt.Errorf("reading frames %d..%d: %w", first+1, last+1, err)
	}
	return r.openFrames(fc, dst, raw, first, last)
}

// openFrames checks and opens frames first..last, which raw holds, and
// appends their plaintext to dst.
func (r *RangeReader) openFrames(fc *frameCipher, dst, raw []byte, first, last int64) ([]byte, error) {
	frameLen := int(r.frameLen)
	for i := first; i <= last; i++ {
		seq := uint32(i + 1)
		final := i == r.regular
		if final != isFinalFrame(raw) {
			if final {
				return dst, r.badEnd(raw)
			}
			return dst, fmt.Errorf("%w: frame has sequence number %d, expected %d", ErrMalformed, binary.BigEndian.Uint32(raw), seq)
		}
		size, err := frameSize(raw, seq, frameLen)
		if err != nil {
			return dst, err
		}
		if final && int64(size) != finalOverhead+r.finalLen {
			return dst, r.badEnd(raw)
		}
		f, n := parseFrame(raw, seq, frameLen)
		dst, err = fc.openFrame(dst, f)
		r.framesRead.Add(1)
		if err != nil {
			return dst, err
		}
		raw = raw[n:]
	}
	return dst, nil
}

// badEnd says why the frame where the message size puts the final frame,
// whose first finalHeadLen or more bytes raw holds, is not that final frame:
// the message was cut (a regular frame is there, or a final frame longer
// than what is left: ErrTruncated, as the stream says), has bytes after its
// end (a shorter final frame: ErrMalformed), or was altered (ErrMalformed).
func (r *RangeReader) badEnd(raw []byte) error {
	seq := uint32(r.regular + 1)
	switch {
	case !isFinalFrame(raw) && binary.BigEndian.Uint32(raw) == seq:
		return fmt.Errorf("%w: it ends before its final frame", ErrTruncated)
	case isFinalFrame(raw) && binary.BigEndian.Uint32(raw[4:]) == seq:
		if int64(binary.BigEndian.Uint32(raw[8+ivLen:])) > r.finalLen {
			return fmt.Errorf("%w: it ends inside its final frame", ErrTruncated)
		}
		return fmt.Errorf("%w: bytes follow the end of the message", ErrMalformed)
	}
	return fmt.Errorf("%w: it does not end in a final frame where its size puts one (altered, or bytes appended)", ErrMalformed)
}

func (r *RangeReader) cipher() (*frameCipher, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("range reader: %w", ErrClosed)
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

// WriteRange writes plaintext bytes [start, end) to w. Batches of frames
// are read (with ReadAt) and decrypted on all cores and written in order;
// memory stays bounded whatever the range. Once ctx is done it stops within
// one batch and returns an error wrapping ctx.Err().
func (r *RangeReader) WriteRange(ctx context.Context, w io.Writer, start, end int64) (int64, error) {
	return r.writeRange(ctx, w, start, end, 0)
}

// rangeJob is a range of plaintext to decrypt from the frames that hold it.
type rangeJob struct {
	jobBuffers
	off int64 // plaintext offset
	n   int   // plaintext bytes
}

func (r *RangeReader) writeRange(ctx context.Context, w io.Writer, start, end int64, concurrency int) (int64, error) {
	if start < 0 || end < start || end > r.size {
		return 0, fmt.Errorf("%w: bytes %d to %d are outside the plaintext of %d bytes", ErrRange, start, end, r.size)
	}
	if start == end {
		return 0, nil
	}
	inCap, outCap := r.jobCaps()
	chunk := int64(outCap)
	// The memory bound counts the ciphertext of each job whether it is
	// copied into a buffer or viewed in a mapping (its pages are resident
	// all the same); views need no buffer (a pread fallback grows one).
	n, depth := pipelineShape(workers(concurrency), inCap+outCap, 1)
	if _, ok := r.ra.(viewer); ok {
		inCap = 0
	}
	p := newPipeline(n, depth, inCap, outCap, 0, func() func(*rangeJob) {
		return func(j *rangeJob) {
			first, last := j.off/r.frameLen, (j.off+int64(j.n)-1)/r.frameLen
			j.out, j.err = r.readFramesWith(j.out[:0], &j.in, first, last)
			if j.err == nil {
				// Keep the buffer's start (it goes back to its pool): move
				// the wanted bytes down instead of reslicing.
				skip := j.off - first*r.frameLen
				n := copy(j.out, j.out[skip:skip+int64(j.n)])
				clear(j.out[n:])
				j.out = j.out[:n]
			}
		}
	})
	stop := make(chan struct{})
	go func() {
		defer p.closeInput()
		for off := start; off < end; {
			next := min(end, (off/chunk+1)*chunk)
			j := p.get(stop)
			if j == nil {
				return
			}
			j.off, j.n = off, int(next-off)
			p.submit(j)
			off = next
		}
	}()
	var written int64
	var err error
	for j := range p.order {
		<-j.done
		if err == nil {
			err = j.err
		}
		if err == nil && ctx.Err() != nil {
			err = fmt.Errorf("decryption stopped: %w", ctx.Err())
		}
		if err == nil {
			var m int
			m, err = w.Write(j.out)
			written += int64(m)
		}
		if err != nil {
			select {
			case <-stop:
			default:
				close(stop)
			}
		}
		p.put(j)
	}
	p.wait()
	return written, err
}

// DecryptAt decrypts the message held in ra (size bytes) to w and returns
// its header. Framed, unsigned messages are decrypted by OpenRange on all
// cores, the workers reading their own frames (straight from the mapped
// pages when ra is a memory-mapped file) (the plaintext size is
// authenticated before the first byte is written); signed and non-framed
// ones stream through NewDecrypter. Every byte written is authenticated.
// ctx bounds the keyring call and the decryption, which stops within one
// batch of frames once ctx is done, with an error wrapping ctx.Err().
func DecryptAt(ctx context.Context, ra io.ReaderAt, size int64, w io.Writer, kr *Keyring, opts DecryptOptions) (*Header, error) {
	h, err := readAtHeader(ra, size, opts)
	if err != nil {
		return nil, err
	}
	if !h.Framed || h.suite.signed() {
		d, err := NewDecrypter(ctx, io.NewSectionReader(ra, 0, size), kr, opts)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		if _, err := d.WriteTo(w); err != nil {
			return nil, err
		}
		return d.Header(), nil
	}
	r, err := openRange(ctx, ra, size, h, kr, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.writeRange(ctx, w, 0, r.size, opts.Concurrency); err != nil {
		return nil, err
	}
	return r.Header(), nil
}
