// Package tpmtest runs throw-away software TPMs (swtpm) for tests: each
// Start gets its own swtpm process on a free loopback port pair with a fresh
// state directory under t.TempDir(), stopped when the test ends. Nothing
// assumes a TPM on the host.
//
// swtpm's data port speaks raw TPM 2.0 commands, so hsmenv reaches it with
// device=tcp://127.0.0.1:PORT. It has no resource manager and serves one
// connection at a time.
//
// When swtpm is missing the test fails if $CI is set, and is skipped with
// the reason otherwise.
package tpmtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SWTPM is one swtpm process and its state directory.
type SWTPM struct {
	// StateDir holds the TPM's persistent state (NVChip); Restart keeps it.
	StateDir string
	// Port is the data port; Port+1 is the control port (TCP only).
	Port int
	// Socket is the data socket's path (unix sockets only; the control
	// socket is Socket+".ctrl").
	Socket string

	t   testing.TB
	bin string
	log string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Require fails (under CI) or skips the test when swtpm is not installed,
// and returns its path.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		msg := fmt.Sprintf("swtpm is not installed (%v); install swtpm (Debian: apt-get install swtpm swtpm-tools) or run scripts/deps.sh", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts a fresh swtpm (a new, manufactured TPM) listening on TCP
// and waits until it answers a command. It is stopped in t.Cleanup.
func Start(t testing.TB) *SWTPM {
	t.Helper()
	s := newSWTPM(t)
	var lastErr error
	for try := 0; try < 10; try++ {
		port, err := freePortPair()
		if err != nil {
			lastErr = err
			continue
		}
		s.Port = port
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting swtpm: %v", lastErr)
	return nil
}

// StartUnix is Start with the data and control channels on unix sockets
// in the test's temporary directory.
func StartUnix(t testing.TB) *SWTPM {
	t.Helper()
	s := newSWTPM(t)
	s.Socket = filepath.Join(filepath.Dir(s.StateDir), "swtpm.sock")
	if err := s.start(); err != nil {
		t.Fatalf("starting swtpm: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func newSWTPM(t testing.TB) *SWTPM {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	s := &SWTPM{StateDir: filepath.Join(dir, "state"), t: t, bin: bin, log: filepath.Join(dir, "swtpm.log")}
	if err := os.Mkdir(s.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return s
}

// Device returns the hsmenv device string of the data channel:
// "tcp://127.0.0.1:PORT", or "unix:///PATH" for StartUnix.
func (s *SWTPM) Device() string {
	if s.Socket != "" {
		return "unix://" + s.Socket
	}
	return "tcp://127.0.0.1:" + strconv.Itoa(s.Port)
}

// Running reports whether the process is alive.
func (s *SWTPM) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Stop ends swtpm with SIGTERM (SIGKILL after 5 s) and waits for it. The
// state directory stays. Stop is idempotent.
func (s *SWTPM) Stop() { s.halt(syscall.SIGTERM) }

// Kill ends swtpm with SIGKILL, as a crash would, and waits for it.
func (s *SWTPM) Kill() { s.halt(syscall.SIGKILL) }

// Restart stops swtpm if it runs and starts it again on the same state
// directory and ports (or socket): the same TPM after a power cycle (transient objects
// and sessions are gone, PCRs reset).
func (s *SWTPM) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for try := 0; try < 50; try++ { // the old port may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restarting swtpm: %v", err)
}

func (s *SWTPM) halt(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (s *SWTPM) start() error {
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	server := fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.Port)
	ctrl := fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.Port+1)
	if s.Socket != "" {
		os.Remove(s.Socket)
		server, ctrl = "type=unixio,path="+s.Socket, "type=unixio,path="+s.Socket+".ctrl"
	}
	cmd := exec.Command(s.bin, "socket", "--tpm2",
		"--tpmstate", "dir="+s.StateDir,
		"--server", server,
		"--ctrl", ctrl,
		"--flags", "not-need-init,startup-clear")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	if err := waitReady(s.network(), s.address(), done); err != nil {
		cmd.Process.Kill()
		<-done
		out, _ := os.ReadFile(s.log)
		return fmt.Errorf("%v; swtpm log:\n%s", err, out)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

func (s *SWTPM) network() string {
	if s.Socket != "" {
		return "unix"
	}
	return "tcp"
}

func (s *SWTPM) address() string {
	if s.Socket != "" {
		return s.Socket
	}
	return "127.0.0.1:" + strconv.Itoa(s.Port)
}

// waitReady connects to the data channel until swtpm answers
// TPM2_GetRandom.
func waitReady(network, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("swtpm exited at start")
		default:
		}
		if err = ping(network, addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("swtpm on %s did not answer: %v", addr, err)
}

// ping sends a raw TPM2_GetRandom(8) and reads the response.
func ping(network, addr string) error {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8} // TPM_ST_NO_SESSIONS, size 12, TPM_CC_GetRandom, 8 bytes
	if _, err := conn.Write(cmd); err != nil {
		return err
	}
	var hdr [10]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	if rc := binary.BigEndian.Uint32(hdr[6:]); rc != 0 {
		return fmt.Errorf("TPM2_GetRandom: rc %#x", rc)
	}
	rest := make([]byte, binary.BigEndian.Uint32(hdr[2:6])-10)
	_, err = io.ReadFull(conn, rest)
	return err
}

// freePortPair finds P such that P and P+1 are free on 127.0.0.1.
func freePortPair() (int, error) {
	for try := 0; try < 20; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port pair")
}
