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
	if err := from.check(); err != nil {
		return nil, fmt.Errorf("envelope: rewrap: opening the message: %w", err)
	}
	if err := to.check(); err != nil {
		return nil, fmt.Errorf("envelope: rewrap: wrapping the data key: %w", err)
	}
	if max := maxEDKs(opts.MaxEncryptedDataKeys); max > 0 && len(to.keks) > max {
		return nil, fmt.Errorf("%w: %d new KEKs, at most %d allowed", ErrTooManyEDKs, len(to.keks), max)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readHeader(br, maxEDKs(opts.MaxEncryptedDataKeys))
	if err != nil {
		return nil, err
	}
	switch {
	case h.suite.signed():
		return nil, fmt.Errorf("%w: rewrap of a signed message (suite %s): its signature covers the header and its signing key no longer exists; decrypt and re-encrypt it instead", ErrUnsupported, h.Suite)
	case h.Version != 2:
		return nil, fmt.Errorf("%w: rewrap of a legacy v%d message: decrypt and re-encrypt it instead", ErrUnsupported, h.Version)
	case !h.Framed:
		return nil, fmt.Errorf("%w: rewrap of a non-framed message: decrypt and re-encrypt it instead", ErrUnsupported)
	}
	o, dk, err := openParsed(ctx, h, from, opts)
	if err != nil {
		return nil, err
	}
	defer dk.Release()
	edks, err := to.wrapAll(ctx, dk.key, h.Context)
	if err != nil {
		clear(o.contentKey)
		return nil, fmt.Errorf("envelope: rewrap: %w", err)
	}
	authData, err := marshalHeaderV2(h.Suite, h.MessageID, h.ctxSer, edks, h.FrameLength, h.CommitKey)
	if err != nil {
		clear(o.contentKey)
		return nil, err
	}
	var zeroIV [ivLen]byte
	tag := o.fc.aead.Seal(nil, zeroIV[:], nil, authData)
	out := &Header{Version: 2, Suite: h.Suite, MessageID: h.MessageID, Context: h.Context, EDKs: edks,
		Framed: true, FrameLength: h.FrameLength, CommitKey: h.CommitKey, suite: h.suite, ctxSer: h.ctxSer, authTag: tag, authData: authData}
	if _, err := w.Write(append(authData, tag...)); err != nil {
		clear(o.contentKey)
		return nil, fmt.Errorf("envelope: rewrap: writing the header: %w", err)
	}
	// The body goes to w as the decrypter reads it; the plaintext is
	// authenticated and dropped.
	d, err := newDecrypter(ctx, o, &teeReader{r: br, w: w}, opts)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if _, err := d.WriteTo(io.Discard); err != nil {
		return nil, fmt.Errorf("envelope: rewrap: %w", err)
	}
	return out, nil
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
