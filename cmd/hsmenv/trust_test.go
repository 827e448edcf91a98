//go:build linux

package main_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/ostest"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// cleanEnv is the test process's environment without any PIN or default
// key, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HSMENV_PKCS11_PIN", "HSMENV_TPM_PIN", "HSMENV_KEY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// A FIFO or a symbolic link planted at -o does not receive the plaintext;
// --force, /dev/null and - are written as asked.
func TestPlantedOutput(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	pt := []byte("the plaintext nobody else may read")
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, pt, nil, "encrypt", "--key", key, "-o", enc, "-"))

	fifo := filepath.Join(dir, "planted.fifo")
	r := ostest.FIFO(t, fifo)
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "-o", fifo, enc), "FIFO")
	if got := ostest.Received(t, r); len(got) != 0 {
		t.Fatalf("the planted FIFO received %q", got)
	}
	// A link to another user's file, and a link to a FIFO.
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("keep"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(other, link)
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "-o", link, enc), "symbolic link")
	if b, _ := os.ReadFile(other); string(b) != "keep" {
		t.Fatalf("the link's target was written: %q", b)
	}
	fifo2 := filepath.Join(dir, "elsewhere.fifo")
	r2 := ostest.FIFO(t, fifo2)
	link2 := filepath.Join(dir, "link2")
	os.Symlink(fifo2, link2)
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "-o", link2, enc), "symbolic link")
	if got := ostest.Received(t, r2); len(got) != 0 {
		t.Fatalf("the FIFO behind the link received %q", got)
	}
	// A file of another user, even with --force.
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs")
		os.WriteFile(theirs, []byte("theirs"), 0o666)
		os.Chown(theirs, 65534, 65534)
		fails(t, run(t, nil, nil, "decrypt", "--key", key, "--force", "-o", theirs, enc), "another user")
		if b, _ := os.ReadFile(theirs); string(b) != "theirs" {
			t.Fatal("another user's file was replaced")
		}
	}
	// Asked for: --force on the FIFO, /dev/null, standard output.
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "--force", "-o", fifo, enc))
	if got := ostest.Received(t, r); !bytes.Equal(got, pt) {
		t.Fatalf("--force: the FIFO received %q", got)
	}
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", "/dev/null", enc))
	if res := ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", "-", enc)); !bytes.Equal(res.stdout, pt) {
		t.Fatalf("-o -: %q", res.stdout)
	}
}

// SIGINT and SIGTERM end a command with 130 and 143, one line, no output.
func TestSignalExitStatus(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	for _, c := range []struct {
		sig  syscall.Signal
		code int
		msg  string
	}{{syscall.SIGINT, 130, "interrupted"}, {syscall.SIGTERM, 143, "terminated"}} {
		out := filepath.Join(dir, "out")
		cmd := exec.Command(bin, "encrypt", "--key", key, "-o", out, "-")
		cmd.Env = cleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once 1 MiB went through the pipe, hsmenv reads, so it handles
		// signals.
		chunk := make([]byte, 1<<20)
		stdin.Write(chunk)
		cmd.Process.Signal(c.sig)
		// More input ends the read in progress; the next read sees the
		// signal.
		go func() {
			for {
				if _, err := stdin.Write(chunk[:4096]); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code || strings.TrimSpace(stderr.String()) != "hsmenv: "+c.msg {
			t.Fatalf("%v: %v, stderr %q; want exit %d, hsmenv: %s", c.sig, err, stderr.String(), c.code, c.msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v left the output", c.sig)
		}
	}
}

// ptyRun is hsmenv running with a pseudo-terminal as its controlling
// terminal (its PIN prompt opens /dev/tty); standard input is /dev/null.
type ptyRun struct {
	cmd            *exec.Cmd
	master         *os.File
	mu             sync.Mutex
	screen         bytes.Buffer
	stdout, stderr bytes.Buffer
	read           chan struct{}
}

func startPTY(t *testing.T, env []string, args ...string) *ptyRun {
	t.Helper()
	master, slave := ostest.PTY(t)
	p := &ptyRun{master: master, read: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.ExtraFiles = []*os.File{slave} // fd 3
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	go func() {
		defer close(p.read)
		buf := make([]byte, 512)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.screen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		master.Close()
	})
	return p
}

func (p *ptyRun) shown() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.screen.String()
}

// waitFor waits until the terminal shows want.
func (p *ptyRun) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(p.shown(), want) {
			return
		}
	}
	t.Fatalf("the terminal never showed %q; it shows %q; stderr %q", want, p.shown(), p.stderr.String())
}

