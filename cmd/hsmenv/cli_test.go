package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hsmenv-cli-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "hsmenv")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr []byte
	code           int
}

// run runs the built hsmenv with args, stdin and extra environment.
func run(t *testing.T, stdin []byte, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	return output(t, cmd)
}

// output runs cmd and returns what it wrote and its exit status; a
// command that cannot run fails the test.
func output(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.Bytes(), errb.Bytes(), code}
}

func ok(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	return r
}

// fails checks a one-line error on stderr mentioning want, and a non-zero
// exit status.
func fails(t *testing.T, r result, want string) {
	t.Helper()
	msg := strings.TrimSpace(string(r.stderr))
	if r.code == 0 || strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "hsmenv: ") || !strings.Contains(msg, want) {
		t.Fatalf("want a one-line error containing %q, got exit %d: %q", want, r.code, r.stderr)
	}
}

func rawAESKey(t *testing.T, dir, name string) string {
	key := make([]byte, 32)
	rand.Read(key)
	f, err := os.CreateTemp(dir, name+"-*.key")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	path := f.Name()
	os.WriteFile(path, key, 0o600)
	return "raw-aes:namespace=cli;name=" + name + "?key-file=" + path
}

func TestEncryptDecryptFiles(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k1")
	other := rawAESKey(t, dir, "k2")
	pt := make([]byte, 300_001)
	rand.Read(pt)
	in := filepath.Join(dir, "plain")
	os.WriteFile(in, pt, 0o600)
	enc := filepath.Join(dir, "plain.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "--key", other, "--context", "purpose=test", "--frame-size", "4KiB", "-o", enc, in))

	// inspect --json: the contract's fields.
	var hdr struct {
		Version   int               `json:"version"`
		Suite     string            `json:"suite"`
		MessageID string            `json:"message_id"`
		FrameSize int               `json:"frame_size"`
		Context   map[string]string `json:"context"`
		EDKs      []struct {
			ProviderID   string `json:"provider_id"`
			ProviderInfo string `json:"provider_info"`
		} `json:"edks"`
	}
	r := ok(t, run(t, nil, nil, "inspect", "--json", enc))
	if err := json.Unmarshal(r.stdout, &hdr); err != nil {
		t.Fatal(err)
	}
	info, _ := base64.StdEncoding.DecodeString(hdr.EDKs[0].ProviderInfo)
	if hdr.Version != 2 || hdr.Suite != "0478" || len(hdr.MessageID) != 64 || hdr.FrameSize != 4096 ||
		hdr.Context["purpose"] != "test" || len(hdr.EDKs) != 2 || hdr.EDKs[0].ProviderID != "cli" || !bytes.HasPrefix(info, []byte("k1")) {
		t.Fatalf("inspect --json: %s", r.stdout)
	}
	if r := ok(t, run(t, nil, nil, "inspect", enc)); !bytes.Contains(r.stdout, []byte("frame size 4096")) {
		t.Fatalf("inspect: %s", r.stdout)
	}

	// Each key alone decrypts; to a file and to stdout.
	out := filepath.Join(dir, "out")
	ok(t, run(t, nil, nil, "decrypt", "--key", other, "--require-context", "purpose=test", "-o", out, enc))
	if got, _ := os.ReadFile(out); !bytes.Equal(got, pt) {
		t.Fatal("decrypted file differs")
	}
	if r := ok(t, run(t, nil, nil, "decrypt", "--key", key, enc)); !bytes.Equal(r.stdout, pt) {
		t.Fatal("decrypt to stdout differs")
	}
	// A byte range.
	r = ok(t, run(t, nil, nil, "decrypt", "--key", key, "--range", "5000:13000", enc))
	if !bytes.Equal(r.stdout, pt[5000:13000]) {
		t.Fatal("range differs")
	}
	if r := ok(t, run(t, nil, nil, "decrypt", "--key", key, "--range", "300000:", enc)); !bytes.Equal(r.stdout, pt[300000:]) {
		t.Fatal("open-ended range differs")
	}
	// HSMENV_KEY stands in for --key.
	if r := ok(t, run(t, nil, []string{"HSMENV_KEY=" + other}, "decrypt", enc)); !bytes.Equal(r.stdout, pt) {
		t.Fatal("HSMENV_KEY decrypt differs")
	}
	// stdin to stdout, signed suite.
	r = ok(t, run(t, pt, nil, "encrypt", "--key", key, "--suite", "0578", "-"))
	if r2 := ok(t, run(t, r.stdout, nil, "decrypt", "--key", key, "-")); !bytes.Equal(r2.stdout, pt) {
		t.Fatal("pipe round trip differs")
	}
	// Output to /dev/null is written directly, not renamed over.
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", "/dev/null", enc))
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatal("/dev/null is no longer a device")
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k1")
	wrong := rawAESKey(t, dir, "k1") // same name, other bytes
	pt := make([]byte, 100_000)
	rand.Read(pt)
	in := filepath.Join(dir, "plain")
	os.WriteFile(in, pt, 0o600)
	enc := filepath.Join(dir, "plain.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "--context", "a=b", "-o", enc, in))
	msg, _ := os.ReadFile(enc)
	out := filepath.Join(dir, "out")

	noOutput := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(out); err == nil {
			t.Fatal("a failed command left its output file")
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".out.tmp-*")); len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
	fails(t, run(t, nil, nil, "decrypt", "--key", wrong, "-o", out, enc), "no key could unwrap")
	noOutput(t)
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--require-context", "a=c", "-o", out, enc), `key "a" is "b"`)
	noOutput(t)
	// Truncated and bit-flipped messages: no output file, whichever byte.
	for _, bad := range [][]byte{msg[:len(msg)-1], msg[:len(msg)/2], flip(msg, len(msg)-5), flip(msg, len(msg)/2)} {
		cut := filepath.Join(dir, "bad.enc")
		os.WriteFile(cut, bad, 0o600)
		r := run(t, nil, nil, "decrypt", "--key", key, "-o", out, cut)
		if r.code == 0 {
			t.Fatal("a damaged message decrypted")
		}
		noOutput(t)
	}
	fails(t, run(t, nil, nil, "decrypt", "-o", out, enc), "no key")
	fails(t, run(t, nil, nil, "decrypt", "--key", "nope:x", enc), "unknown key URI scheme")
	fails(t, run(t, nil, nil, "decrypt", "--key", "raw-aes:namespace=a;name=b;colour=red?key-file=x", enc), "unknown path attribute")
	fails(t, run(t, nil, nil, "decrypt", "--key", key, filepath.Join(dir, "missing")), "no such file")
	fails(t, run(t, nil, nil, "encrypt", "--key", key, dir), "is a directory")
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--range", "10:5", enc), "START is after END")
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--range", "0:100001", enc), "ends past the plaintext")
	fails(t, run(t, msg, nil, "decrypt", "--key", key, "--range", "0:10", "-"), "regular file")
	// An existing output is kept unless --force; the input is never the output.
	os.WriteFile(out, []byte("keep me"), 0o600)
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "-o", out, enc), "exists")
	if got, _ := os.ReadFile(out); string(got) != "keep me" {
		t.Fatal("existing output overwritten")
	}
	fails(t, run(t, nil, nil, "decrypt", "--key", wrong, "--force", "-o", out, enc), "no key could unwrap")
	if got, _ := os.ReadFile(out); string(got) != "keep me" {
		t.Fatal("a failed --force decrypt replaced the existing file")
	}
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "--force", "-o", out, enc))
	fails(t, run(t, nil, nil, "encrypt", "--key", key, "--force", "-o", in, in), "output is the input")
	fails(t, run(t, nil, nil, "encrypt", "--key", key, "--suite", "0178", in), "--suite")
	if r := run(t, nil, nil, "encrypt", "--key", key); r.code != 2 {
		t.Fatalf("usage error exit %d", r.code)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

// The PKCS#11 commands end to end on a throw-away SoftHSM2 token, through
// the system module and SOFTHSM2_CONF as a user would run them.
func TestPKCS11Commands(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	sys := ""
	for _, m := range softhsmtest.SoftHSMModules {
		if _, err := os.Stat(m); err == nil {
			sys = m
			break
		}
	}
	env := tok.Env()
	base := "pkcs11:token=" + tok.Label
	query := "?module-path=" + sys + "&pin-source=file:" + tok.PINFile
	aes := base + ";object=aes-kek" + query
	rsa := base + ";object=rsa-kek" + query
	r := ok(t, run(t, nil, env, "keygen", "--type", "aes-256", "--key", aes))
	if !bytes.Contains(r.stdout, []byte("sensitive=true extractable=false")) {
		t.Fatalf("keygen: %s", r.stdout)
	}
	ok(t, run(t, nil, env, "keygen", "--type", "rsa-2048", "--key", rsa))
	fails(t, run(t, nil, env, "keygen", "--type", "aes-256", "--key", aes), "exists")
	r = ok(t, run(t, nil, env, "keys", "list", base+query))
	for _, want := range []string{"aes-kek", "rsa-kek", "aes-256", "rsa-2048"} {
		if !bytes.Contains(r.stdout, []byte(want)) {
			t.Fatalf("keys list lacks %s:\n%s", want, r.stdout)
		}
	}
	pub := ok(t, run(t, nil, env, "pubkey", "--key", rsa))
	if !bytes.HasPrefix(pub.stdout, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("pubkey: %s", pub.stdout)
	}
	dir := t.TempDir()
	pt := []byte(strings.Repeat("hsmenv ", 10000))
	in := filepath.Join(dir, "in")
	os.WriteFile(in, pt, 0o600)
	enc := filepath.Join(dir, "in.enc")
	ok(t, run(t, nil, env, "encrypt", "--key", aes, "--key", rsa, "-o", enc, in))
	for _, k := range []string{aes, rsa} {
		if r := ok(t, run(t, nil, env, "decrypt", "--key", k, enc)); !bytes.Equal(r.stdout, pt) {
			t.Fatal("decrypt through the token differs")
		}
	}
	// The PIN from the environment instead of a file; a wrong one is refused.
	noPIN := base + ";object=aes-kek?module-path=" + sys
	ok(t, run(t, nil, append(env, "HSMENV_PKCS11_PIN="+tok.PIN), "decrypt", "--key", noPIN, "-o", "/dev/null", enc))
	fails(t, run(t, nil, append(env, "HSMENV_PKCS11_PIN=wrong-pin"), "decrypt", "--key", noPIN, "-o", "/dev/null", enc), "rejected the PIN")
	// pin-value never shows in an error.
	r = run(t, nil, env, "decrypt", "--key", base+";object=nope?module-path="+sys+"&pin-value="+tok.PIN, enc)
	if r.code == 0 || bytes.Contains(r.stderr, []byte(tok.PIN)) {
		t.Fatalf("error shows the PIN or succeeded: %s", r.stderr)
	}
}

func TestRewrapAndDefaultKeys(t *testing.T) {
	dir := t.TempDir()
	old, keep, fresh := rawAESKey(t, dir, "old"), rawAESKey(t, dir, "keep"), rawAESKey(t, dir, "new")
	pt := make([]byte, 1<<20)
	rand.Read(pt)
	in := filepath.Join(dir, "plain")
	os.WriteFile(in, pt, 0o600)
	enc := filepath.Join(dir, "plain.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", old, "--key", keep, "-o", enc, in))
	rot := filepath.Join(dir, "rotated.enc")
	ok(t, run(t, nil, nil, "rewrap", "--key", old, "--to", keep, "--to", fresh, "-o", rot, enc))
	a, _ := os.ReadFile(enc)
	b, _ := os.ReadFile(rot)
	var ha, hb struct {
		HeaderSize int `json:"header_size"`
	}
	json.Unmarshal(ok(t, run(t, nil, nil, "inspect", "--json", enc)).stdout, &ha)
	json.Unmarshal(ok(t, run(t, nil, nil, "inspect", "--json", rot)).stdout, &hb)
	if !bytes.Equal(a[ha.HeaderSize:], b[hb.HeaderSize:]) {
		t.Fatal("rewrap changed the body")
	}
	for _, k := range []string{keep, fresh} {
		if r := ok(t, run(t, nil, nil, "decrypt", "--key", k, rot)); !bytes.Equal(r.stdout, pt) {
			t.Fatal("rewrapped message differs")
		}
	}
	fails(t, run(t, nil, nil, "decrypt", "--key", old, rot), "no key could unwrap")
	fails(t, run(t, nil, nil, "rewrap", "--key", old, "--to", fresh, rot), "-o OUT")
	signed := filepath.Join(dir, "signed.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", old, "--suite", "0578", "-o", signed, in))
	fails(t, run(t, nil, nil, "rewrap", "--key", old, "--to", fresh, "-o", filepath.Join(dir, "x"), signed), "signature covers the header")
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("failed rewrap left its output")
	}

	// The config file supplies the key when neither --key nor HSMENV_KEY do.
	cfg := filepath.Join(dir, "config")
	os.MkdirAll(filepath.Join(cfg, "hsmenv"), 0o700)
	os.WriteFile(filepath.Join(cfg, "hsmenv", "keys"), []byte("# default keys\n\n"+fresh+"\n"), 0o600)
	env := []string{"XDG_CONFIG_HOME=" + cfg, "HSMENV_KEY="}
	if r := ok(t, run(t, nil, env, "decrypt", rot)); !bytes.Equal(r.stdout, pt) {
		t.Fatal("decrypt with the config file's key differs")
	}
	fails(t, run(t, nil, []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "none"), "HSMENV_KEY="}, "decrypt", rot), "no key")
}

