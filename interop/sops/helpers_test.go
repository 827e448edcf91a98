package sops_test

// The child process that runs sops's age key source, the tools the tests
// build, keys and identity files.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age/armor"
	"filippo.io/age/plugin"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/logging"
	"github.com/sirupsen/logrus"
)

const (
	// childEnv makes the test binary run one sops operation (see child).
	childEnv = "HSMENV_SOPS_TEST_CHILD"
	// hardTimeout ends a sops operation that hangs (the whole process
	// group, plugin included).
	hardTimeout = 60 * time.Second
	// quick bounds an operation that is expected to fail: one clear
	// error within seconds.
	quick = 10 * time.Second
	// promptFailed is what sops logs (at info level, as `sops --verbose`)
	// when age's terminal UI could not ask a plugin's question.
	promptFailed = "could not read value for age-plugin-hsmenv"
	// waiting is what it logs when a plugin has not answered for 5 s.
	waiting = "waiting on hsmenv plugin"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child(os.Args[1:]))
	}
	code := m.Run()
	if tools.base != "" {
		os.RemoveAll(tools.base)
	}
	os.Exit(code)
}

// childOut is what a child prints on stdout, as JSON.
type childOut struct {
	// TTY: the child could open /dev/tty (it must not: it runs in a
	// session of its own, without a controlling terminal).
	TTY bool `json:"tty"`
	// Result is the armored age file (encrypt) or the hex data key
	// (decrypt).
	Result string `json:"result,omitempty"`
	Err    string `json:"err,omitempty"`
	// NotFound is the name in a *plugin.NotFoundError in Err's chain.
	NotFound string `json:"notFound,omitempty"`
}

