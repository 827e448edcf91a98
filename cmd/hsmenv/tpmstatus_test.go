//go:build linux

package main_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// tpmStatus is the output of hsmenv tpm status --json.
type tpmStatus struct {
	Device           string `json:"device"`
	Manufacturer     string `json:"manufacturer"`
	ManufacturerID   uint32 `json:"manufacturer_id"`
	Vendor           string `json:"vendor"`
	FirmwareVersion  string `json:"firmware_version"`
	FirmwareVersion1 uint32 `json:"firmware_version_1"`
	FirmwareVersion2 uint32 `json:"firmware_version_2"`
	SRKName          string `json:"srk_name"`
	SRK              string `json:"srk"`
	LockoutCounter   uint32 `json:"lockout_counter"`
	MaxTries         uint32 `json:"max_tries"`
	TriesLeft        uint32 `json:"tries_left"`
	LockoutInterval  uint32 `json:"lockout_interval_seconds"`
	LockoutRecovery  uint32 `json:"lockout_recovery_seconds"`
	InLockout        bool   `json:"in_lockout"`
	LockoutAuthSet   bool   `json:"lockout_auth_set"`
}

// statusJSON runs hsmenv tpm status --json with env and args.
func statusJSON(t *testing.T, env []string, args ...string) tpmStatus {
	t.Helper()
	r := ok(t, run(t, nil, env, append([]string{"tpm", "status", "--json"}, args...)...))
	var st tpmStatus
	if err := json.Unmarshal(r.stdout, &st); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return st
}

// noTTY runs hsmenv without a controlling terminal (its own session), so
// that a prompt cannot open /dev/tty.
func noTTY(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return output(t, cmd)
}

// tpmEnv is the environment without any default TPM, PIN or key.
func tpmEnv(extra ...string) []string {
	env := cleanEnv("HSMENV_TPM_DEVICE=", "TPM2TOOLS_TCTI=")
	return append(env, extra...)
}

