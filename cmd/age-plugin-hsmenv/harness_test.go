package main_test

// The harness of the age tests: the plugin, the hsmenv CLI and age 1.3.2
// built once per test binary, Debian's age 1.1.1, children run with a
// timeout and without a terminal, keys made with hsmenv keygen on SoftHSM2
// tokens and swtpm, and identity files made by the plugin.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age/plugin"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

const (
	// runTimeout bounds every child that should succeed: past it the
	// child is killed and the test fails as a hang.
	runTimeout = 60 * time.Second
	// keygenTimeout bounds hsmenv keygen (RSA-3072 in SoftHSM2, RSA-2048
	// in swtpm).
	keygenTimeout = 120 * time.Second
	// failTimeout bounds a child that should fail; failWithin is how soon
	// its error must come.
	failTimeout = 30 * time.Second
	failWithin  = 10 * time.Second
)

// raceBuild is set under -race (race_test.go).
var raceBuild bool

var (
	setupOnce sync.Once
	setupErr  error
	root      string // temporary directory of the built tools
	pluginDir string // holds age-plugin-hsmenv and nothing else: age's PATH
	emptyDir  string // an empty directory: a PATH without the plugin
	raceDir   string // the race detector's reports from the plugin
	pluginBin string
	hsmenvBin string
	age13Dir  string // age 1.3.2's age, age-keygen, ...
	age13Err  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if root != "" {
		os.RemoveAll(root)
	}
	os.Exit(code)
}