// child runs `encrypt RECIPIENT HEXKEY` or `decrypt RECIPIENT FILE` through
// sops's age key source as sops does (MasterKeyFromRecipient, then Encrypt,
// or SetEncryptedDataKey and Decrypt with the identities sops loads from
// its environment), with sops's loggers at info level (`sops --verbose`),
// and prints a childOut.
func child(args []string) int {
	logging.SetLevel(logrus.InfoLevel)
	var out childOut
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		out.TTY = true
		f.Close()
	}
	err := func() error {
		if len(args) != 3 {
			return fmt.Errorf("child: want OP RECIPIENT ARG, got %q", args)
		}
		key, err := sopsage.MasterKeyFromRecipient(args[1])
		if err != nil {
			return err
		}
		switch args[0] {
		case "encrypt":
			dataKey, err := hex.DecodeString(args[2])
			if err != nil {
				return err
			}
			if err := key.Encrypt(dataKey); err != nil {
				return err
			}
			out.Result = string(key.EncryptedDataKey())
		case "decrypt":
			enc, err := os.ReadFile(args[2])
			if err != nil {
				return err
			}
			key.SetEncryptedDataKey(enc)
			dataKey, err := key.Decrypt()
			if err != nil {
				return err
			}
			out.Result = hex.EncodeToString(dataKey)
		default:
			return fmt.Errorf("child: unknown op %q", args[0])
		}
		return nil
	}()
	if err != nil {
		out.Err = err.Error()
		if nf := (*plugin.NotFoundError)(nil); errors.As(err, &nf) {
			out.NotFound = nf.Name
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// sopsResult is one sops operation run in a child.
type sopsResult struct {
	childOut
	stderr  string
	elapsed time.Duration
}

// prompts counts the plugin questions age's terminal UI failed to ask.
func (r sopsResult) prompts() int { return strings.Count(r.stderr, promptFailed) }

// runSops runs op (encrypt or decrypt) in a child process: this test
// binary, in a new session (no controlling terminal, so age's terminal UI
// cannot open /dev/tty), stdin /dev/null, with HOME and XDG_CONFIG_HOME in
// an empty directory (sops reads ~/.ssh/id_* and ~/.config/sops/age/keys.txt),
// cleanEnv plus env, PATH the built tools first,
// and AGEDEBUG=plugin (so the plugin's stderr, where the race detector
// reports, reaches the child's). It kills the process group after
// hardTimeout and fails the test then.
func runSops(t *testing.T, env []string, op, recipient, arg string) sopsResult {
	t.Helper()
	dir := needTools(t)
	home := t.TempDir()
	base := append(cleanEnv(), childEnv+"=1", "AGEDEBUG=plugin", "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], op, recipient, arg)
	cmd.Env = append(base, env...) // later entries win
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := sopsResult{stderr: stderr.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("sops %s to %s hung: killed after %v; stderr:\n%s", op, recipient, hardTimeout, r.stderr)
	}
	if err != nil {
		t.Fatalf("sops %s child: %v; stderr:\n%s", op, err, r.stderr)
	}
	if err := json.Unmarshal(stdout.Bytes(), &r.childOut); err != nil {
		t.Fatalf("sops %s child printed %q: %v; stderr:\n%s", op, stdout.String(), err, r.stderr)
	}
	if r.TTY {
		t.Fatal("the sops child could open /dev/tty: the no-terminal checks would prove nothing")
	}
	for _, bad := range []string{"DATA RACE", "panic:"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("sops %s: %q on stderr:\n%s", op, bad, r.stderr)
		}
	}
	return r
}

// encrypt encrypts dataKey to recipient with sops and returns the armored
// age file sops stores; it fails the test on an error, a plugin question
// or a slow plugin.
func encrypt(t *testing.T, env []string, recipient string, dataKey []byte) string {
	t.Helper()
	r := runSops(t, env, "encrypt", recipient, hex.EncodeToString(dataKey))
	if r.Err != "" {
		t.Fatalf("sops encrypt to %s: %s\nstderr:\n%s", recipient, r.Err, r.stderr)
	}
	noQuestions(t, r)
	return r.Result
}

// decrypt decrypts enc (made for recipient) with sops and the identities
// env gives it.
func decrypt(t *testing.T, env []string, recipient, enc string) sopsResult {
	t.Helper()
	f := filepath.Join(t.TempDir(), "enc.age")
	if err := os.WriteFile(f, []byte(enc), 0o600); err != nil {
		t.Fatal(err)
	}
	return runSops(t, env, "decrypt", recipient, f)
}

// decrypts checks that sops decrypts enc to dataKey without a plugin
// question and without waiting on the plugin.
func decrypts(t *testing.T, env []string, recipient, enc string, dataKey []byte) {
	t.Helper()
	r := decrypt(t, env, recipient, enc)
	if r.Err != "" {
		t.Fatalf("sops decrypt: %s\nstderr:\n%s", r.Err, r.stderr)
	}
	if r.Result != hex.EncodeToString(dataKey) {
		t.Fatalf("sops decrypted %s, want %x", r.Result, dataKey)
	}
	noQuestions(t, r)
}

// failsQuickly checks that sops's operation failed, within quick, with an
// error that came from the hsmenv plugin and contains each of want.
func failsQuickly(t *testing.T, what string, r sopsResult, want ...string) {
	t.Helper()
	if r.Err == "" {
		t.Fatalf("%s: sops succeeded (%.40s...)", what, r.Result)
	}
	if r.elapsed > quick {
		t.Fatalf("%s: the error took %v (> %v): %s", what, r.elapsed, quick, r.Err)
	}
	for _, w := range append([]string{"hsmenv plugin"}, want...) {
		if !strings.Contains(r.Err, w) {
			t.Fatalf("%s: error %q does not contain %q\nstderr:\n%s", what, r.Err, w, r.stderr)
		}
	}
	t.Logf("%s: %v: %s", what, r.elapsed.Round(time.Millisecond), r.Err)
}

func noQuestions(t *testing.T, r sopsResult) {
	t.Helper()
	if n := r.prompts(); n != 0 {
		t.Fatalf("the plugin asked %d question(s) through age's terminal UI:\n%s", n, r.stderr)
	}
	if strings.Contains(r.stderr, waiting) {
		t.Fatalf("sops waited on the plugin for more than 5 s (%v):\n%s", r.elapsed, r.stderr)
	}
}

// stanzaTypes returns the types of the recipient stanzas of the armored age
// file enc.
func stanzaTypes(t *testing.T, enc string) []string {
	t.Helper()
	br := bufio.NewReader(armor.NewReader(strings.NewReader(enc)))
	var types []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the age header sops wrote: %v", err)
		}
		if strings.HasPrefix(line, "---") {
			return types
		}
		if s, ok := strings.CutPrefix(line, "-> "); ok {
			types = append(types, strings.Fields(s)[0])
		}
	}
}

// tools are the binaries the tests build once: age-plugin-hsmenv and the
// hsmenv CLI from this checkout, with -race, in dir; age v1.3.2's
// age-plugin-tag (filippo.io/age/extra/age-plugin-tag, a tool of this
// module) in tagDir.
var tools struct {
	once        sync.Once
	base        string
	dir, tagDir string
	err         error
}