// hsmenv tpm status and reset-lockout against swtpm: the JSON fields, the
// counter rising with each wrong PIN and back to 0 after reset-lockout,
// with an empty lockout authorization (--empty-auth) and then one from a
// file; what is refused (an empty file, no terminal, a wrong value) is one
// line.
func TestTPMStatusResetLockout(t *testing.T) {
	sw := tpmtest.Start(t)
	env := tpmEnv()
	dev := "swtpm:host=127.0.0.1,port=" + strconv.Itoa(sw.Port)
	dir := t.TempDir()

	st := statusJSON(t, env, "--device", dev)
	t.Logf("%+v", st)
	if st.Device != sw.Device() || st.Manufacturer != "IBM" || st.ManufacturerID != 0x49424d00 || st.Vendor == "" ||
		strings.Count(st.FirmwareVersion, ".") != 3 || st.FirmwareVersion1 == 0 ||
		len(st.SRKName) != 68 || !strings.HasPrefix(st.SRKName, "000b") || st.SRK != "template" ||
		st.LockoutCounter != 0 || st.MaxTries != 3 || st.TriesLeft != 3 || st.LockoutInterval != 1000 || st.LockoutRecovery != 1000 ||
		st.InLockout || st.LockoutAuthSet {
		t.Fatalf("tpm status --json: %+v", st)
	}
	// The SRK name is the one keygen prints for srk=.
	if r := ok(t, run(t, nil, env, "keygen", "--key", "tpm:seal?device="+dev)); !bytes.Contains(r.stdout, []byte(st.SRKName)) {
		t.Fatalf("keygen names another SRK than %s: %s", st.SRKName, r.stdout)
	}
	text := ok(t, run(t, nil, env, "tpm", "status", "--device", dev)).stdout
	for _, want := range []string{"manufacturer      IBM (0x49424d00)", "SRK name          " + st.SRKName, "lockout counter   0 of 3", "in lockout        no", "TPM_PT_LOCKOUT_INTERVAL", "TPM_PT_LOCKOUT_RECOVERY"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("tpm status lacks %q:\n%s", want, text)
		}
	}

	// Wrong PINs raise the counter; the third puts the TPM in lockout.
	seal := "tpm:seal;pin=yes?device=" + dev
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, []byte("tpm plaintext"), env, "encrypt", "--key", seal+"&pin-value=right", "-o", enc, "-"))
	wrongPIN := func() { fails(t, run(t, nil, env, "decrypt", "--key", seal+"&pin-value=wrong", enc), "") }
	for i := uint32(1); i <= 3; i++ {
		wrongPIN()
		if st := statusJSON(t, env, "--device", dev); st.LockoutCounter != i || st.TriesLeft != 3-i || st.InLockout != (i == 3) {
			t.Fatalf("after %d wrong PINs: %+v", i, st)
		}
	}
	if r := ok(t, run(t, nil, env, "tpm", "status", "--device", dev)); !bytes.Contains(r.stdout, []byte("in lockout        YES")) {
		t.Fatalf("tpm status in lockout:\n%s", r.stdout)
	}
	// Without --empty-auth, an empty lockout authorization is never
	// assumed: with no terminal to ask on, a clear error.
	fails(t, noTTY(t, env, "tpm", "reset-lockout", "--device", dev), "no terminal to ask for the lockout authorization on: give --auth-file FILE (or --empty-auth)")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	fails(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", empty), "is empty: for an empty lockout authorization give --empty-auth")
	fails(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", empty, "--empty-auth"), "exclude each other")
	fails(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", "/dev/zero"), "--auth-file")
	if st := statusJSON(t, env, "--device", dev); st.LockoutCounter != 3 {
		t.Fatalf("refused resets changed the counter: %+v", st)
	}
	r := ok(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--empty-auth"))
	t.Logf("%s", r.stdout)
	if st := statusJSON(t, env, "--device", dev); st.LockoutCounter != 0 || st.InLockout {
		t.Fatalf("after reset-lockout --empty-auth: %+v", st)
	}
	ok(t, run(t, nil, env, "decrypt", "--key", seal+"&pin-value=right", "-o", filepath.Join(dir, "out"), enc))

	// A lockout authorization, set as tpm2_changeauth -c lockout does:
	// reset-lockout reads it from a file (trailing newline dropped).
	setLockoutAuth(t, sw, "lockout secret")
	if st := statusJSON(t, env, "--device", dev); !st.LockoutAuthSet {
		t.Fatalf("lockout_auth_set: %+v", st)
	}
	wrongPIN()
	wrongPIN()
	authFile := filepath.Join(dir, "lockout-auth")
	os.WriteFile(authFile, []byte("lockout secret\n"), 0o600)
	ok(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", authFile))
	if st := statusJSON(t, env, "--device", dev); st.LockoutCounter != 0 {
		t.Fatalf("after reset-lockout --auth-file: %+v", st)
	}
	// A wrong one: one line, which says the lockout hierarchy now waits
	// TPM_PT_LOCKOUT_RECOVERY; the right one is refused meanwhile.
	wrong := filepath.Join(dir, "wrong-auth")
	os.WriteFile(wrong, []byte("not it"), 0o600)
	fails(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", wrong), "the TPM rejected the lockout authorization; the lockout hierarchy now refuses every authorization for a while (1000 s, TPM_PT_LOCKOUT_RECOVERY)")
	fails(t, run(t, nil, env, "tpm", "reset-lockout", "--device", dev, "--auth-file", authFile), "the lockout hierarchy refuses every authorization after a failed one")
}

// setLockoutAuth sets the lockout hierarchy's authorization value of an
// swtpm whose lockout authorization is empty, on a connection of its own.
func setLockoutAuth(t *testing.T, sw *tpmtest.SWTPM, auth string) {
	t.Helper()
	tp, err := sw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	_, err = (tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: []byte(auth)},
	}).Execute(tp)
	if err != nil {
		t.Fatalf("TPM2_HierarchyChangeAuth(lockout): %v", err)
	}
}

// The lockout authorization asked for on the terminal: no echo, the typed
// value works; Ctrl-C ends the command (130) and nothing reaches the TPM;
// an empty line (only --empty-auth means empty) and Ctrl-D are refused.
func TestTPMResetLockoutPrompt(t *testing.T) {
	sw := tpmtest.Start(t)
	setLockoutAuth(t, sw, "typed secret")
	env := tpmEnv()
	dev := "swtpm:host=127.0.0.1,port=" + strconv.Itoa(sw.Port)
	const label = "Lockout authorization for TPM "
	for _, c := range []struct {
		typed  string
		code   int
		stderr string
	}{
		{"\x03not-sent\r", 130, "hsmenv: interrupted"},
		{"\r", 1, "empty lockout authorization: for an empty lockout authorization give --empty-auth"},
		{"\x04", 1, "no lockout authorization entered"},
	} {
		p := startPTY(t, env, "tpm", "reset-lockout", "--device", dev)
		p.waitFor(t, label)
		p.master.WriteString(c.typed)
		code := p.wait(t, 10*time.Second)
		if msg := strings.TrimSpace(p.stderr.String()); code != c.code || strings.Contains(msg, "\n") || !strings.Contains(msg, c.stderr) {
			t.Fatalf("typed %q: exit %d, stderr %q; want %d and %q", c.typed, code, msg, c.code, c.stderr)
		}
	}
	// Nothing was sent: a wrong value would have locked the lockout
	// hierarchy for TPM_PT_LOCKOUT_RECOVERY and refused the right one.
	p := startPTY(t, env, "tpm", "reset-lockout", "--device", dev)
	p.waitFor(t, label)
	p.master.WriteString("typed secret\r")
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("right lockout authorization typed: exit %d, %s", code, p.stderr.String())
	}
	shown := p.shown()
	if i := strings.Index(shown, label); i < 0 || strings.Contains(shown[i:], "typed secret") {
		t.Fatalf("the terminal showed %q", shown)
	}
}

// TPM2TOOLS_TCTI names the TPM when HSMENV_TPM_DEVICE is unset (for the tpm
// commands and for tpm: URIs without device=), and not when it is set; an
// unsupported TCTI there fails with the list and says where it came from.
func TestTPM2ToolsTCTI(t *testing.T) {
	sw := tpmtest.Start(t)
	tcti := "swtpm:host=127.0.0.1,port=" + strconv.Itoa(sw.Port)
	dir := t.TempDir()
	env := tpmEnv("TPM2TOOLS_TCTI=" + tcti)
	if st := statusJSON(t, env); st.Device != sw.Device() {
		t.Fatalf("status with TPM2TOOLS_TCTI: device %q, want %q", st.Device, sw.Device())
	}
	pt := []byte("sealed through TPM2TOOLS_TCTI")
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, pt, env, "encrypt", "--key", "tpm:seal", "-o", enc, "-"))
	if r := ok(t, run(t, nil, env, "decrypt", "--key", "tpm:seal", enc)); !bytes.Equal(r.stdout, pt) {
		t.Fatalf("decrypted %q", r.stdout)
	}

	// HSMENV_TPM_DEVICE wins: a dead port, so TPM2TOOLS_TCTI is not used.
	dead := "tcp://127.0.0.1:" + strconv.Itoa(freePort(t))
	both := tpmEnv("TPM2TOOLS_TCTI="+tcti, "HSMENV_TPM_DEVICE="+dead)
	fails(t, run(t, nil, both, "tpm", "status"), dead)
	fails(t, run(t, nil, both, "decrypt", "--key", "tpm:seal", enc), dead)
	// --device wins over both.
	if st := statusJSON(t, both, "--device", tcti); st.Device != sw.Device() {
		t.Fatalf("status --device: %+v", st)
	}

	// tpm2-tools' usual TCTI for the access broker, which hsmenv does not
	// speak.
	tabrmd := tpmEnv("TPM2TOOLS_TCTI=tabrmd:bus_type=system")
	for _, args := range [][]string{{"tpm", "status"}, {"decrypt", "--key", "tpm:seal", enc}} {
		r := run(t, nil, tabrmd, args...)
		fails(t, r, `hsmenv does not speak the "tabrmd" TCTI; it takes swtpm:host=H,port=P (or swtpm:path=SOCKET), mssim:host=H,port=P, device:/dev/tpmrm0`)
		fails(t, r, "(the device came from $TPM2TOOLS_TCTI; set HSMENV_TPM_DEVICE or name another device)")
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
