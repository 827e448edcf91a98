package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

const (
	// maxResponse bounds a TPM response read from a socket (TPMs answer in
	// at most a few KiB).
	maxResponse = 64 << 10
	// headerLen is a TPM response header: tag u16, size u32, rc u32.
	headerLen = 10
	// commandTimeout bounds one command on a socket when the context has no
	// earlier deadline (RSA key generation on a slow TPM takes seconds).
	commandTimeout = 2 * time.Minute
)

// link is one connection to a TPM: a transport.TPM that tags connection
// failures as linkError, honours the context of the call in progress, and
// keeps the call's responses so that they are zeroed once it is done (go-tpm
// decrypts response parameters in place, so a data key's plaintext sits in
// those buffers).
type link struct {
	mu     sync.Mutex // guards ctx and rsps; calls are serialized by Device anyway
	ctx    context.Context
	rsps   [][]byte
	send   func(ctx context.Context, cmd []byte) ([]byte, error)
	close  func() error
	cancel func() // interrupts an I/O in progress (sockets only)
	stream bool   // a socket with no resource manager behind it
}

// Send implements transport.TPM.
func (l *link) Send(cmd []byte) ([]byte, error) {
	l.mu.Lock()
	ctx := l.ctx
	l.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, &linkError{err}
	}
	rsp, err := l.send(ctx, cmd)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			err = cerr
		}
		return nil, &linkError{err}
	}
	l.mu.Lock()
	l.rsps = append(l.rsps, rsp)
	l.mu.Unlock()
	return rsp, nil
}

// Close implements transport.TPMCloser.
func (l *link) Close() error { return l.close() }

// begin binds ctx to the commands that follow, until the returned function
// is called; that also zeroes every response received meanwhile.
func (l *link) begin(ctx context.Context) (end func()) {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
	stop := func() bool { return false }
	if l.cancel != nil {
		stop = context.AfterFunc(ctx, l.cancel)
	}
	return func() {
		stop()
		l.mu.Lock()
		for _, r := range l.rsps {
			clear(r)
		}
		l.rsps, l.ctx = l.rsps[:0], nil
		l.mu.Unlock()
	}
}

var _ transport.TPMCloser = (*link)(nil)

// ctxErr is ctx.Err(), or context.DeadlineExceeded once the deadline has
// passed even if ctx has not noticed yet (a socket deadline set from it can
// fire a moment before the context's own timer).
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// dial opens the TPM that dev, a canonical device string, names:
// "tcp://HOST:PORT", "unix:///PATH", "mssim:host=H,port=P" or a device file
// path.
func dial(ctx context.Context, dev string) (*link, error) {
	switch {
	case strings.HasPrefix(dev, "mssim:"):
		return dialMSSIM(ctx, dev)
	case strings.HasPrefix(dev, "tcp://"):
		return dialStream(ctx, "tcp", strings.TrimPrefix(dev, "tcp://"))
	case strings.HasPrefix(dev, "unix://"):
		return dialStream(ctx, "unix", strings.TrimPrefix(dev, "unix://"))
	}
	if st, err := os.Stat(dev); err == nil && st.Mode()&os.ModeSocket != 0 {
		return dialStream(ctx, "unix", dev) // a socket given as a path
	}
	t, err := linuxtpm.Open(dev)
	if err != nil {
		hint := ""
		switch {
		case errors.Is(err, os.ErrNotExist):
			hint = " (no TPM here? name another device: device=tcp://HOST:PORT or swtpm:host=H,port=P for swtpm, or unix:///PATH)"
		case errors.Is(err, os.ErrPermission):
			hint = " (add the user to the tss group, or run with access to the device)"
		}
		return nil, fmt.Errorf("%w %s: %v%s", ErrDevice, dev, err, hint)
	}
	return &link{
		send:  func(_ context.Context, cmd []byte) ([]byte, error) { return t.Send(cmd) },
		close: t.Close,
	}, nil
}

// dialStream connects to a TPM that speaks raw TPM 2.0 commands over a
// stream socket (swtpm's data port).
func dialStream(ctx context.Context, network, addr string) (*link, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w %s://%s: %v (is the TPM or swtpm running there?)", ErrDevice, network, addr, err)
	}
	s := &streamConn{conn: conn}
	return &link{
		send:   s.send,
		close:  conn.Close,
		cancel: func() { conn.SetDeadline(time.Unix(1, 0)) },
		stream: true,
	}, nil
}

// streamConn frames raw TPM commands on a stream: the command as it is, then
// a response read by its header's size field.
type streamConn struct {
	conn net.Conn
}

// setCommandDeadline bounds the next exchange on c by commandTimeout and
// ctx's deadline, whichever comes first.
func setCommandDeadline(ctx context.Context, c net.Conn) error {
	deadline := time.Now().Add(commandTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return c.SetDeadline(deadline)
}

func (s *streamConn) send(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := setCommandDeadline(ctx, s.conn); err != nil {
		return nil, err
	}
	// A cancellation between the AfterFunc and SetDeadline above would be
	// lost; look again now that the deadline is set.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("sending a command: %w", err)
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading a response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerLen || size > maxResponse {
		return nil, fmt.Errorf("response size %d out of range [%d, %d]: the peer does not speak raw TPM 2.0 commands (a Microsoft/IBM TPM simulator? use mssim:host=H,port=P)", size, headerLen, maxResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(s.conn, rsp[headerLen:]); err != nil {
		return nil, fmt.Errorf("reading a %d-byte response: %w", size, err)
	}
	return rsp, nil
}
