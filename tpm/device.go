package tpm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultDevice is the kernel's resource-managed TPM device, used when
// neither the URI (device=) nor WithDevice names one.
const DefaultDevice = "/dev/tpmrm0"

// Device is one TPM, reached through one connection per process. Calls are
// serialized by a mutex, so a Device is safe for concurrent use. The
// connection, and with it the SRK, is opened on first use and again after it
// broke (a swtpm restarted on the same state works again with the next call).
type Device struct {
	path string

	mu   sync.Mutex
	conn *conn // nil until connected, and after the connection broke
}

// conn is the state of one connection: what dies with it.
type conn struct {
	l   *link
	srk *srk // the SRK new objects go under
	// tmpl is the SRK made from the template when srk is the persistent
	// one and an object names the template's SRK; tmplTried says it was
	// made (tmpl nil: it did not match and was flushed).
	tmpl      *srk
	tmplTried bool
	tmplName  []byte
}

var devices = struct {
	sync.Mutex
	m map[string]*Device
}{m: map[string]*Device{}}

// normalizeDevice returns the canonical form of a device string:
// DefaultDevice if empty, "tcp://HOST:PORT", "unix:///ABS",
// "mssim:host=H,port=P" or a cleaned path. TCTI strings (swtpm:...,
// device:...) become the first or last form (see tcti.go).
func normalizeDevice(dev string) (string, error) {
	if dev == "" {
		dev = DefaultDevice
	}
	if c, ok, err := parseTCTI(dev); ok {
		if err != nil || strings.HasPrefix(c, "mssim:") {
			return c, err
		}
		dev = c
	}
	lower := strings.ToLower(dev)
	switch {
	case strings.HasPrefix(lower, "tcp://"):
		addr := dev[len("tcp://"):]
		if i := strings.LastIndexByte(addr, ':'); i <= 0 || i == len(addr)-1 {
			return "", fmt.Errorf("%w: device %q: want tcp://HOST:PORT", ErrDevice, dev)
		}
		return "tcp://" + addr, nil
	case strings.HasPrefix(lower, "unix://"):
		p := dev[len("unix://"):]
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("%w: device %q: want unix:///ABSOLUTE/PATH", ErrDevice, dev)
		}
		return "unix://" + filepath.Clean(p), nil
	case strings.Contains(dev, "://"):
		return "", fmt.Errorf("%w: device %q: want a device path, tcp://HOST:PORT, unix:///PATH or a TCTI string (%s)", ErrDevice, dev, tctiSupported)
	}
	abs, err := filepath.Abs(dev)
	if err != nil {
		return "", fmt.Errorf("%w: device %q: %v", ErrDevice, dev, err)
	}
	return abs, nil
}

// OpenDevice returns the process-wide Device for dev: a device path,
// tcp://HOST:PORT, unix:///PATH or a TCTI string as tpm2-tools writes it
// (swtpm:host=H,port=P, swtpm:path=SOCKET, mssim:host=H,port=P,
// device:PATH; other TCTI names are ErrDevice, listing these); "" means
// the WithDevice option, else DefaultDevice. Other options are ignored. It
// does not connect: the first call that needs the TPM does, so a key
// file's public half is usable without it. An unusable device string is
// ErrDevice.
func OpenDevice(dev string, opts ...Option) (*Device, error) {
	path, err := normalizeDevice(collect(opts).deviceFor(dev))
	if err != nil {
		return nil, err
	}
	devices.Lock()
	defer devices.Unlock()
	if d, ok := devices.m[path]; ok {
		return d, nil
	}
	d := &Device{path: path}
	devices.m[path] = d
	return d, nil
}

// Path returns the device's canonical name, e.g. "tcp://127.0.0.1:2321".
func (d *Device) Path() string { return d.path }

// String names the device in errors.
func (d *Device) String() string { return d.path }

// Close drops the connection, flushing the SRK this process created. The
// Device stays the process's one Device for its path: the next call on it,
// from any KEK, connects again. Tools and tests call Close to hand a TPM
// without resource manager (swtpm serves one connection at a time) to
// another program, or to start from a fresh connection.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropLocked(true)
}

// dropLocked closes the connection; with flush it first flushes the SRKs
// this process created (a socket TPM keeps them otherwise).
func (d *Device) dropLocked(flush bool) error {
	c := d.conn
	if c == nil {
		return nil
	}
	d.conn = nil
	if flush {
		for _, s := range []*srk{c.srk, c.tmpl} {
			if s != nil && !s.persistent {
				flushHandle(c.l, s.handle)
			}
		}
	}
	return c.l.Close()
}

