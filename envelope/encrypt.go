package envelope

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"fmt"
	"hash"
	"io"
	"sync"
)

// Encrypter encrypts a stream into one message. Write plaintext to it, then
// Close it to write the final frame (and the signature footer of signed
// suites). It holds a fixed amount of memory whatever the message size, and
// encrypts frames on all cores. It is not safe for concurrent use.
type Encrypter struct {
	ctx        context.Context // NewEncrypter's: ends the whole encryption
	header     *Header
	frameSize  int
	batch      int // plaintext bytes per job
	outCap     int // message bytes per job
	workers    int
	fc         *frameCipher  // the first cipher: Close's, or a worker's
	contentKey []byte        // kept until the pipeline starts or Close
	p          *sealPipeline // nil until a second batch needs it
	mapped     bool          // jobs read a memory-mapped file: no input buffers
	sizeHint   int64         // the plaintext size if known, else -1
	written    int64         // plaintext bytes taken so far
	cur        *sealJob
	nextSeq    uint64
	closed     bool

	w       io.Writer
	signKey *ecdsa.PrivateKey
	sigHash hash.Hash

	mu      sync.Mutex
	werr    error // first write error of the consumer
	drained chan struct{}

	err error // sticky error of the producer side
}

// sealJob is a batch of plaintext to seal into consecutive frames.
type sealJob struct {
	jobBuffers
	firstSeq uint32      // sequence number of the first frame
	final    bool        // the batch ends with the final frame
	borrowed bool        // in is the caller's slice: never written or cleared
	src      io.ReaderAt // if set, the worker reads srcLen bytes at srcOff
	srcOff   int64
	srcLen   int
}

// size is the plaintext length of the job.
func (j *sealJob) size() int {
	if j.src != nil {
		return j.srcLen
	}
	return len(j.in)
}

type sealPipeline = pipeline[sealJob, *sealJob]

