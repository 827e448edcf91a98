package envelope

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"strings"
	"sync"
)

// opened is a message whose header has been parsed and authenticated and
// whose content key is known.
type opened struct {
	header      *Header
	context     EncryptionContext // stored and reproduced pairs: what the KEKs bound
	unstoredSer []byte            // the serialized reproduced pairs the header lacks
	contentKey  []byte
	fc          *frameCipher     // the content key's AES-GCM, for one user
	verifyKey   *ecdsa.PublicKey // signed suites
}

// openHeader reads the header from r, checks it against the options,
// recovers the data key, checks the key commitment (in constant time, before
// anything else uses the key) and then the header authentication tag.
func openHeader(ctx context.Context, r io.Reader, kr *Keyring, opts DecryptOptions) (*opened, error) {
	if err := kr.check(); err != nil {
		return nil, err
	}
	h, err := readHeader(r, maxEDKs(opts.MaxEncryptedDataKeys))
	if err != nil {
		return nil, err
	}
	o, dk, err := openParsed(ctx, h, kr, opts)
	dk.Release()
	return o, err
}

// openParsed checks a parsed header against the options, recovers its data
// key and authenticates the header. The caller releases the data key.
func openParsed(ctx context.Context, h *Header, kr *Keyring, opts DecryptOptions) (*opened, *dataKey, error) {
	if err := kr.check(); err != nil {
		return nil, nil, err
	}
	s := h.suite
	if !s.committing && opts.Policy == RequireEncryptRequireDecrypt {
		return nil, nil, fmt.Errorf("%w: a legacy message (format v%d, suite %s, no key commitment), which the policy refuses", ErrCommitmentPolicy, h.Version, h.Suite)
	}
	if maxFrame := maxFrameSize(opts); h.Framed && int64(h.FrameLength) > int64(maxFrame) {
		return nil, nil, fmt.Errorf("%w: frame length %d is above the limit of %d", ErrMalformed, h.FrameLength, maxFrame)
	}
	o := &opened{header: h}
	pubB64, hasPub := h.Context[publicKeyContextKey]
	switch {
	case s.signed() && !hasPub:
		return nil, nil, fmt.Errorf("%w: signed suite %s but no %s in the context", ErrMalformed, h.Suite, publicKeyContextKey)
	case !s.signed() && hasPub:
		return nil, nil, fmt.Errorf("%w: unsigned suite %s with a %s in the context", ErrMalformed, h.Suite, publicKeyContextKey)
	case s.signed():
		key, err := parseVerifyKey(s.curve, pubB64)
		if err != nil {
			return nil, nil, err
		}
		o.verifyKey = key
	}
	if err := o.reproduce(opts.ReproducedContext); err != nil {
		return nil, nil, err
	}
	if err := requireContext(o.context, opts.RequiredContext); err != nil {
		return nil, nil, err
	}
	dk, err := kr.openDataKey(ctx, s, h.EDKs, o.context)
	if err != nil {
		if len(h.UnstoredContext) > 0 && errors.Is(err, ErrNoKEK) {
			err = fmt.Errorf("%w (or a wrong value for %s, not stored in the message)",
				err, strings.Join(h.UnstoredContext.sortedKeys(), ", "))
		}
		return nil, nil, err
	}
	contentKey, commitKey, err := s.deriveKeys(dk.key, h.MessageID)
	if err != nil {
		dk.Release()
		return nil, nil, err
	}
	if s.committing {
		err = checkCommitment(commitKey, h.CommitKey)
	}
	if err == nil {
		o.fc, err = newFrameCipher(contentKey, h.MessageID)
	}
	if err == nil {
		err = h.verifyAuth(o.fc.aead, o.unstoredSer)
	}
	if err != nil {
		clear(contentKey)
		dk.Release()
		return nil, nil, err
	}
	o.contentKey = contentKey
	return o, dk, nil
}

// reproduce merges the caller's reproduced context into the message's:
// a pair the header stores must have the same value; the others are the
// unstored pairs, which the header authentication then covers.
func (o *opened) reproduce(reproduced EncryptionContext) error {
	h := o.header
	o.context = h.Context
	if len(reproduced) == 0 {
		return nil
	}
	unstored := EncryptionContext{}
	for _, key := range reproduced.sortedKeys() {
		stored, ok := h.Context[key]
		switch {
		case !ok:
			unstored[key] = reproduced[key]
		case stored != reproduced[key]:
			return fmt.Errorf("%w: key %q is %q in the message, %q given", ErrContext, key, stored, reproduced[key])
		}
	}
	if len(unstored) == 0 {
		return nil
	}
	ser, err := unstored.Serialize()
	if err != nil {
		return err
	}
	o.context = h.Context.clone()
	maps.Copy(o.context, unstored)
	o.unstoredSer, h.UnstoredContext = ser, unstored
	return nil
}