// setup builds the plugin and hsmenv (and age 1.3.2) once; a test that
// cannot have them fails.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() {
		root, setupErr = os.MkdirTemp("", "age-plugin-hsmenv-test-")
		if setupErr != nil {
			return
		}
		pluginDir, emptyDir, age13Dir = filepath.Join(root, "plugin"), filepath.Join(root, "empty"), filepath.Join(root, "age-1.3.2")
		raceDir = filepath.Join(root, "race")
		for _, d := range []string{pluginDir, emptyDir, age13Dir, raceDir, filepath.Join(root, "bin")} {
			if setupErr = os.Mkdir(d, 0o700); setupErr != nil {
				return
			}
		}
		pluginBin = filepath.Join(pluginDir, "age-plugin-hsmenv")
		hsmenvBin = filepath.Join(root, "bin", "hsmenv")
		var pluginErr, hsmenvErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			args := []string{"build", "-o", pluginBin}
			if raceBuild {
				args = append(args, "-race")
			}
			pluginErr = goCmd("", nil, append(args, ".")...)
		})
		wg.Go(func() {
			hsmenvErr = goCmd("", nil, "build", "-o", hsmenvBin, "github.com/hsmenv/hsmenv/cmd/hsmenv")
		})
		wg.Go(func() {
			// Outside the module, with no -mod flag of the caller's.
			age13Err = goCmd(root, []string{"GOBIN=" + age13Dir, "GOFLAGS="}, "install", "filippo.io/age/cmd/...@v1.3.2")
		})
		wg.Wait()
		setupErr = errors.Join(pluginErr, hsmenvErr)
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func goCmd(dir string, env []string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ageBin is one age release.
type ageBin struct {
	name    string // "age-1.1.1"
	path    string
	keygen  string // its age-keygen
	tagOK   bool   // it encrypts to age1tag1 recipients itself (age >= 1.3)
	version string
}

var (
	age11Once sync.Once
	age11     ageBin
	age11Err  error
)

// ageDebian is Debian's age (package age, 1.1.1 on trixie).
func ageDebian(t *testing.T) ageBin {
	t.Helper()
	setup(t)
	path := softhsmtest.Require(t, "age 1.1.1 (Debian package age)", "/usr/bin/age")
	age11Once.Do(func() {
		out, err := exec.Command(path, "--version").Output()
		if err != nil {
			age11Err = fmt.Errorf("%s --version: %v", path, err)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		old := strings.HasPrefix(v, "1.0.") || strings.HasPrefix(v, "1.1.") || strings.HasPrefix(v, "1.2.")
		age11 = ageBin{name: "age-" + v, path: path, keygen: "/usr/bin/age-keygen", tagOK: !old, version: v}
	})
	if age11Err != nil {
		t.Fatal(age11Err)
	}
	return age11
}

// age132 is age 1.3.2 as setup built it.
func age132(t *testing.T) ageBin {
	t.Helper()
	setup(t)
	if age13Err != nil {
		msg := fmt.Sprintf("age 1.3.2 could not be built (needs the Go module proxy): %v", age13Err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return ageBin{name: "age-1.3.2", path: filepath.Join(age13Dir, "age"), keygen: filepath.Join(age13Dir, "age-keygen"), tagOK: true, version: "1.3.2"}
}

// ages are both releases, the old one first.
func ages(t *testing.T) []ageBin { return []ageBin{ageDebian(t), age132(t)} }

// childEnv is the environment of a child: this process's, without anything
// that would point hsmenv, SoftHSM2 or age elsewhere, with a PATH holding
// the plugin alone (withPlugin) or nothing, and extra.
func childEnv(withPlugin bool, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "SOFTHSM2_CONF" || k == "GORACE" && raceBuild || k == "AGEDEBUG" || strings.HasPrefix(k, "HSMENV_") || strings.HasPrefix(k, "TPM2") {
			continue
		}
		env = append(env, kv)
	}
	path := emptyDir
	if withPlugin {
		path = pluginDir
	}
	env = append(env, "PATH="+path)
	if raceBuild {
		// The race detector's reports go to files checkRaces reads (age
		// does not pass on the plugin's stderr), without its 1 s pause
		// at exit.
		env = append(env, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0 log_path="+filepath.Join(raceDir, "report"))
	}
	return append(env, extra...)
}

// checkRaces fails the test if a race-enabled child reported a data race.
func checkRaces(t *testing.T) {
	t.Helper()
	if !raceBuild {
		return
	}
	reports, _ := filepath.Glob(filepath.Join(raceDir, "report*"))
	for _, f := range reports {
		data, err := os.ReadFile(f)
		if err == nil && len(data) > 0 {
			t.Errorf("the plugin reported a data race (%s):\n%s", f, data)
		}
		os.Remove(f)
	}
}

type result struct {
	stdout, stderr []byte
	code           int
	elapsed        time.Duration
	cmdline        string
}

// run runs bin with args in its own session (no controlling terminal),
// stdin from stdin (nil: /dev/null), and kills its whole process group
// (age and the plugin) after timeout, which fails the test as a hang.
func run(t *testing.T, timeout time.Duration, env []string, stdin []byte, bin string, args ...string) result {
	t.Helper()
	r, hung, err := runChild(timeout, env, stdin, bin, args...)
	if os.Getenv("HSMENV_AGE_TEST_TIMING") != "" { // the time of every child, for figures
		t.Logf("TIMING %v %s", r.elapsed.Round(time.Millisecond), r.cmdline)
	}
	checkRaces(t)
	if hung {
		t.Fatalf("%s: no end within %v, killed (a hang); stderr: %q", r.cmdline, timeout, r.stderr)
	}
	if err != nil {
		t.Fatalf("%s: %v", r.cmdline, err)
	}
	return r
}

// runChild is run without the test: hung says the child was killed at
// timeout; err is a child that could not run.
func runChild(timeout time.Duration, env []string, stdin []byte, bin string, args ...string) (r result, hung bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	r = result{stdout: out.Bytes(), stderr: errb.Bytes(), elapsed: time.Since(start), cmdline: filepath.Base(bin) + " " + strings.Join(args, " ")}
	if ctx.Err() != nil {
		return r, true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code, err = ee.ExitCode(), nil
	}
	return r, false, err
}

// ok fails the test unless r succeeded.
func ok(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d: %s", r.cmdline, r.code, r.stderr)
	}
	return r
}

// fails checks that r failed within failWithin with one error line that
// contains each of want (case-insensitively) outside the key URIs it
// quotes, and no Go stack or plugin protocol breakdown; age's own warnings,
// hints and "report unhelpful errors" line aside. It returns the line.
func fails(t *testing.T, r result, want ...string) string {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("%s succeeded; stdout %d bytes, stderr %q", r.cmdline, len(r.stdout), r.stderr)
	}
	if r.elapsed > failWithin {
		t.Errorf("%s took %v to fail (want < %v)", r.cmdline, r.elapsed.Round(time.Millisecond), failWithin)
	}
	var lines []string
	for l := range strings.Lines(string(r.stderr)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "age: warning: ") || strings.HasPrefix(l, "age: hint: ") ||
			strings.Contains(l, "filippo.io/age/report") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 {
		t.Fatalf("%s: want one error line, got %d: %q", r.cmdline, len(lines), r.stderr)
	}
	msg := lines[0]
	lower := strings.ToLower(msg)
	for _, bad := range []string{"goroutine ", "panic", "failed to read line", "eof", "internal error"} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s: the error says %q: %q", r.cmdline, bad, msg)
		}
	}
	if len(msg) > 600 {
		t.Errorf("%s: a %d-character error: %q", r.cmdline, len(msg), msg)
	}
	text := strings.ToLower(keyURIs.ReplaceAllString(msg, "URI"))
	for _, w := range want {
		if !strings.Contains(text, strings.ToLower(w)) {
			t.Errorf("%s: the error does not say %q (outside the key URIs): %q", r.cmdline, w, msg)
		}
	}
	return msg
}