// run calls op with a live connection, under the device mutex. A broken
// connection is dropped; if it was opened by an earlier call (stale, e.g.
// swtpm restarted since) op runs once more on a new one. TPM warnings that
// ask for a retry are retried a few times.
func (d *Device) run(ctx context.Context, op func(c *conn) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	retries := 0
	var lost error // the connection failure that led to a reconnect
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		fresh := false
		if d.conn == nil {
			c, err := d.connect(ctx)
			if err != nil {
				if cerr := ctxErr(ctx); cerr != nil {
					return cerr
				}
				if lost != nil {
					return fmt.Errorf("%w (after the connection was lost: %v)", err, lost)
				}
				return err
			}
			d.conn, fresh = c, true
		}
		end := d.conn.l.begin(ctx)
		err := op(d.conn)
		end()
		switch {
		case err == nil:
			return nil
		case isLink(err):
			d.dropLocked(false)
			if cerr := ctxErr(ctx); cerr != nil {
				return cerr
			}
			if !fresh && attempt == 0 {
				lost = err
				continue
			}
			return fmt.Errorf("%w %s: connection lost: %v", ErrDevice, d.path, err)
		case isRetry(err) && retries < 5:
			retries++
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(retries) * 20 * time.Millisecond):
			}
			continue
		case isRetry(err):
			return fmt.Errorf("%w %s: the TPM still asks to retry after %d tries: %v", ErrDevice, d.path, retries+1, err)
		}
		return err
	}
}

// connect opens the transport, starts a TPM that needs it, flushes what
// crashed processes left on a TPM without resource manager, and loads the
// SRK.
func (d *Device) connect(ctx context.Context) (*conn, error) {
	l, err := dial(ctx, d.path)
	if err != nil {
		return nil, err
	}
	end := l.begin(ctx)
	defer end()
	fail := func(what string, err error) (*conn, error) {
		l.Close()
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
		if errors.Is(err, ErrDevice) || errors.Is(err, ErrLockout) || errors.Is(err, ErrTampered) {
			return nil, fmt.Errorf("%s %s: %w", what, d.path, err)
		}
		return nil, fmt.Errorf("%w %s: %s: %v", ErrDevice, d.path, what, err)
	}
	if l.stream {
		if _, err := (tpm2.Startup{StartupType: tpm2.TPMSUClear}).Execute(l); err != nil && !isRC(err, tpm2.TPMRCInitialize) {
			if isLink(err) && strings.HasPrefix(d.path, "tcp://") {
				return fail("TPM2_Startup (the peer hung up at the first command: a Microsoft/IBM TPM simulator? it takes mssim:host=H,port=P)", err)
			}
			return fail("TPM2_Startup", err)
		}
		if err := sweep(l); err != nil {
			return fail("flushing leftover handles", err)
		}
	}
	s, err := loadSRK(l)
	if err != nil {
		return fail("loading the storage root key", err)
	}
	return &conn{l: l, srk: s}, nil
}

// sweep flushes every transient object and session on a TPM without a
// resource manager: the leftovers of processes that died mid-call. Such a
// TPM (swtpm) must not be shared by two live processes.
func sweep(t transport.TPM) error {
	for _, first := range []tpm2.TPMHandle{0x80000000, 0x02000000, 0x03000000} {
		hs, err := listHandles(t, first)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err != nil && !isRC(err, tpm2.TPMRCHandle, tpm2.TPMRCValue) {
				return fmt.Errorf("flushing handle %#x: %w", uint32(h), err)
			}
		}
	}
	return nil
}

// listHandles returns the handles of the type of first (0x80: transient
// objects, 0x02: loaded sessions, 0x03: saved sessions).
func listHandles(t transport.TPM, first tpm2.TPMHandle) ([]tpm2.TPMHandle, error) {
	var out []tpm2.TPMHandle
	next := uint32(first)
	for {
		rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: next, PropertyCount: 64}).Execute(t)
		if err != nil {
			return nil, fmt.Errorf("listing handles from %#x: %w", uint32(first), err)
		}
		hl, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return nil, err
		}
		for _, h := range hl.Handle {
			typ := uint32(h) >> 24
			// Sessions share one index space; loaded policy sessions
			// are listed with their own type (0x03) among loaded ones.
			if typ != uint32(first)>>24 && (first == 0x80000000 || (typ != 0x02 && typ != 0x03)) {
				return out, nil
			}
			out = append(out, h)
			next = uint32(first)&0xFF000000 | (uint32(h)&0x00FFFFFF + 1)
		}
		if !rsp.MoreData || len(hl.Handle) == 0 {
			return out, nil
		}
	}
}

// flushHandle flushes h, ignoring errors (best effort on cleanup paths).
func flushHandle(t transport.TPM, h tpm2.TPMHandle) {
	(tpm2.FlushContext{FlushHandle: h}).Execute(t)
}

// flushSessions flushes the sessions a failed command left open (a
// just-in-time session whose start or policy failed keeps its handle).
func flushSessions(t transport.TPM, ss ...tpm2.Session) {
	for _, s := range ss {
		if s != nil && s.Handle() != tpm2.TPMRHNull {
			flushHandle(t, s.Handle())
		}
	}
}

// SRKName returns the name of the SRK new objects go under (the persistent
// one at 0x81000001 if it fits the ECC P-256 SRK template, else one made
// from the template), as stored in EDKs and key files and as srk= pins it.
// The name is verified: the SRK public key that sessions are salted to
// hashes to it (ErrTampered otherwise, when connecting). That it belongs to
// this TPM is trusted on first use; see docs/tpm.md. ctx bounds connecting
// (the SRK is loaded once per connection).
func (d *Device) SRKName(ctx context.Context) ([]byte, error) {
	var name []byte
	err := d.run(ctx, func(c *conn) error {
		name = append([]byte(nil), c.srk.name.Buffer...)
		return nil
	})
	return name, err
}