// parseVerifyKey decodes the base64 compressed point of the context.
func parseVerifyKey(curve elliptic.Curve, b64 string) (*ecdsa.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64", ErrMalformed, publicKeyContextKey)
	}
	bad := fmt.Errorf("%w: %s is not a compressed %s point", ErrMalformed, publicKeyContextKey, curve.Params().Name)
	x, y := elliptic.UnmarshalCompressed(curve, raw)
	if x == nil {
		return nil, bad
	}
	// SEC 1 uncompressed form, parsed (and checked on the curve) by
	// crypto/ecdsa rather than set into the deprecated X and Y fields.
	size := (curve.Params().BitSize + 7) / 8
	point := make([]byte, 1+2*size)
	point[0] = 4
	x.FillBytes(point[1 : 1+size])
	y.FillBytes(point[1+size:])
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, bad
	}
	return pub, nil
}

// Decrypter decrypts one message from a stream. Read returns plaintext in
// order; every byte it returns has been authenticated, and for signed suites
// the final frame is returned only after the signature verified. Any error is
// final. It holds a fixed amount of memory and decrypts frames on all cores.
type Decrypter struct {
	o        *opened
	p        *openPipeline
	stop     chan struct{}
	stopOnce sync.Once
	cur      *openJob
	off      int
	err      error
}

// openJob is a batch of consecutive frames (or a non-framed body) to open.
type openJob struct {
	jobBuffers
	firstSeq uint32 // sequence number of the first frame
	final    bool   // the batch ends with the final frame
	single   bool   // a non-framed body
}

type openPipeline = pipeline[openJob, *openJob]

// NewDecrypter reads and authenticates the header of the message in r,
// recovers its data key through kr, and returns the Decrypter of its body.
// ctx bounds the keyring call and the whole decryption: once it is done,
// Read and WriteTo stop within one batch of frames with an error wrapping
// ctx.Err().
func NewDecrypter(ctx context.Context, r io.Reader, kr *Keyring, opts DecryptOptions) (*Decrypter, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	o, err := openHeader(ctx, br, kr, opts)
	if err != nil {
		return nil, err
	}
	return newDecrypter(ctx, o, br, opts)
}

// newDecrypter starts decrypting the body that follows o's header in r. It
// hands o's cipher to a worker and zeroes o's content key.
func newDecrypter(ctx context.Context, o *opened, r byteReader, opts DecryptOptions) (*Decrypter, error) {
	h := o.header
	frameLen := int(h.FrameLength)
	frames := 1
	inCap := 0
	if h.Framed {
		frames = batchFrames(frameLen, batchBytes)
		inCap = frames * (frameLen + finalOverhead)
	}
	n, depth := pipelineShape(workers(opts.Concurrency), inCap+frames*frameLen, 1)
	ciphers := make(chan *frameCipher, n)
	ciphers <- o.fc
	for i := 1; i < n; i++ {
		fc, err := newFrameCipher(o.contentKey, h.MessageID)
		if err != nil {
			clear(o.contentKey)
			return nil, err
		}
		ciphers <- fc
	}
	clear(o.contentKey)
	d := &Decrypter{o: o, stop: make(chan struct{})}
	d.p = newPipeline(n, depth, inCap, frames*frameLen, 0, func() func(*openJob) {
		fc := <-ciphers
		return func(j *openJob) {
			if j.single {
				j.out, j.err = fc.openSingle(j.out, j.in)
			} else {
				j.out, j.err = fc.openFrames(j.out, j.in, j.firstSeq, frameLen)
			}
			if j.err != nil {
				clear(j.out)
				j.out = j.out[:0]
			}
		}
	})
	var sig hash.Hash
	if h.suite.signed() {
		sig = h.suite.sigHash()
		sig.Write(h.authData)
		sig.Write(h.authIV)
		sig.Write(h.authTag)
	}
	pr := &producer{ctx: ctx, r: r, h: h, p: d.p, stop: d.stop, sig: sig, verifyKey: o.verifyKey, frames: frames, maxBody: maxFrameSize(opts)}
	go pr.run()
	return d, nil
}

// Header returns the message's authenticated header.
func (d *Decrypter) Header() *Header { return d.o.header }

// next moves to the next finished job; it returns false at the end or on
// error, with d.err set.
func (d *Decrypter) next() bool {
	if d.cur != nil {
		d.p.put(d.cur)
		d.cur = nil
	}
	if d.err != nil {
		return false
	}
	j, ok := <-d.p.order
	if !ok {
		// The producer is done and every job is back: recycle buffers.
		d.p.wait()
		d.err = io.EOF
		return false
	}
	<-j.done
	if j.err != nil {
		d.err = j.err
		d.p.put(j)
		d.shutdown()
		return false
	}
	d.cur, d.off = j, 0
	return true
}

// shutdown stops the producer and, in the background (the producer may be
// blocked reading the source), takes back every job so that the buffers that
// held plaintext are zeroed and recycled.
func (d *Decrypter) shutdown() {
	d.stopOnce.Do(func() {
		close(d.stop)
		go func() {
			for j := range d.p.order {
				<-j.done
				d.p.put(j)
			}
			d.p.wait()
		}()
	})
}