// keyURIs matches the key URIs an error quotes.
var keyURIs = regexp.MustCompile(`\b(pkcs11|tpm):\S*`)

// kek is a key made for a test, with the environment that reaches it.
type kek struct {
	kind string // the keygen type, or "seal"
	uri  string
	env  []string // SOFTHSM2_CONF for a token
	p256 bool     // its recipient is age1tag1
}

// hsmKey makes a key of type typ labelled label in tok.
func hsmKey(t *testing.T, tok *softhsmtest.Token, label, typ string) kek {
	t.Helper()
	uri := tok.URI(label)
	ok(t, run(t, keygenTimeout, childEnv(false, tok.Env()...), nil, hsmenvBin, "keygen", "--type", typ, "--key", uri))
	return kek{kind: typ, uri: uri, env: tok.Env(), p256: typ == "ec-p256"}
}

// tpmKey makes a key of type typ (rsa-2048, ec-p256) in a key file, or
// returns tpm:seal for typ "seal", on sw; extra joins the URI's path.
func tpmKey(t *testing.T, sw *tpmtest.SWTPM, typ, extra, query string) kek {
	t.Helper()
	if typ == "seal" {
		return kek{kind: typ, uri: "tpm:seal" + extra + "?device=" + sw.Device() + query}
	}
	uri := "tpm:key-file=" + filepath.Join(t.TempDir(), typ+".key") + extra + "?device=" + sw.Device() + query
	ok(t, run(t, keygenTimeout, childEnv(false), nil, hsmenvBin, "keygen", "--type", typ, "--key", uri))
	return kek{kind: typ, uri: uri, p256: typ == "ec-p256"}
}

// ident is an identity file the plugin wrote.
type ident struct {
	uri       string // the key's
	file      string
	recipient string // "# recipient:"
	legacy    string // "# recipient for age < 1.3 and sops:" (P-256 keys)
	identity  string // AGE-PLUGIN-HSMENV-1...
}

// newIdentity runs age-plugin-hsmenv --generate --key k.uri -o FILE in
// env and checks what it wrote.
func newIdentity(t *testing.T, k kek, env []string) ident {
	t.Helper()
	file := filepath.Join(t.TempDir(), "identity.txt")
	r := ok(t, run(t, runTimeout, env, nil, pluginBin, "--generate", "--key", k.uri, "-o", file))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	id := parseIdentityFile(t, data, k.p256)
	id.file, id.uri = file, k.uri
	if !bytes.Contains(r.stderr, []byte("Public key: "+id.recipient)) {
		t.Errorf("--generate -o: stderr lacks %q: %q", "Public key: "+id.recipient, r.stderr)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v (%v), want 0600", fi.Mode(), err)
	}
	return id
}

// parseIdentityFile checks the form of an identity file of one key.
func parseIdentityFile(t *testing.T, data []byte, p256 bool) ident {
	t.Helper()
	var id ident
	var created bool
	for l := range strings.Lines(string(data)) {
		l = strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(l, "# created: "):
			ts, err := time.Parse(time.RFC3339, strings.TrimPrefix(l, "# created: "))
			if err != nil || time.Since(ts) > time.Hour || time.Until(ts) > time.Minute {
				t.Errorf("identity file: bad creation time %q (%v)", l, err)
			}
			created = true
		case strings.HasPrefix(l, "# recipient: "):
			id.recipient = strings.TrimPrefix(l, "# recipient: ")
		case strings.HasPrefix(l, "# recipient for age < 1.3 and sops: "):
			id.legacy = strings.TrimPrefix(l, "# recipient for age < 1.3 and sops: ")
		case strings.HasPrefix(l, "AGE-PLUGIN-HSMENV-1"):
			if id.identity != "" {
				t.Fatalf("identity file with two identities:\n%s", data)
			}
			id.identity = l
		default:
			t.Errorf("identity file: unexpected line %q", l)
		}
	}
	if !created || id.recipient == "" || id.identity == "" {
		t.Fatalf("identity file lacks a creation time, recipient or identity:\n%s", data)
	}
	if name, _, err := plugin.ParseIdentity(id.identity); err != nil || name != "hsmenv" {
		t.Errorf("identity %q: plugin %q, %v", id.identity, name, err)
	}
	wantName := "hsmenv"
	if p256 {
		wantName = "tag"
		if name, _, err := plugin.ParseRecipient(id.legacy); err != nil || name != "hsmenv" {
			t.Errorf("P-256 key: recipient for age < 1.3 %q: plugin %q, %v", id.legacy, name, err)
		}
	} else if id.legacy != "" {
		t.Errorf("a recipient for age < 1.3 for a key that is not P-256: %q", id.legacy)
	}
	if name, _, err := plugin.ParseRecipient(id.recipient); err != nil || name != wantName {
		t.Errorf("recipient %q: type %q (%v), want age1%s1...", id.recipient, name, err, wantName)
	}
	return id
}