// NewEncrypter writes the header of a new message to w and returns the
// Encrypter that writes its body. A fresh data key (or, from a caching
// keyring, a cached one) is wrapped under every KEK of kr; the plaintext
// key is zeroed as soon as the frame ciphers are derived from it.
//
// ctx bounds the keyring call and the whole encryption: once it is done,
// Write, ReadFrom, ReadFromAt and Close stop within one batch of frames
// (about 256 KiB, or one frame when frames are larger) and return an error
// wrapping ctx.Err(); no final frame is written, so what reached w is not a
// complete message.
func NewEncrypter(ctx context.Context, w io.Writer, kr *Keyring, opts EncryptOptions) (*Encrypter, error) {
	if err := kr.check(); err != nil {
		return nil, err
	}
	if opts.Policy == ForbidEncryptAllowDecrypt {
		return nil, fmt.Errorf("%w: %v would need a non-committing suite, which hsmenv never writes", ErrCommitmentPolicy, opts.Policy)
	}
	suiteID := opts.Suite
	if suiteID == 0 {
		suiteID = SuiteCommit
	}
	s, err := lookupSuite(suiteID)
	if err != nil {
		return nil, err
	}
	if s.version != 2 {
		return nil, fmt.Errorf("%w: suite %s is a legacy, decrypt-only suite", ErrUnsupported, suiteID)
	}
	frameSize := opts.FrameSize
	if frameSize == 0 {
		frameSize = DefaultFrameSize
	}
	if frameSize < 1 || frameSize > DefaultMaxFrameSize {
		return nil, fmt.Errorf("frame size %d out of range 1..%d", frameSize, DefaultMaxFrameSize)
	}
	if err := checkUserContext(opts.Context); err != nil {
		return nil, err
	}
	for _, key := range opts.RequiredContextKeys {
		if _, ok := opts.Context[key]; !ok {
			return nil, fmt.Errorf("%w: required context key %q is not in the encryption context", ErrContext, key)
		}
	}
	size := opts.PlaintextSize
	if size <= 0 {
		size = -1
	}
	if max := maxEDKs(opts.MaxEncryptedDataKeys); max > 0 && len(kr.keks) > max {
		return nil, fmt.Errorf("%w: the keyring has %d KEKs, at most %d EDKs allowed", ErrTooManyEDKs, len(kr.keks), max)
	}
	dk, err := kr.newDataKey(ctx, s, opts.Context, opts.RequiredContextKeys, size)
	if err != nil {
		return nil, err
	}
	defer dk.Release()
	e := &Encrypter{ctx: ctx, w: w, frameSize: frameSize, nextSeq: 1}
	if s.signed() {
		e.signKey, e.sigHash = dk.signingKey, s.sigHash()
	}
	messageID := make([]byte, messageIDLenV2)
	if _, err := rand.Read(messageID); err != nil {
		return nil, fmt.Errorf("drawing a message id: %w", err)
	}
	contentKey, commitKey, err := s.deriveKeys(dk.key, messageID)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			clear(contentKey)
		}
	}()
	authData, err := marshalHeaderV2(suiteID, messageID, dk.contextSer, dk.edks, uint32(frameSize), commitKey)
	if err != nil {
		return nil, err
	}
	// One AES-GCM instance: the header tag, then the first frames.
	if e.fc, err = newFrameCipher(contentKey, messageID); err != nil {
		return nil, err
	}
	var zeroIV [ivLen]byte
	tag := e.fc.aead.Seal(nil, zeroIV[:], nil, headerAuthAAD(authData, dk.unstoredSer))
	e.header = &Header{Version: 2, Suite: suiteID, MessageID: messageID, Context: dk.stored, UnstoredContext: dk.unstored, EDKs: dk.edks,
		Framed: true, FrameLength: uint32(frameSize), CommitKey: commitKey, suite: s, ctxSer: dk.contextSer, authTag: tag, authData: authData}
	if err := e.emit(append(authData, tag...)); err != nil { // into the spare capacity
		return nil, err
	}

	// A message of one batch is sealed by Close in the caller's goroutine;
	// the worker pipeline starts only when a second batch comes.
	e.setBatch(batchBytes)
	e.workers = workers(opts.Concurrency)
	e.contentKey, keep = contentKey, true
	e.sizeHint = -1
	if opts.PlaintextSize > 0 {
		e.sizeHint = opts.PlaintextSize
	}
	return e, nil
}

// setBatch sizes the jobs: whole frames of about batch bytes.
func (e *Encrypter) setBatch(batch int) {
	frames := batchFrames(e.frameSize, batch)
	e.batch = frames * e.frameSize
	e.outCap = frames * (e.frameSize + finalOverhead)
}

// newJob returns a job to fill: the first one stands alone; asking for a
// second one starts the pipeline.
func (e *Encrypter) newJob() *sealJob {
	if e.p == nil && e.cur == nil {
		j := &sealJob{jobBuffers: jobBuffers{inCap: e.batch, outCap: e.outCap, done: make(chan struct{})}}
		if n := e.sizeHint; n >= 0 && n < int64(e.batch) {
			// A small message of known size: buffers of its size, not
			// pooled batch buffers (which cost a 512 KiB clear each).
			frames := int(n)/e.frameSize + 1
			j.in, j.out = make([]byte, 0, n), make([]byte, 0, int(n)+frames*finalOverhead)
			j.inCap, j.outCap = -1, -1
			return j
		}
		if e.mapped {
			j.inCap, j.out = 0, getBuf(e.outCap) // it reads a mapping
		} else {
			j.in, j.out = getBuf(e.batch), getBuf(e.outCap)
		}
		return j
	}
	e.start()
	return e.p.get(nil)
}