// Read returns authenticated plaintext. At the end of a valid message it
// returns io.EOF; on a bad one, an error naming what is wrong.
func (d *Decrypter) Read(p []byte) (int, error) {
	for {
		if d.cur != nil && d.off < len(d.cur.out) {
			n := copy(p, d.cur.out[d.off:])
			d.off += n
			return n, nil
		}
		if !d.next() {
			return 0, d.err
		}
	}
}

// WriteTo writes the rest of the plaintext to w straight from the frame
// buffers; io.Copy uses it.
func (d *Decrypter) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if d.cur != nil && d.off < len(d.cur.out) {
			n, err := w.Write(d.cur.out[d.off:])
			d.off += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if !d.next() {
			if d.err == io.EOF {
				return total, nil
			}
			return total, d.err
		}
	}
}

// Close stops decryption and releases the workers. It does not close the
// source. Reading after Close fails.
func (d *Decrypter) Close() error {
	if d.cur != nil {
		d.p.put(d.cur)
		d.cur = nil
	}
	if d.err == io.EOF {
		// Everything was consumed and recycled already.
		d.err = errDecrypterClosed
		return nil
	}
	if d.err == nil {
		d.err = errDecrypterClosed
	}
	d.shutdown()
	return nil
}

// byteReader is what the producer reads the body from.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// producer reads the body, checks its structure and feeds the pipeline.
type producer struct {
	ctx       context.Context
	r         byteReader
	h         *Header
	p         *openPipeline
	stop      chan struct{}
	sig       hash.Hash
	verifyKey *ecdsa.PublicKey
	frames    int // frames per job
	maxBody   int // bound for a non-framed body
}

func (pr *producer) run() {
	defer pr.p.closeInput()
	seq := uint32(1)
	for {
		if err := pr.ctx.Err(); err != nil {
			if j := pr.p.get(pr.stop); j != nil {
				pr.p.fail(j, err)
			}
			return
		}
		j := pr.p.get(pr.stop)
		if j == nil {
			return
		}
		j.firstSeq = seq
		var err error
		if pr.h.Framed {
			seq, err = pr.readFrames(j, seq)
		} else {
			err = pr.readSingle(j)
		}
		if err == nil && pr.sig != nil {
			pr.sig.Write(j.in)
		}
		if err == nil && j.final {
			err = pr.finish()
		}
		if err != nil {
			clear(j.in)
			pr.p.fail(j, err)
			return
		}
		pr.p.submit(j)
		if j.final {
			return
		}
	}
}

// read appends exactly n bytes of frame seq from the body to j.in.
func (pr *producer) read(j *openJob, n int, seq uint32) ([]byte, error) {
	start := len(j.in)
	if cap(j.in)-start < n {
		grown := make([]byte, start, start+n)
		copy(grown, j.in)
		j.in = grown
	}
	j.in = j.in[:start+n]
	if _, err := io.ReadFull(pr.r, j.in[start:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: it ends inside frame %d", ErrTruncated, seq)
		}
		return nil, fmt.Errorf("reading frame %d: %w", seq, err)
	}
	return j.in[start:], nil
}

// readFrames reads up to pr.frames frames into j, checking each one's
// structure (frameSize), stopping after the final frame, and returns the
// next sequence number.
func (pr *producer) readFrames(j *openJob, seq uint32) (uint32, error) {
	frameLen := int(pr.h.FrameLength)
	for i := 0; i < pr.frames; i++ {
		head, err := pr.read(j, 4, seq)
		if err != nil {
			return seq, err
		}
		headLen := 4
		if isFinalFrame(head) {
			if _, err := pr.read(j, finalHeadLen-4, seq); err != nil {
				return seq, err
			}
			headLen = finalHeadLen
		}
		start := len(j.in) - headLen
		size, err := frameSize(j.in[start:], seq, frameLen)
		if err != nil {
			return seq, err
		}
		if _, err := pr.read(j, size-headLen, seq); err != nil {
			return seq, err
		}
		if headLen == finalHeadLen {
			j.final = true
			return seq + 1, nil
		}
		seq++
	}
	return seq, nil
}

// readSingle reads a non-framed body.
func (pr *producer) readSingle(j *openJob) error {
	b, err := pr.read(j, singleHeadLen, 1)
	if err != nil {
		return err
	}
	size, err := singleSize(b, pr.maxBody)
	if err != nil {
		return err
	}
	if _, err := pr.read(j, size-singleHeadLen, 1); err != nil {
		return err
	}
	j.single, j.final = true, true
	return nil
}

// finish reads and verifies the footer of signed suites, then makes sure
// nothing follows the message.
func (pr *producer) finish() error {
	if pr.sig != nil {
		sig, err := readFooter(pr.r)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pr.verifyKey, pr.sig.Sum(nil), sig) {
			return fmt.Errorf("%w: the message was altered or not signed by its producer", ErrSignature)
		}
	}
	switch _, err := pr.r.ReadByte(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return fmt.Errorf("reading past the end of the message: %w", err)
	}
	return fmt.Errorf("%w: bytes follow the end of the message", ErrMalformed)
}
