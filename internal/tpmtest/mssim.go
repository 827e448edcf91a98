package tpmtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The Microsoft TPM simulator protocol's codes (TpmTcpProtocol.h of the
// TCG reference implementation), as tpm2-tss's mssim TCTI sends them.
const (
	msSimSendCommand = 8
	msSimSessionEnd  = 20
)

// MSSIM serves the Microsoft TPM simulator protocol in front of this swtpm,
// which does not speak it (swtpm 0.7's control channel answers the
// simulator's platform signals with its own protocol): on a command port P
// it unwraps TPM_SEND_COMMAND frames to raw commands on swtpm's data
// channel and frames the responses back (u32 size, response, u32 0); on
// the platform port P+1 it acknowledges every signal (power on, NV on, ...)
// with 0, as a powered simulator does. Each client of the command port gets
// a connection of its own to swtpm, so, like swtpm, it serves one client at
// a time. It returns P; both listeners close when the test ends. tpm2-tools'
// own mssim TCTI (TPM2TOOLS_TCTI=mssim:host=127.0.0.1,port=P) works
// through it.
func (s *SWTPM) MSSIM(t testing.TB) int {
	t.Helper()
	var cmdL, platL net.Listener
	for try := 0; ; try++ {
		port, err := freePortPair()
		if err == nil {
			if cmdL, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				if platL, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1)); err == nil {
					break
				}
				cmdL.Close()
			}
		}
		if try == 10 {
			t.Fatalf("MSSIM: %v", err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			open[c] = true
		} else {
			delete(open, c)
		}
	}
	serve := func(l net.Listener, handle func(net.Conn)) {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer track(c, false)
				defer c.Close()
				handle(c)
			}()
		}
	}
	wg.Add(2)
	go serve(cmdL, s.mssimCommands)
	go serve(platL, mssimPlatform)
	t.Cleanup(func() {
		cmdL.Close()
		platL.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return cmdL.Addr().(*net.TCPAddr).Port
}

// mssimPlatform answers every platform signal with 0 until the client
// ends the session or leaves.
func mssimPlatform(c net.Conn) {
	var code [4]byte
	for {
		if _, err := io.ReadFull(c, code[:]); err != nil {
			return
		}
		if binary.BigEndian.Uint32(code[:]) == msSimSessionEnd {
			return
		}
		if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
			return
		}
	}
}

// mssimCommands relays the TPM commands of one command-port client to
// swtpm.
func (s *SWTPM) mssimCommands(c net.Conn) {
	tp, err := s.Open()
	if err != nil {
		return
	}
	defer tp.Close()
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		if binary.BigEndian.Uint32(hdr[:]) != msSimSendCommand {
			return // TPM_SESSION_END, or something this relay does not do
		}
		cmd, err := readMSSIMCommand(c)
		if err != nil {
			return
		}
		rsp, err := tp.Send(cmd)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint32(nil, uint32(len(rsp)))
		out = append(out, rsp...)
		out = append(out, 0, 0, 0, 0)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// readMSSIMCommand reads what follows TPM_SEND_COMMAND: locality u8, size
// u32, the command.
func readMSSIMCommand(c net.Conn) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 10 || n > 1<<16 {
		return nil, errors.New("bad command size " + fmt.Sprint(n))
	}
	cmd := make([]byte, n)
	_, err := io.ReadFull(c, cmd)
	return cmd, err
}
