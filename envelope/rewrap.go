package envelope

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// Rewrap rotates the KEKs of a message without changing its body: it opens
// the data key with from, wraps that same key under every KEK of to (a
// cache of to is not used), writes a header with the new EDKs (same suite,
// message id, context, frame length and key commitment, a new header
// authentication tag), and copies the body bytes unchanged, streaming,
// while it authenticates every frame on all cores: a body that was altered
// or cut short is reported (as NewDecrypter would), so a rotation never
// vouches for a damaged message. The old EDKs are dropped: a KEK not in to
// no longer opens the result.
//
// Signed messages are refused (ErrUnsupported): their footer signature
// covers the header, and the signing key was discarded when the message was
// made, so no header can be changed. Legacy (v1) and non-framed messages
// are refused too: decrypt and re-encrypt them.
//
// On an error, w has received part of the message, which must be
// discarded. ctx bounds the KEK calls and the body, which stops within one
// batch of frames once ctx is done.
func Rewrap(ctx context.Context, r io.Reader, w io.Writer, from, to *Keyring, opts DecryptOptions) (*Header, error) {
	if err := checkRewrapKeyrings(from, to, opts); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readHeader(br, maxEDKs(opts.MaxEncryptedDataKeys))
	if err != nil {
		return nil, err
	}
	o, out, err := rewrapHeader(ctx, h, from, to, opts)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append(out.authData, out.authTag...)); err != nil {
		clear(o.contentKey)
		return nil, fmt.Errorf("rewrap: writing the header: %w", err)
	}
	// The body goes to w as the decrypter reads it; the plaintext is
	// authenticated and dropped.
	d, err := newDecrypter(ctx, o, &teeReader{r: br, w: w}, opts)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if _, err := d.WriteTo(io.Discard); err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	return out, nil
}

// RewrapAt is Rewrap for a message held in ra (size bytes), as in a file:
// it authenticates the whole body first, on all cores (straight from the
// mapped pages when ra is a memory-mapped file), and only then writes the
// new header and the body. So on an error nothing has reached w.
func RewrapAt(ctx context.Context, ra io.ReaderAt, size int64, w io.Writer, from, to *Keyring, opts DecryptOptions) (*Header, error) {
	if err := checkRewrapKeyrings(from, to, opts); err != nil {
		return nil, err
	}
	h, err := readAtHeader(ra, size, opts)
	if err != nil {
		return nil, err
	}
	o, out, err := rewrapHeader(ctx, h, from, to, opts)
	if err != nil {
		return nil, err
	}
	r, err := newRangeReader(ra, size, o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.writeRange(ctx, io.Discard, 0, r.size, opts.Concurrency); err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	if _, err := w.Write(append(out.authData, out.authTag...)); err != nil {
		return nil, fmt.Errorf("rewrap: writing the header: %w", err)
	}
	if err := copyAt(ctx, w, ra, int64(h.Size()), size-int64(h.Size())); err != nil {
		return nil, fmt.Errorf("rewrap: copying the body: %w", err)
	}
	return out, nil
}

// checkRewrapKeyrings checks the keyrings of a rewrap.
func checkRewrapKeyrings(from, to *Keyring, opts DecryptOptions) error {
	if err := from.check(); err != nil {
		return fmt.Errorf("rewrap: opening the message: %w", err)
	}
	if err := to.check(); err != nil {
		return fmt.Errorf("rewrap: wrapping the data key: %w", err)
	}
	if max := maxEDKs(opts.MaxEncryptedDataKeys); max > 0 && len(to.keks) > max {
		return fmt.Errorf("%w: %d new KEKs, at most %d allowed", ErrTooManyEDKs, len(to.keks), max)
	}
	return nil
}

// rewrapHeader refuses what cannot be rewrapped, opens the data key of h
// with from and returns the opened message (its content key is the
// caller's to zero) and the new header, its EDKs made by to.
func rewrapHeader(ctx context.Context, h *Header, from, to *Keyring, opts DecryptOptions) (*opened, *Header, error) {
	switch {
	case h.suite.signed():
		return nil, nil, fmt.Errorf("%w: rewrap of a signed message (suite %s): its signature covers the header and its signing key no longer exists; decrypt and re-encrypt it instead", ErrUnsupported, h.Suite)
	case h.Version != 2:
		return nil, nil, fmt.Errorf("%w: rewrap of a legacy v%d message: decrypt and re-encrypt it instead", ErrUnsupported, h.Version)
	case !h.Framed:
		return nil, nil, fmt.Errorf("%w: rewrap of a non-framed message: decrypt and re-encrypt it instead", ErrUnsupported)
	}
	o, dk, err := openParsed(ctx, h, from, opts)
	if err != nil {
		return nil, nil, err
	}
	defer dk.Release()
	fail := func(err error) (*opened, *Header, error) {
		clear(o.contentKey)
		return nil, nil, err
	}
	edks, err := to.wrapAll(ctx, dk.key, o.context)
	if err != nil {
		return fail(fmt.Errorf("rewrap: %w", err))
	}
	authData, err := marshalHeaderV2(h.Suite, h.MessageID, h.ctxSer, edks, h.FrameLength, h.CommitKey)
	if err != nil {
		return fail(err)
	}
	var zeroIV [ivLen]byte
	tag := o.fc.aead.Seal(nil, zeroIV[:], nil, headerAuthAAD(authData, o.unstoredSer))
	return o, &Header{Version: 2, Suite: h.Suite, MessageID: h.MessageID, Context: h.Context, UnstoredContext: h.UnstoredContext, EDKs: edks,
		Framed: true, FrameLength: h.FrameLength, CommitKey: h.CommitKey, suite: h.suite, ctxSer: h.ctxSer, authTag: tag, authData: authData}, nil
}

// copyAt copies n bytes of ra at off to w, in steps of at most 1 MiB (from
// the mapped pages when ra is a memory-mapped file), stopping with an
// error wrapping ctx.Err() once ctx is done.
func copyAt(ctx context.Context, w io.Writer, ra io.ReaderAt, off, n int64) error {
	const step = 1 << 20
	v, mapped := ra.(viewer)
	var buf []byte
	for end := off + n; off < end; off += step {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopped: %w", err)
		}
		m := int(min(step, end-off))
		if mapped {
			if b, release, err := v.View(off, m); err == nil {
				err = v.Guard(func() error { _, err := w.Write(b); return err })
				release()
				if err != nil {
					return err
				}
				continue
			}
		}
		if buf == nil {
			buf = make([]byte, step)
		}
		if _, err := ra.ReadAt(buf[:m], off); err != nil {
			return err
		}
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
	}
	return nil
}

// teeReader writes to w every byte read from r.
type teeReader struct {
	r byteReader
	w io.Writer
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			return n, fmt.Errorf("writing the rewrapped message: %w", werr)
		}
	}
	return n, err
}

func (t *teeReader) ReadByte() (byte, error) {
	b, err := t.r.ReadByte()
	if err == nil {
		if _, werr := t.w.Write([]byte{b}); werr != nil {
			return b, fmt.Errorf("writing the rewrapped message: %w", werr)
		}
	}
	return b, err
}