// checkTagRecipient checks that the age1tag1 recipient of a P-256 key is
// age's tagged P-256 recipient of its public key, as hsmenv pubkey gives it.
func checkTagRecipient(t *testing.T, k kek, id ident) {
	t.Helper()
	r := ok(t, run(t, runTimeout, childEnv(false, k.env...), nil, hsmenvBin, "pubkey", "--key", k.uri))
	block, _ := pem.Decode(r.stdout)
	if block == nil {
		t.Fatalf("hsmenv pubkey: no PEM: %q", r.stdout)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, isEC := pub.(*ecdsa.PublicKey)
	if !isEC {
		t.Fatalf("hsmenv pubkey: a %T", pub)
	}
	ecdhPub, err := ec.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := ecdhPub.Bytes() // 04 || X || Y
	compressed := append([]byte{2 | raw[64]&1}, raw[1:33]...)
	if want := plugin.EncodeRecipient("tag", compressed); id.recipient != want {
		t.Fatalf("recipient %s, want age's tag recipient of the key, %s", id.recipient, want)
	}
}

// stanzas returns the types of the recipient stanzas of an age file.
func stanzas(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _, found := bytes.Cut(data, []byte("\n---"))
	if !found || !bytes.HasPrefix(hdr, []byte("age-encryption.org/v1\n")) {
		t.Fatalf("%s is not an age file", file)
	}
	var types []string
	for l := range strings.Lines(string(hdr)) {
		if rest, isStanza := strings.CutPrefix(l, "-> "); isStanza {
			types = append(types, strings.Fields(rest)[0])
		}
	}
	return types
}

func randomFile(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	pt := make([]byte, n)
	rand.Read(pt)
	path := filepath.Join(dir, "plain")
	if err := os.WriteFile(path, pt, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pt
}

// decryptOK decrypts file with identity file id and checks it gives want.
func decryptOK(t *testing.T, a ageBin, env []string, id, file string, want []byte) {
	t.Helper()
	out := file + ".out-" + a.name
	ok(t, run(t, runTimeout, env, nil, a.path, "-d", "-i", id, "-o", out, file))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s -d -i %s %s: %d bytes differ from the %d encrypted", a.name, filepath.Base(id), filepath.Base(file), len(got), len(want))
	}
	os.Remove(out)
}

// namesKey checks that an error names the identity's key, by its URI
// without the query (module path, PIN source), as errors name keys.
func namesKey(t *testing.T, msg string, id ident) {
	t.Helper()
	name, _, _ := strings.Cut(id.uri, "?")
	if !strings.Contains(msg, "key "+name+":") {
		t.Errorf("the error does not name the key %s: %q", name, msg)
	}
}

// decryptFails runs age -d -o OUT and checks one clear error (see fails)
// and that OUT was not written; it returns the error line.
func decryptFails(t *testing.T, a ageBin, env []string, id, file string, want ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, failTimeout, env, nil, a.path, "-d", "-i", id, "-o", out, file)
	msg := fails(t, r, want...)
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: a failed decryption left %s (%v)", a.name, out, err)
	}
	// Only a missing PIN may make the plugin ask age for one (age then
	// warns that it has no terminal): a rejected PIN is not asked again.
	if bytes.Contains(r.stderr, []byte("could not read value")) && !slices.Contains(want, "no terminal") {
		t.Errorf("%s: the plugin asked age for a value: %q", r.cmdline, r.stderr)
	}
	return msg
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lockoutCounter reads the TPM's failed-authorization count over a
// connection of its own (nothing else may be connected).
func lockoutCounter(t *testing.T, sw *tpmtest.SWTPM) uint32 {
	t.Helper()
	tp, err := sw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	n, err := tpmtest.LockoutCounter(tp)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHarness: what the other tests rely on to see a hang or a prompt. A
// child that hangs, with a grandchild holding its output open (as age and
// its plugin), is killed at the timeout and reported as a hang; a child
// has no terminal to prompt on.
func TestHarness(t *testing.T) {
	t.Parallel()
	sh := softhsmtest.Require(t, "a shell", "/bin/sh")
	r, hung, err := runChild(time.Second, os.Environ(), nil, sh, "-c", "sleep 60 & sleep 60")
	if err != nil || !hung || r.elapsed > 4*time.Second {
		t.Fatalf("a hanging child: hung %v after %v, %v", hung, r.elapsed, err)
	}
	r, hung, err = runChild(10*time.Second, os.Environ(), nil, sh, "-c", "exec 3</dev/tty && echo a terminal")
	if err != nil || hung || r.code == 0 {
		t.Fatalf("the child opened /dev/tty: exit %d, hung %v, %v, %s", r.code, hung, err, r.stdout)
	}
}
