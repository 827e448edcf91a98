package envelope

import (
	"bufio"
	"context"
	"fmt"
	"io"
)

// Rewrap rotates the KEKs of a message without touching its body: it opens
// the data key with from, wraps that same key under every KEK of to (a
// cache of to is not used), writes
// a header with the new EDKs (same suite, message id, context, frame length
// and key commitment, a new header authentication tag), and copies the body
// bytes unchanged, streaming. The old EDKs are dropped: a KEK not in to no
// longer opens the result.
//
// Signed messages are refused (ErrUnsupported): their footer signature
// covers the header, and the signing key was discarded when the message was
// made, so no header can be changed. Legacy (v1) messages are refused too:
// decrypt and re-encrypt them.
//
// ctx bounds the keyring and KEK calls and the body copy, which stops
// within 256 KiB once ctx is done (the output is then incomplete).
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
	defer clear(o.contentKey)
	edks, err := to.wrapAll(ctx, dk.key, h.Context)
	if err != nil {
		return nil, fmt.Errorf("envelope: rewrap: %w", err)
	}
	authData, err := marshalHeaderV2(h.Suite, h.MessageID, h.ctxSer, edks, h.FrameLength, h.CommitKey)
	if err != nil {
		return nil, err
	}
	tag := o.fc.aead.Seal(nil, make([]byte, ivLen), nil, authData)
	out := &Header{Version: 2, Suite: h.Suite, MessageID: h.MessageID, Context: h.Context, EDKs: edks,
		Framed: true, FrameLength: h.FrameLength, CommitKey: h.CommitKey, suite: h.suite, ctxSer: h.ctxSer, authTag: tag, authData: authData}
	if _, err := w.Write(append(authData, tag...)); err != nil {
		return nil, fmt.Errorf("envelope: rewrap: writing the header: %w", err)
	}
	if _, err := copyContext(ctx, w, br); err != nil {
		return nil, fmt.Errorf("envelope: rewrap: copying the body: %w", err)
	}
	return out, nil
}

// copyContext is io.Copy in steps of at most 256 KiB that stops, with an
// error wrapping ctx.Err(), once ctx is done.
func copyContext(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("stopped: %w", err)
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			wm, werr := w.Write(buf[:m])
			n += int64(wm)
			if werr != nil {
				return n, werr
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, rerr
		}
	}
}