// The TPM commands end to end against swtpm: keygen, pubkey, and a message
// wrapped under a SoftHSM2 KEK, a sealed TPM KEK and a TPM key file that
// opens with each.
func TestTPMCommands(t *testing.T) {
	sw := tpmtest.Start(t)
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := tok.Env()
	dir := t.TempDir()
	hsmKey := tok.URI("kek")
	ok(t, run(t, nil, env, "keygen", "--key", hsmKey))
	seal := "tpm:seal;pcrs=sha256:7?device=" + sw.Device()
	keyFile := filepath.Join(dir, "edge.key")
	rsaKey := "tpm:key-file=" + keyFile + "?device=" + sw.Device()
	eccFile := filepath.Join(dir, "edge-ecc.key")
	eccKey := "tpm:key-file=" + eccFile + "?device=" + sw.Device()
	ok(t, run(t, nil, nil, "keygen", "--key", rsaKey))
	ok(t, run(t, nil, nil, "keygen", "--type", "ecc-p256", "--key", eccKey))
	fails(t, run(t, nil, nil, "keygen", "--key", rsaKey), "exists")
	if r := ok(t, run(t, nil, nil, "pubkey", "--key", rsaKey)); !bytes.HasPrefix(r.stdout, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("pubkey: %s", r.stdout)
	}
	pt := make([]byte, 200_000)
	rand.Read(pt)
	in := filepath.Join(dir, "in")
	os.WriteFile(in, pt, 0o600)
	enc := filepath.Join(dir, "in.enc")
	ok(t, run(t, nil, env, "encrypt", "--key", hsmKey, "--key", seal, "--key", rsaKey, "--key", eccKey, "-o", enc, in))
	r := ok(t, run(t, nil, nil, "inspect", enc))
	for _, want := range []string{"hsmenv-tpm-seal", "raw-ecdh"} {
		if !bytes.Contains(r.stdout, []byte(want)) {
			t.Fatalf("inspect lacks %s:\n%s", want, r.stdout)
		}
	}
	for _, k := range []string{hsmKey, seal, rsaKey, eccKey} {
		if r := ok(t, run(t, nil, env, "decrypt", "--key", k, enc)); !bytes.Equal(r.stdout, pt) {
			t.Fatalf("decrypt with %s differs", k)
		}
	}
	// The TPM gone: a clear device error, no output.
	sw.Kill()
	out := filepath.Join(dir, "out")
	fails(t, run(t, nil, nil, "decrypt", "--key", seal, "-o", out, enc), "")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("failed decrypt left output")
	}
}