// start builds the workers' ciphers from the content key, zeroes it, and
// starts the pipeline and the writer; the current job joins the pipeline.
func (e *Encrypter) start() {
	if e.p != nil {
		return
	}
	var depth int
	e.workers, depth = pipelineShape(e.workers, e.batch+e.outCap, 2)
	if e.mapped {
		// Jobs hold no input buffer, but the pages each worker seals from
		// are resident while it does: at most mappedViewMemory of them.
		e.workers = min(e.workers, max(1, mappedViewMemory/e.batch))
	}
	ciphers := make(chan *frameCipher, e.workers)
	ciphers <- e.fc
	for i := 1; i < e.workers; i++ {
		fc, err := newFrameCipher(e.contentKey, e.header.MessageID)
		if err != nil {
			panic(err) // the key made e.fc already
		}
		ciphers <- fc
	}
	clear(e.contentKey)
	adopted := 0
	if e.cur != nil {
		adopted = 1
	}
	inCap := e.batch
	if e.mapped {
		inCap = 0 // the workers seal from the mapping; depth counts its pages
	}
	e.p = newPipeline(e.workers, depth, inCap, e.outCap, adopted, func() func(*sealJob) {
		fc := <-ciphers
		return func(j *sealJob) { e.seal(fc, j) }
	})
	e.drained = make(chan struct{})
	go e.drain()
}

// Header returns the header of the message being written.
func (e *Encrypter) Header() *Header { return e.header }

// emit writes b to the destination and feeds the signature hash.
func (e *Encrypter) emit(b []byte) error {
	if e.sigHash != nil {
		e.sigHash.Write(b)
	}
	n, err := e.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// seal encrypts the frames of one job.
func (e *Encrypter) seal(fc *frameCipher, j *sealJob) {
	if j.src == nil {
		e.sealFrames(fc, j, j.in)
		return
	}
	if v, ok := j.src.(viewer); ok {
		// A mapped file: seal straight from its pages. A view that cannot
		// be had is read by copy below, which says what is wrong.
		if b, release, err := v.View(j.srcOff, j.srcLen); err == nil {
			err = v.Guard(func() error { e.sealFrames(fc, j, b); return nil })
			release()
			if err != nil {
				j.err = fmt.Errorf("reading the input: %w", err)
			}
			return
		}
	}
	if cap(j.in) < j.srcLen {
		j.in = make([]byte, j.srcLen) // a mapped file's job, read by copy
	}
	j.in = j.in[:j.srcLen]
	if _, err := j.src.ReadAt(j.in, j.srcOff); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		j.err = fmt.Errorf("reading the input: %w", err)
		return
	}
	e.sealFrames(fc, j, j.in)
}

// sealFrames seals in, the plaintext of job j, into j.out.
func (e *Encrypter) sealFrames(fc *frameCipher, j *sealJob, in []byte) {
	seq := j.firstSeq
	for {
		n := min(len(in), e.frameSize)
		last := n == len(in)
		if last && !j.final {
			if n > 0 {
				j.out = fc.sealFrame(j.out, seq, false, in)
			}
			return
		}
		j.out = fc.sealFrame(j.out, seq, last && j.final, in[:n])
		if last {
			return
		}
		in, seq = in[n:], seq+1
	}
}

// drain writes finished jobs in order; after a write error it only recycles.
func (e *Encrypter) drain() {
	defer close(e.drained)
	for j := range e.p.order {
		<-j.done
		e.mu.Lock()
		failed := e.werr != nil
		e.mu.Unlock()
		if !failed && j.err != nil {
			e.mu.Lock()
			e.werr = j.err
			e.mu.Unlock()
		} else if !failed {
			if err := e.emit(j.out); err != nil {
				e.mu.Lock()
				e.werr = fmt.Errorf("writing the message: %w", err)
				e.mu.Unlock()
			}
		}
		e.p.put(j)
	}
}

// ctxErr is the error of a cancelled encryption, nil while ctx is live.
func (e *Encrypter) ctxErr() error {
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("encryption stopped: %w", err)
	}
	return nil
}

