// Package kubernetes_test drives `hsmenv kms-plugin` through the
// kube-apiserver's own KMS v2 envelope transformer, used as a library
// (k8s.io/apiserver v0.37.2: encryptionconfig.LoadEncryptionConfig on a
// real EncryptionConfiguration file, then the transformer the apiserver
// picks for Secrets). The plugin is the hsmenv CLI from this checkout, built
// with -race and run as a subprocess on real SoftHSM2 tokens and swtpm
// TPMs: nothing of the plugin, the token or the TPM is mocked.
//
// It is a module of its own so that the main module does not depend on
// k8s.io/apiserver and what it pulls in; `make test` runs it.
//
// What the apiserver's transformer does (v0.37.2, read in
// pkg/server/options/encryptionconfig and envelope/kmsv2), which the tests
// rely on:
//   - LoadEncryptionConfig primes each KMS v2 provider inline: Status, then
//     (the key_id being new) one Encrypt of a fresh 32-byte seed. Every write
//     after that derives a data key from that seed (HKDF, extended nonce):
//     no plugin call per write.
//   - The stored value is "k8s:enc:kms:v2:NAME:" and a protobuf
//     EncryptedObject (key_id, the plugin's ciphertext of the seed, the data).
//   - A read looks the seed up in a cache keyed by the encrypted seed (the
//     seed of the transformer's own writes is in it); a miss costs one
//     Decrypt. A read is reported stale when the stored key_id differs from
//     the key_id of the transformer's current seed.
//   - The key_id is re-checked by the probe behind the "kms-providers"
//     health check: Status (and on a new key_id one Encrypt), at most once
//     per 20 s after a success (3 s after a failure) when the health check is
//     called, and by a background poll every minute (10 s while failing). The
//     intervals are unexported constants; the tests call the health check
//     (EncryptionConfiguration.HealthChecks, as /healthz does) until the
//     change shows.
package kubernetes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"k8s.io/apiserver/pkg/storage/value"
	kmstypes "k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2/v2"
	kmsapi "k8s.io/kms/apis/v2"
)

const (
	// storagePrefix is what the KMS v2 transformer puts before its
	// EncryptedObject, followed by the provider's name and a colon.
	storagePrefix = "k8s:enc:kms:v2:"
	// kmsTimeout is the EncryptionConfiguration's timeout for each call.
	kmsTimeout = 3 * time.Second
	// startTimeout bounds a plugin's start (opening the keys and the
	// start-up wrap of a test seed included).
	startTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop.
	stopTimeout = 15 * time.Second
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// tools is the hsmenv CLI of this checkout, built once with -race.
var tools struct {
	once sync.Once
	dir  string
	err  error
}

// hsmenvBin builds the CLI (once) and returns its path.
func hsmenvBin(t testing.TB) string {
	t.Helper()
	tools.once.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			tools.err = err
			return
		}
		if tools.dir, tools.err = os.MkdirTemp("", "hsmenv-k8s-bin-"); tools.err != nil {
			return
		}
		c := exec.Command("go", "build", "-race", "-o", filepath.Join(tools.dir, "hsmenv"), "./cmd/hsmenv")
		c.Dir = root // the main module's own build list
		if out, err := c.CombinedOutput(); err != nil {
			tools.err = fmt.Errorf("go build ./cmd/hsmenv (in %s): %v\n%s", root, err, out)
		}
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
	return filepath.Join(tools.dir, "hsmenv")
}