func buildTools() error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	if tools.base, err = os.MkdirTemp("", "hsmenv-sops-"); err != nil {
		return err
	}
	tools.dir, tools.tagDir = filepath.Join(tools.base, "bin"), filepath.Join(tools.base, "tag")
	for _, d := range []string{tools.dir, tools.tagDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	builds := []*exec.Cmd{
		exec.Command("go", "build", "-race", "-o", tools.dir+"/", "./cmd/age-plugin-hsmenv", "./cmd/hsmenv"),
		exec.Command("go", "build", "-o", tools.tagDir+"/", "filippo.io/age/extra/age-plugin-tag"),
	}
	builds[0].Dir = root // the main module's own build list
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, c := range builds {
		wg.Go(func() {
			if out, err := c.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s (in %s): %v\n%s", strings.Join(c.Args, " "), c.Dir, err, out)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// needTools builds the tools (once) and returns the directory of
// age-plugin-hsmenv and hsmenv.
func needTools(t *testing.T) string {
	t.Helper()
	tools.once.Do(func() { tools.err = buildTools() })
	if tools.err != nil {
		t.Fatal(tools.err)
	}
	return tools.dir
}

// run runs a built tool with env added to cleanEnv, and
// returns its stdout and stderr; a failure fails the test.
func run(t *testing.T, env []string, name string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(needTools(t), name), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// cleanEnv is the test's environment without the variables that would
// change what sops, age, the plugin or SoftHSM2 do (SOPS_*, HSMENV_*,
// AGEDEBUG, SOFTHSM2_CONF), and with GORACE's atexit_sleep_ms=0: the race
// runtime's default 1 s sleep at exit would add a second to every run of
// the race-enabled child and plugin.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SOPS_") || strings.HasPrefix(name, "HSMENV_") ||
			name == "AGEDEBUG" || name == "SOFTHSM2_CONF" || name == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// keygen makes a key with `hsmenv keygen --key URI --type typ`.
func keygen(t *testing.T, env []string, uri, typ string) {
	t.Helper()
	run(t, env, "hsmenv", "keygen", "--key", uri, "--type", typ)
}

// identity is an identity file written by `age-plugin-hsmenv --generate`.
type identity struct {
	path string
	text string
	// recipient is the "# recipient:" line's; compat the "# recipient for
	// age < 1.3 and sops:" line's (EC keys only).
	recipient, compat string
	// line is the AGE-PLUGIN-HSMENV-1 identity string.
	line string
}

const (
	recipientPrefix = "# recipient: "
	compatPrefix    = "# recipient for age < 1.3 and sops: "
)

// generate writes the identity file of the key uri with
// `age-plugin-hsmenv --generate --key URI -o FILE` and checks its form: mode
// 0600, one identity line, a "# recipient:" line that stderr's "Public key:"
// repeats, and a compat line exactly for EC keys.
func generate(t *testing.T, env []string, uri string, ec bool) *identity {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identity.txt")
	_, stderr := run(t, env, "age-plugin-hsmenv", "--generate", "--key", uri, "-o", path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id := &identity{path: path, text: string(b)}
	for l := range strings.Lines(id.text) {
		l = strings.TrimSuffix(l, "\n")
		switch {
		case strings.HasPrefix(l, recipientPrefix):
			id.recipient = strings.TrimPrefix(l, recipientPrefix)
		case strings.HasPrefix(l, compatPrefix):
			id.compat = strings.TrimPrefix(l, compatPrefix)
		case strings.HasPrefix(l, "AGE-PLUGIN-HSMENV-1"):
			if id.line != "" {
				t.Fatalf("two identities in %s:\n%s", path, id.text)
			}
			id.line = l
		case strings.HasPrefix(l, "#") || l == "":
		default:
			t.Fatalf("unexpected line %q in the identity file", l)
		}
	}
	wantRecipient := "age1hsmenv1"
	if ec {
		wantRecipient = "age1tag1"
	}
	if id.line == "" || !strings.HasPrefix(id.recipient, wantRecipient) {
		t.Fatalf("identity file of %s (want a %s... recipient):\n%s", uri, wantRecipient, id.text)
	}
	if ec != strings.HasPrefix(id.compat, "age1hsmenv1") || ec != (id.compat != "") {
		t.Fatalf("identity file of %s: compat recipient %q, want one exactly for EC keys:\n%s", uri, id.compat, id.text)
	}
	if !strings.Contains(stderr, "Public key: "+id.recipient) {
		t.Fatalf("--generate -o printed %q, want Public key: %s", stderr, id.recipient)
	}
	return id
}

// moveAway renames dir and leaves an empty directory in its place; the
// returned function puts it back.
func moveAway(t *testing.T, dir string) func() {
	t.Helper()
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	back := func() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Rename(away, dir); err != nil {
			t.Fatal(err)
		}
	}
	return back
}
