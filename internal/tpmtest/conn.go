package tpmtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Open connects to the swtpm's data channel on a connection of its own and
// returns it as a go-tpm transport, for tests that talk to the TPM apart
// from hsmenv (reading its lockout counter after the CLI ran, for
// instance). swtpm serves one connection at a time: close it before
// anything else connects, and open it only while no other connection is
// open (a tpm.Device in this process keeps its own open until Close).
// Each command must be answered within 30 s.
func (s *SWTPM) Open() (transport.TPMCloser, error) {
	c, err := net.DialTimeout(s.network(), s.address(), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to swtpm: %w", err)
	}
	return &stream{c}, nil
}

// stream sends raw TPM 2.0 commands over a stream socket and reads each
// response whole (its header says how long it is).
type stream struct{ c net.Conn }

func (s *stream) Send(cmd []byte) ([]byte, error) {
	if err := s.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := s.c.Write(cmd); err != nil {
		return nil, fmt.Errorf("sending to swtpm: %w", err)
	}
	rsp := make([]byte, 10)
	if _, err := io.ReadFull(s.c, rsp); err != nil {
		return nil, fmt.Errorf("reading from swtpm: %w", err)
	}
	n := binary.BigEndian.Uint32(rsp[2:6])
	if n < 10 || n > 1<<16 {
		return nil, fmt.Errorf("swtpm answered a response of %d bytes", n)
	}
	rsp = append(rsp, make([]byte, n-10)...)
	if _, err := io.ReadFull(s.c, rsp[10:]); err != nil {
		return nil, fmt.Errorf("reading from swtpm: %w", err)
	}
	return rsp, nil
}

func (s *stream) Close() error { return s.c.Close() }