// writeErr returns the first error of the writing side, or the context's
// once it is done: the producing loops call it before each batch.
func (e *Encrypter) writeErr() error {
	if err := e.ctxErr(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.werr
}

// submit hands the current job to the workers.
func (e *Encrypter) submit(final bool) error {
	e.start() // adopts e.cur if the pipeline was not running yet
	j := e.cur
	e.cur = nil
	frames := uint64((j.size() + e.frameSize - 1) / e.frameSize)
	if frames == 0 {
		frames = 1
	}
	if e.nextSeq+frames-1 > maxFrames {
		e.putJob(j)
		return fmt.Errorf("message too large: more than %d frames of %d bytes", uint64(maxFrames), e.frameSize)
	}
	j.firstSeq, j.final = uint32(e.nextSeq), final
	e.nextSeq += frames
	e.p.submit(j)
	return nil
}

// count adds n plaintext bytes, failing (for good) past the declared size.
func (e *Encrypter) count(n int64) error {
	e.written += n
	if e.sizeHint > 0 && e.written > e.sizeHint {
		e.err = fmt.Errorf("%w: %d bytes so far, PlaintextSize said %d", ErrPlaintextSize, e.written, e.sizeHint)
		return e.err
	}
	return nil
}

// Write encrypts p. A full batch of frames is handed to the workers only once
// more plaintext follows it, since the last frame must be the final one.
func (e *Encrypter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.own(); err != nil {
		return 0, err
	}
	if err := e.writeErr(); err != nil {
		e.err = err
		return 0, err
	}
	if err := e.count(int64(len(p))); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if e.cur != nil && e.cur.size() == e.batch {
			if err := e.submit(false); err != nil {
				e.err = err
				return written, err
			}
		}
		if e.cur == nil {
			e.cur = e.newJob()
		}
		n := min(len(p), e.batch-len(e.cur.in))
		e.cur.in = append(e.cur.in, p[:n]...)
		p, written = p[n:], written+n
	}
	return written, nil
}