// cleanEnv is the test's environment without the variables that would
// change what hsmenv or SoftHSM2 do, and with GORACE's atexit_sleep_ms=0
// (the race runtime's default 1 s sleep at exit would slow every stop).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "HSMENV_") || name == "SOFTHSM2_CONF" || name == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// run runs the CLI with env added to cleanEnv and returns its stdout; a
// failure fails the test.
func run(t testing.TB, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hsmenvBin(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hsmenv %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// shortDir is a temporary directory with a short path (unix socket paths
// are limited to 107 bytes, and t.TempDir's carry the test's name).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "k8skms-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// logLine is one JSON line the plugin writes on stderr.
type logLine struct {
	Msg       string   `json:"msg"`
	Level     string   `json:"level"`
	Method    string   `json:"method"`
	KeyID     string   `json:"key_id"`
	LatencyMS *float64 `json:"latency_ms"`
	Outcome   string   `json:"outcome"`
	Socket    string   `json:"socket"`
}

// stderrLog collects a plugin's standard error, line by line.
type stderrLog struct {
	mu      sync.Mutex
	text    strings.Builder
	lines   []logLine
	partial []byte
	changed chan struct{} // closed and replaced on every new line
}

func newStderrLog() *stderrLog { return &stderrLog{changed: make(chan struct{})} }

func (l *stderrLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var ll logLine
		if json.Unmarshal(l.partial[:i], &ll) == nil && ll.Msg != "" {
			l.lines = append(l.lines, ll)
		}
		l.partial = l.partial[i+1:]
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

func (l *stderrLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

// calls returns the "kms" lines of method.
func (l *stderrLog) calls(method string) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, ll := range l.lines {
		if ll.Msg == "kms" && ll.Method == method {
			out = append(out, ll)
		}
	}
	return out
}

// waitFor waits until a line satisfies ok, or the process ended (exited is
// closed), or timeout; it returns the line.
func (l *stderrLog) waitFor(exited <-chan struct{}, timeout time.Duration, ok func(logLine) bool) (logLine, bool) {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for _, ll := range l.lines {
			if ok(ll) {
				l.mu.Unlock()
				return ll, true
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-exited:
			return logLine{}, false
		case <-deadline:
			return logLine{}, false
		}
	}
}

// plugin is one `hsmenv kms-plugin` process.
type plugin struct {
	t      testing.TB
	socket string
	args   []string
	env    []string
	keyID  string // from the "listening" line
	log    *stderrLog
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// startPlugin starts `hsmenv kms-plugin --listen unix://SOCKET ARGS...` with
// env added to cleanEnv, and waits for its "listening" line (the contract's)
// and for the socket. It is stopped with SIGTERM when the test ends, which
// must end it with status 0 and remove the socket.
func startPlugin(t testing.TB, socket string, env []string, args ...string) *plugin {
	t.Helper()
	p := &plugin{t: t, socket: socket, args: args, env: env}
	p.start()
	t.Cleanup(func() {
		if p.running() {
			p.stop()
		}
	})
	return p
}

func (p *plugin) start() {
	p.t.Helper()
	p.log = newStderrLog()
	p.exited = make(chan struct{})
	args := append([]string{"kms-plugin", "--listen", "unix://" + p.socket}, p.args...)
	p.cmd = exec.Command(hsmenvBin(p.t), args...)
	p.cmd.Env = append(cleanEnv(), p.env...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting hsmenv kms-plugin: %v", err)
	}
	go func(cmd *exec.Cmd, exited chan struct{}) {
		p.err = cmd.Wait()
		close(exited)
	}(p.cmd, p.exited)
	ll, ok := p.log.waitFor(p.exited, startTimeout, func(ll logLine) bool { return ll.Msg == "listening" })
	if !ok {
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("hsmenv %s: no \"listening\" line within %v (exit: %v); stderr:\n%s", strings.Join(args, " "), startTimeout, p.err, p.log)
	}
	if ll.Socket != p.socket {
		p.t.Errorf("the listening line names socket %q, want %q", ll.Socket, p.socket)
	}
	fi, err := os.Stat(p.socket)
	if err != nil {
		p.t.Fatalf("plugin said it listens, but: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		p.t.Errorf("socket %s: mode %v, want a socket with mode 0600", p.socket, fi.Mode())
	}
	if !strings.HasPrefix(ll.KeyID, "hsmenv-") || len(ll.KeyID) != len("hsmenv-")+32 {
		p.t.Errorf("key_id %q is not hsmenv- and 32 hex digits", ll.KeyID)
	}
	p.keyID = ll.KeyID
}

// refused runs `hsmenv kms-plugin --listen unix://SOCKET ARGS...`, which
// must exit with status 1 and one line on stderr within startTimeout; it
// returns that line.
func refused(t testing.TB, socket string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args = append([]string{"kms-plugin", "--listen", "unix://" + socket}, args...)
	cmd := exec.CommandContext(ctx, hsmenvBin(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("hsmenv %s: %v, want exit status 1; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("hsmenv %s: stderr %q, want one line", strings.Join(args, " "), msg)
	}
	return msg
}

func (p *plugin) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and checks the graceful stop: exit status 0 within
// stopTimeout, the socket removed, no race or panic reported.
func (p *plugin) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("kms-plugin did not stop within %v of SIGTERM; stderr:\n%s", stopTimeout, p.log)
		return
	}
	if p.err != nil {
		p.t.Errorf("kms-plugin after SIGTERM: %v, want exit status 0; stderr:\n%s", p.err, p.log)
	}
	if _, err := os.Lstat(p.socket); !errors.Is(err, os.ErrNotExist) {
		p.t.Errorf("socket %s still there after SIGTERM (%v)", p.socket, err)
	}
	p.checkLog()
}

// kill ends the plugin with SIGKILL, as a crash or an OOM kill would.
func (p *plugin) kill() {
	p.t.Helper()
	p.cmd.Process.Kill()
	<-p.exited
	p.checkLog()
}

// checkLog fails the test on a race, a panic or key material in the log.
func (p *plugin) checkLog() {
	p.t.Helper()
	s := p.log.String()
	for _, bad := range []string{"DATA RACE", "panic:"} {
		if strings.Contains(s, bad) {
			p.t.Errorf("kms-plugin: %q on stderr:\n%s", bad, s)
		}
	}
}

// count is the number of kms lines of method with outcome ok.
func (p *plugin) count(method string) int {
	n := 0
	for _, ll := range p.log.calls(method) {
		if ll.Outcome == "ok" {
			n++
		}
	}
	return n
}

// status calls the plugin's Status over its socket with the KMS v2 gRPC
// client, as the apiserver does.
func (p *plugin) status(t testing.TB) (*kmsapi.StatusResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+p.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kmsTimeout)
	defer cancel()
	return kmsapi.NewKeyManagementServiceClient(conn).Status(ctx, &kmsapi.StatusRequest{})
}

// apiserver is the encryption side of one kube-apiserver: the transformer
// its storage uses for Secrets, built from an EncryptionConfiguration file
// with a KMS v2 provider at a plugin's socket and identity after it.
type apiserver struct {
	name   string // the KMS provider's name
	cfg    *encryptionconfig.EncryptionConfiguration
	tr     value.Transformer
	cancel context.CancelFunc
}

// encryptionConfig is the file a control-plane node's kube-apiserver gets
// with --encryption-provider-config.
const encryptionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - kms:
          apiVersion: v2
          name: %s
          endpoint: unix://%s
          timeout: %s
      - identity: {}
`

// newAPIServer loads the EncryptionConfiguration for provider name at
// socket, as kube-apiserver does at start-up (which primes the provider:
// Status, then one Encrypt), and returns the transformer for Secrets. Its
// goroutines stop when the test ends.
func newAPIServer(t testing.TB, name, socket string) *apiserver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "encryption-config.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, encryptionConfig, name, socket, kmsTimeout), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg, err := encryptionconfig.LoadEncryptionConfig(ctx, path, false, "apiserver-"+randHex(4))
	if err != nil {
		t.Fatalf("LoadEncryptionConfig: %v", err)
	}
	if len(cfg.HealthChecks) != 1 || cfg.HealthChecks[0].Name() != "kms-providers" {
		t.Fatalf("LoadEncryptionConfig returned %d health checks, want the one kms-providers check", len(cfg.HealthChecks))
	}
	a := &apiserver{name: name, cfg: cfg, cancel: cancel}
	a.tr = encryptionconfig.StaticTransformers(cfg.Transformers).TransformerForResource(schema.GroupResource{Resource: "secrets"})
	return a
}

// health runs the apiserver's kms-providers health check (what /healthz
// and /readyz run), which is also what makes it notice a new key_id.
func (a *apiserver) health() error {
	req := httptest.NewRequest(http.MethodGet, "/healthz/kms-providers", nil)
	ctx, cancel := context.WithTimeout(req.Context(), 2*kmsTimeout)
	defer cancel()
	return a.cfg.HealthChecks[0].Check(req.WithContext(ctx))
}

// secretKey is the etcd key of a Secret, which the apiserver authenticates
// with its value.
func secretKey(ns, name string) string { return "/registry/secrets/" + ns + "/" + name }

// write encrypts a Secret's bytes as the apiserver's storage does before a
// write to etcd.
func (a *apiserver) write(t testing.TB, key string, plain []byte) []byte {
	t.Helper()
	stored, err := a.tr.TransformToStorage(context.Background(), plain, value.DefaultContext(key))
	if err != nil {
		t.Fatalf("apiserver %s: TransformToStorage %s: %v", a.name, key, err)
	}
	return stored
}

// read decrypts what the storage holds at key.
func (a *apiserver) read(key string, stored []byte) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*kmsTimeout)
	defer cancel()
	return a.tr.TransformFromStorage(ctx, stored, value.DefaultContext(key))
}

// mustRead reads key and checks the value and whether it is stale.
func (a *apiserver) mustRead(t testing.TB, key string, stored, want []byte, wantStale bool) {
	t.Helper()
	got, stale, err := a.read(key, stored)
	if err != nil {
		t.Fatalf("apiserver %s: TransformFromStorage %s: %v", a.name, key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("apiserver %s: %s read back as %q, want %q", a.name, key, got, want)
	}
	if stale != wantStale {
		t.Fatalf("apiserver %s: %s read back with stale=%v, want %v", a.name, key, stale, wantStale)
	}
}

// decode checks the stored form of a Secret (the KMS v2 prefix with the
// provider's name, no plaintext) and returns its EncryptedObject.
func decode(t testing.TB, name string, stored, plain []byte) *kmstypes.EncryptedObject {
	t.Helper()
	prefix := storagePrefix + name + ":"
	if !bytes.HasPrefix(stored, []byte(prefix)) {
		t.Fatalf("stored value %.60q does not start with %q", stored, prefix)
	}
	if bytes.Contains(stored, plain) {
		t.Fatal("the stored value holds the plaintext")
	}
	var o kmstypes.EncryptedObject
	if err := proto.Unmarshal(stored[len(prefix):], &o); err != nil {
		t.Fatalf("stored value: not an EncryptedObject: %v", err)
	}
	if o.EncryptedDEKSourceType != kmstypes.EncryptedDEKSourceType_HKDF_SHA256_XNONCE_AES_GCM_SEED {
		t.Errorf("stored value: DEK source type %v, want a seed", o.EncryptedDEKSourceType)
	}
	if len(o.Annotations) != 0 {
		t.Errorf("stored value: annotations %v; the contract says none", o.Annotations)
	}
	return &o
}

// secret is a Secret's serialized form, with a random password: the
// plaintext the apiserver hands its transformer.
type secret struct {
	key   string
	plain []byte
}

func newSecret(ns, name string) secret {
	return secret{
		key: secretKey(ns, name),
		plain: fmt.Appendf(nil, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"data":{"password":%q}}`,
			name, ns, randHex(16)),
	}
}

// stored is a Secret as etcd holds it.
type stored struct {
	secret
	value []byte
}

// writeSecrets writes n new Secrets named prefix-0... through a.
func writeSecrets(t testing.TB, a *apiserver, prefix string, n int) []stored {
	t.Helper()
	out := make([]stored, n)
	for i := range out {
		s := newSecret("ns-"+prefix, fmt.Sprintf("%s-%d", prefix, i))
		out[i] = stored{s, a.write(t, s.key, s.plain)}
	}
	return out
}

// keyIDOf returns the key_id a stored Secret was written under.
func keyIDOf(t testing.TB, name string, s stored) string {
	t.Helper()
	return decode(t, name, s.value, s.plain).KeyID
}

// eventually calls f every interval until it returns nil or timeout passed;
// it returns f's last error.
func eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeFile writes b to a new file in t's temporary directory.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var _ io.Writer = (*stderrLog)(nil)