func TestBenchCommand(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "b")
	var res struct {
		Size, Messages, Concurrency int
		Encrypt, Decrypt            struct {
			Ops       int     `json:"ops"`
			OpsPerSec float64 `json:"ops_per_sec"`
			P50       float64 `json:"p50_us"`
			P99       float64 `json:"p99_us"`
		}
		DeviceCalls int `json:"device_calls"`
	}
	r := ok(t, run(t, nil, nil, "bench", "--key", key, "--size", "2KiB", "--messages", "200", "--concurrency", "2", "--cache", "max-age=1m,max-messages=50", "--json"))
	if err := json.Unmarshal(r.stdout, &res); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if res.Size != 2048 || res.Encrypt.Ops != 200 || res.Decrypt.Ops != 200 || res.Encrypt.OpsPerSec <= 0 ||
		res.Encrypt.P50 <= 0 || res.Encrypt.P99 < res.Encrypt.P50 {
		t.Fatalf("bench --json: %s", r.stdout)
	}
	// 200 encrypts with 50 messages per key: 4 data keys (wraps); the
	// decrypts unwrap each of the 4 EDK sets once, then hit the cache.
	if res.DeviceCalls != 8 {
		t.Fatalf("device calls %d", res.DeviceCalls)
	}
	fails(t, run(t, nil, nil, "bench", "--key", key, "--cache", "max-age"), "--cache")
}