// ReadFrom encrypts everything r yields, reading straight into the frame
// buffers (one copy fewer than Write); io.Copy uses it.
func (e *Encrypter) ReadFrom(r io.Reader) (int64, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.own(); err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := e.writeErr(); err != nil {
			e.err = err
			return total, err
		}
		if e.cur == nil {
			e.cur = e.newJob()
		}
		full := e.cur.size() == e.batch
		into := e.cur
		if full {
			into = e.newJob()
		}
		limit := e.batch
		if c := cap(into.in); c < limit { // a job sized by the size hint
			if len(into.in) == c {
				growJob(into, e.batch, e.outCap) // the hint was short
			} else {
				limit = c
			}
		}
		n, err := io.ReadFull(r, into.in[len(into.in):limit])
		into.in = into.in[:len(into.in)+n]
		total += int64(n)
		if cerr := e.count(int64(n)); cerr != nil {
			return total, cerr
		}
		if full {
			if n > 0 {
				if serr := e.submit(false); serr != nil {
					e.putJob(into)
					e.err = serr
					return total, serr
				}
				e.cur = into
			} else {
				e.putJob(into)
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// ReadFromAt encrypts size bytes of ra starting at offset 0, the workers
// reading their own batches in parallel (for files, this spreads the copy
// out of the page cache over all cores). When ra is a memory-mapped file
// (the CLI maps regular files in bounded windows), the workers seal
// straight from the mapped pages, with no copy at all. The last batch is
// sealed by Close, so that it is the final frame; Write or ReadFrom may add
// plaintext after it. ra must hold at least size bytes: a read that fails
// (a shorter ra) is reported by a later call or by Close. Plaintext written
// before must fill whole batches, or ReadFromAt falls back to reading
// sequentially.
func (e *Encrypter) ReadFromAt(ra io.ReaderAt, size int64) (int64, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.cur != nil && e.cur.size() != e.batch || size < 0 {
		return e.ReadFrom(io.NewSectionReader(ra, 0, size))
	}
	if _, ok := ra.(viewer); ok && e.p == nil && e.cur == nil && size > int64(e.batch) {
		e.setBatch(mappedBatchBytes) // nothing is sized yet: larger jobs
		e.mapped = true
	}
	batch := int64(e.batch)
	for off := int64(0); off < size; off += batch {
		if err := e.writeErr(); err != nil {
			e.err = err
			return off, err
		}
		if e.cur != nil {
			if err := e.submit(false); err != nil {
				e.err = err
				return off, err
			}
		}
		n := min(batch, size-off)
		e.cur = e.newJob()
		e.cur.src, e.cur.srcOff, e.cur.srcLen = ra, off, int(n)
		if err := e.count(n); err != nil {
			return off, err
		}
	}
	return size, nil
}

// own reads the current job's input into its buffer when it is
// ReadFromAt's last, partial batch, so that more plaintext can follow it.
func (e *Encrypter) own() error {
	j := e.cur
	if j == nil || j.src == nil || j.srcLen == e.batch {
		return nil
	}
	if cap(j.in) < e.batch {
		j.in, j.inCap = getBuf(e.batch), e.batch
	}
	j.in = j.in[:j.srcLen]
	if _, err := j.src.ReadAt(j.in, j.srcOff); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		e.err = fmt.Errorf("reading the input: %w", err)
		return e.err
	}
	j.src = nil
	return nil
}

// Close encrypts what is left as the final frame, writes the footer of
// signed suites, and waits for every byte to reach the destination. It does
// not close the destination.
func (e *Encrypter) Close() error {
	if e.closed {
		return errEncrypterClosed
	}
	e.closed = true
	err := e.err
	if err == nil {
		err = e.ctxErr()
	}
	if e.p == nil {
		// At most one batch: seal it here, no goroutines.
		if e.cur == nil {
			e.cur = e.newJob()
		}
		if err == nil {
			e.cur.final = true
			e.cur.firstSeq = uint32(e.nextSeq)
			e.seal(e.fc, e.cur)
			if err = e.cur.err; err == nil {
				err = e.emit(e.cur.out)
			}
		}
		e.putJob(e.cur)
		e.cur = nil
		clear(e.contentKey)
	} else {
		if err == nil {
			if e.cur == nil {
				e.cur = e.newJob()
			}
			err = e.submit(true)
		} else if e.cur != nil {
			e.p.put(e.cur)
			e.cur = nil
		}
		e.p.closeInput()
		<-e.drained
		e.p.wait()
		if err == nil {
			err = e.writeErr()
		}
	}
	if err == nil && e.signKey != nil {
		sig, serr := ecdsa.SignASN1(rand.Reader, e.signKey, e.sigHash.Sum(nil))
		if serr != nil {
			err = fmt.Errorf("signing the message: %w", serr)
		} else {
			if werr := e.emit(appendFooter(nil, sig)); werr != nil {
				err = fmt.Errorf("writing the footer: %w", werr)
			}
		}
	}
	e.signKey = nil
	if err == nil {
		e.err = errEncrypterClosed
	} else {
		e.err = err
	}
	return err
}

// growJob moves a job sized for a small message into pooled batch buffers.
func growJob(j *sealJob, inCap, outCap int) {
	in := append(getBuf(inCap), j.in...)
	clear(j.in[:cap(j.in)])
	j.in, j.out, j.inCap, j.outCap = in, getBuf(outCap), inCap, outCap
}

// putJob gives back a job that was never submitted (or, without a
// pipeline, the one Close sealed).
func (e *Encrypter) putJob(j *sealJob) {
	switch {
	case e.p != nil:
		e.p.put(j)
	case j.borrowed: // the caller's plaintext
	case j.inCap < 0: // sized for a small message
		clear(j.in[:cap(j.in)])
	default:
		putBuf(j.in)
		putBuf(j.out)
	}
}

// compressPoint returns the SEC 1 compressed form of a public key.
func compressPoint(pub *ecdsa.PublicKey) []byte {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err) // a key this package generated is always valid
	}
	n := (len(raw) - 1) / 2
	out := make([]byte, 1+n)
	out[0] = 2 | raw[len(raw)-1]&1
	copy(out[1:], raw[1:1+n])
	return out
}