// wait waits at most limit for hsmenv to exit and returns its status.
func (p *ptyRun) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("hsmenv did not exit within %s; terminal %q, stderr %q", limit, p.shown(), p.stderr.String())
		return -1
	}
}

// promptCase is what is typed at the PIN prompt and how hsmenv must end.
type promptCase struct {
	name, typed string
	code        int    // exit status
	stderr      string // the one line on standard error contains this
}

// promptCases: Ctrl-C ends the command at once (130) and what is typed
// next (a shell command) is not sent as the PIN; Ctrl-D and an empty line
// end it with a clear error, nothing sent either.
var promptCases = []promptCase{
	{"ctrl-c", "\x03clear\r", 130, "hsmenv: interrupted"},
	{"ctrl-c after typing", "12\x03clear\r", 130, "hsmenv: interrupted"},
	{"ctrl-d", "\x04clear\r", 1, "no PIN entered"},
	{"empty", "\rclear\r", 1, "empty PIN"},
}

// checkPrompt runs hsmenv args on a terminal, types c.typed at the PIN
// prompt and checks how it ends; out must not exist afterwards.
func checkPrompt(t *testing.T, env []string, c promptCase, out string, args ...string) *ptyRun {
	t.Helper()
	p := startPTY(t, env, args...)
	p.waitFor(t, "PIN for ")
	if _, err := p.master.WriteString(c.typed); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code := p.wait(t, 10*time.Second)
	msg := strings.TrimSpace(p.stderr.String())
	if code != c.code || !strings.HasPrefix(msg, "hsmenv: ") || strings.Contains(msg, "\n") || !strings.Contains(msg, c.stderr) {
		t.Fatalf("%s: exit %d, stderr %q; want exit %d and one line with %q", c.name, code, msg, c.code, c.stderr)
	}
	t.Logf("%s: exit %d, %s", c.name, code, msg)
	if c.code == 130 && time.Since(start) > 5*time.Second {
		t.Fatalf("%s: hsmenv took %s to stop", c.name, time.Since(start))
	}
	for _, bad := range []string{"rejected", "incorrect", "INCORRECT", "clear"} {
		if strings.Contains(msg, bad) {
			t.Fatalf("%s: the typed line went on as a PIN: %q", c.name, msg)
		}
	}
	if echo := afterPrompt(p.shown()); echo != "" {
		t.Fatalf("%s: the terminal echoed %q after the prompt", c.name, echo)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("%s: output left behind", c.name)
	}
	return p
}

// afterPrompt returns what the terminal showed after the PIN prompt's
// label, white space trimmed: nothing, as input is not echoed.
func afterPrompt(shown string) string {
	i := strings.Index(shown, "PIN for ")
	if i < 0 {
		return shown
	}
	j := strings.Index(shown[i:], ": ")
	if j < 0 {
		return shown
	}
	return strings.TrimSpace(shown[i+j+2:])
}