// A decrypt killed with SIGKILL half-way leaves nothing in the output
// directory: the output is an unnamed file (O_TMPFILE) until it is complete.
func TestKilledDecryptLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	pt := make([]byte, 8<<20)
	rand.Read(pt)
	msg := ok(t, run(t, pt, nil, "encrypt", "--key", key, "-")).stdout
	outDir := t.TempDir()
	cmd := exec.Command(bin, "decrypt", "--key", key, "-o", filepath.Join(outDir, "out"), "-")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	// Half the message: decrypted frames have been written when it dies.
	if _, err := pw.Write(msg[:len(msg)/2]); err != nil {
		t.Fatal(err)
	}
	// Wait until the decrypter has taken every byte out of the pipe (it
	// then holds at most its read buffer and the frames in flight).
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.IoctlGetInt(int(pw.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil {
			t.Fatalf("FIONREAD on the pipe: %v", err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the decrypter left %d bytes in its input for 10 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	left, _ := os.ReadDir(outDir)
	if len(left) != 0 {
		t.Fatalf("a killed decrypt left %d files, e.g. %s", len(left), left[0].Name())
	}
}

// TestRequiredContextKey: --required-context-key authenticates a --context
// pair without storing it; decrypt and rewrap need it back in --context,
// and say so in one line when it is missing or wrong.
func TestRequiredContextKey(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	pt := []byte("payroll for the quarter")
	msg := ok(t, run(t, pt, nil, "encrypt", "--key", key, "--context", "tenant=a", "--context", "label=payroll",
		"--required-context-key", "label", "-o", "-", "-")).stdout
	if bytes.Contains(msg, []byte("payroll")) {
		t.Fatal("the required pair is stored in the message")
	}
	in := filepath.Join(dir, "m.enc")
	if err := os.WriteFile(in, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ok(t, run(t, nil, nil, "decrypt", "--key", key, "--context", "label=payroll", "-o", "-", in)).stdout; !bytes.Equal(got, pt) {
		t.Fatalf("decrypt with the reproduced pair: %q", got)
	}
	if got := ok(t, run(t, msg, nil, "decrypt", "--key", key, "--context", "label=payroll", "--context", "tenant=a", "--require-context", "label=payroll", "-o", "-", "-")).stdout; !bytes.Equal(got, pt) {
		t.Fatalf("decrypt from a pipe with every pair: %q", got)
	}
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "-o", filepath.Join(dir, "out1"), in), "no key could unwrap")
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--context", "tenant=b", "--context", "label=payroll", "-o", filepath.Join(dir, "out2"), in), `key "tenant" is "a" in the message, "b" given`)
	out3 := filepath.Join(dir, "out3")
	ok(t, run(t, nil, nil, "rewrap", "--key", key, "--to", key, "--context", "label=payroll", "-o", out3, in))
	if got := ok(t, run(t, nil, nil, "decrypt", "--key", key, "--context", "label=payroll", "-o", "-", out3)).stdout; !bytes.Equal(got, pt) {
		t.Fatalf("decrypt after rewrap: %q", got)
	}
	for _, name := range []string{"out1", "out2"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed decrypt left %s", name)
		}
	}
	r := run(t, pt, nil, "encrypt", "--key", key, "--context", "tenant=a", "--required-context-key", "label", "-o", "-", "-")
	fails(t, r, `--required-context-key "label"`)
	if r.code != 2 {
		t.Fatalf("a required key without its pair: exit %d, want 2 (usage)", r.code)
	}
}
