package envelope

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"
)

// Encrypt returns plaintext encrypted as one message.
func Encrypt(ctx context.Context, plaintext []byte, kr *Keyring, opts EncryptOptions) ([]byte, error) {
	if opts.PlaintextSize <= 0 {
		opts.PlaintextSize = int64(len(plaintext))
	}
	var out bytes.Buffer
	out.Grow(len(plaintext) + len(plaintext)/128 + 1024)
	e, err := NewEncrypter(ctx, &out, kr, opts)
	if err != nil {
		return nil, err
	}
	if len(plaintext) <= e.batch {
		// One batch: seal straight from the caller's slice.
		e.cur = &sealJob{jobBuffers: jobBuffers{in: plaintext[:len(plaintext):len(plaintext)], out: make([]byte, 0, len(plaintext)+(len(plaintext)/e.frameSize+1)*finalOverhead)}, borrowed: true}
		if err := e.count(int64(len(plaintext))); err != nil {
			e.Close()
			return nil, err
		}
	} else if _, err := e.Write(plaintext); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// smallMessage is the size up to which Decrypt works in the caller's
// goroutine: starting workers costs more than they save.
const smallMessage = 1 << 20

// Decrypt returns the plaintext of message and its authenticated header. On
// any error it returns no plaintext at all.
func Decrypt(ctx context.Context, message []byte, kr *Keyring, opts DecryptOptions) ([]byte, *Header, error) {
	if len(message) <= smallMessage {
		return decryptSmall(ctx, message, kr, opts)
	}
	d, err := NewDecrypter(ctx, bytes.NewReader(message), kr, opts)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	plaintext, err := io.ReadAll(d)
	if err != nil {
		clear(plaintext)
		return nil, nil, err
	}
	return plaintext, d.Header(), nil
}

// decryptSmall is Decrypt without goroutines: the same header, structure,
// signature and trailing-byte checks as the stream (the same producer code),
// then every frame opened in turn.
func decryptSmall(ctx context.Context, message []byte, kr *Keyring, opts DecryptOptions) ([]byte, *Header, error) {
	r := bytes.NewReader(message)
	o, err := openHeader(ctx, r, kr, opts)
	if err != nil {
		return nil, nil, err
	}
	h, fc := o.header, o.fc
	clear(o.contentKey)
	var sig hash.Hash
	if h.suite.signed() {
		sig = h.suite.sigHash()
		sig.Write(message[:h.Size()])
	}
	body := r.Len()
	j := &openJob{jobBuffers: jobBuffers{in: make([]byte, 0, body)}}
	pr := &producer{ctx: ctx, r: r, h: h, sig: sig, verifyKey: o.verifyKey, frames: body/regularOverhead + 2, maxBody: maxFrameSize(opts)}
	if h.Framed {
		_, err = pr.readFrames(j, 1)
		if err == nil && !j.final {
			err = fmt.Errorf("%w: the body ends before its final frame", ErrTruncated)
		}
	} else {
		err = pr.readSingle(j)
	}
	if err == nil && sig != nil {
		sig.Write(j.in)
	}
	if err == nil {
		err = pr.finish()
	}
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, 0, body)
	if j.single {
		out, err = fc.openSingle(out, j.in)
	} else {
		out, err = fc.openFrames(out, j.in, 1, int(h.FrameLength))
	}
	if err != nil {
		clear(out)
		return nil, nil, err
	}
	return out, h, nil
}