// The PKCS#11 PIN prompt (SoftHSM2 has no retry counter: a PIN sent would
// show as "rejected the PIN").
func TestPINPromptPKCS11(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := cleanEnv(tok.Env()...)
	dir := t.TempDir()
	ok(t, run(t, nil, env, "keygen", "--key", tok.URI("kek")))
	pt := []byte("pkcs11 plaintext")
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, pt, env, "encrypt", "--key", tok.URI("kek"), "-o", enc, "-"))
	prompted := "pkcs11:token=" + tok.Label + ";object=kek?module-path=" + tok.Module
	out := filepath.Join(dir, "out")
	for _, c := range promptCases {
		checkPrompt(t, env, c, out, "decrypt", "--key", prompted, "-o", out, enc)
	}
	// The prompt works: the right PIN typed opens the message.
	p := startPTY(t, env, "decrypt", "--key", prompted, "-o", out, enc)
	p.waitFor(t, "PIN for ")
	p.master.WriteString(tok.PIN + "\r")
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("right PIN: exit %d: %s", code, p.stderr.String())
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, pt) {
		t.Fatalf("decrypted %q", b)
	}
	if echo := afterPrompt(p.shown()); echo != "" {
		t.Fatalf("the terminal echoed %q after the prompt", echo)
	}
	// A pin-source that never ends (/dev/zero) fails at once; it used to
	// be read until memory ran out, so the run is cut short.
	fails(t, runFor(t, 5*time.Second, env, "decrypt", "--key", prompted+"&pin-source=file:/dev/zero", enc), "not a regular file")
}

// runFor is run with no input and a time limit: hsmenv is killed, and the
// test fails, when it runs longer.
func runFor(t *testing.T, limit time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	res := output(t, cmd)
	if ctx.Err() != nil {
		t.Fatalf("hsmenv %s did not end within %s", strings.Join(args, " "), limit)
	}
	return res
}

// lockoutCounter reads the TPM's dictionary-attack failure counter
// (TPM_PT_LOCKOUT_COUNTER) on a connection of its own, closed before it
// returns (swtpm serves one connection at a time).
func lockoutCounter(t *testing.T, sw *tpmtest.SWTPM) uint32 {
	t.Helper()
	tp, err := sw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	n, err := tpmtest.LockoutCounter(tp)
	if err != nil {
		t.Fatalf("reading TPM_PT_LOCKOUT_COUNTER: %v", err)
	}
	return n
}

// The TPM PIN prompt: nothing reaches the TPM, whose dictionary-attack
// counter would count a wrong PIN.
func TestPINPromptTPM(t *testing.T) {
	sw := tpmtest.Start(t)
	env := cleanEnv()
	dir := t.TempDir()
	seal := "tpm:seal;pin=yes?device=" + sw.Device()
	pt := []byte("tpm plaintext")
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, pt, env, "encrypt", "--key", seal+"&pin-value=right-pin", "-o", enc, "-"))
	base := lockoutCounter(t, sw)
	out := filepath.Join(dir, "out")
	for _, c := range promptCases {
		checkPrompt(t, env, c, out, "decrypt", "--key", seal, "-o", out, enc)
		if n := lockoutCounter(t, sw); n != base {
			t.Fatalf("%s: the TPM's lockout counter went from %d to %d: a PIN was sent", c.name, base, n)
		}
	}
	// The prompt works, and the counter does count a wrong PIN.
	p := startPTY(t, env, "decrypt", "--key", seal, "-o", out, enc)
	p.waitFor(t, "TPM PIN for ")
	p.master.WriteString("right-pin\r")
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("right PIN: exit %d: %s", code, p.stderr.String())
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, pt) {
		t.Fatalf("decrypted %q", b)
	}
	os.Remove(out)
	p = startPTY(t, env, "decrypt", "--key", seal, "-o", out, enc)
	p.waitFor(t, "TPM PIN for ")
	p.master.WriteString("wrong-pin\r")
	if code := p.wait(t, 20*time.Second); code != 1 || !strings.Contains(p.stderr.String(), "rejected the PIN") {
		t.Fatalf("wrong PIN: exit %d: %s", code, p.stderr.String())
	}
	if n := lockoutCounter(t, sw); n != base+1 {
		t.Fatalf("a wrong PIN moved the lockout counter from %d to %d, want +1", base, n)
	}
}
