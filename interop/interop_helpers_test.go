package interop_test

// Fixtures and the driver of interop/esdk.js for the interop tests.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

const (
	// esdkJS is the driver, relative to this package's directory (go test
	// runs in it).
	esdkJS = "esdk.js"
	// clientPkg proves that `npm ci --prefix interop` ran.
	clientPkg = "node_modules/@aws-crypto/client-node/package.json"
	vectors   = "../testdata/esdk"
	namespace = "hsmenv-interop"
	// nodeTimeout bounds one node run.
	nodeTimeout = 60 * time.Second
)

// node is the located node binary, or why there is none.
var node struct {
	once    sync.Once
	path    string
	version string
	client  string // @aws-crypto/client-node version
	missing string
}

// needNode returns the node binary. Without node or interop/node_modules the
// test fails when the environment variable CI is set, and is skipped
// otherwise.
func needNode(t *testing.T) string {
	t.Helper()
	node.once.Do(func() {
		p, err := exec.LookPath("node")
		if err != nil {
			node.missing = "node (Node.js) is not on PATH"
			return
		}
		b, err := os.ReadFile(clientPkg)
		if err != nil {
			node.missing = fmt.Sprintf("the JS ESDK is not installed (%v); run `npm ci --prefix interop`", err)
			return
		}
		var pkg struct{ Version string }
		if json.Unmarshal(b, &pkg) != nil || pkg.Version == "" {
			node.missing = clientPkg + " has no version: reinstall with `npm ci --prefix interop`"
			return
		}
		if _, err := os.Stat(esdkJS); err != nil {
			node.missing = fmt.Sprintf("the driver is missing: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil {
			node.missing = fmt.Sprintf("%s --version: %v", p, err)
			return
		}
		node.path, node.version, node.client = p, strings.TrimSpace(string(out)), pkg.Version
	})
	if node.missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("interop with the AWS Encryption SDK for JavaScript cannot run: %s (CI is set, so this fails instead of skipping)", node.missing)
		}
		t.Skipf("skipping interop with the AWS Encryption SDK for JavaScript: %s (with CI set this is a failure)", node.missing)
	}
	return node.path
}

// nodeSlots bounds concurrent node processes: each takes a core for its
// ~0.3-0.7 s of start-up and work.
var nodeSlots = make(chan struct{}, max(1, min(runtime.NumCPU(), 4)))

// nodeStats counts the node runs and their total wall time, for the log.
var nodeStats struct {
	runs  atomic.Int64
	nanos atomic.Int64
}

// jsResult is what `esdk.js decrypt` prints.
type jsResult struct {
	Context map[string]string `json:"context"`
	Suite   string            `json:"suite"`
}

// jsError is a failed esdk.js run: its one stderr line.
type jsError struct {
	op     string
	err    error
	stderr string
}

func (e *jsError) Error() string {
	return fmt.Sprintf("node esdk.js %s: %v: %s", e.op, e.err, e.stderr)
}

// runJS runs `node [nodeArgs] esdk.js op SPEC IN OUT` with spec and in, and
// returns OUT (and for decrypt the printed result). On failure it checks the
// driver's contract (exit status 1, one stderr line, no OUT) and returns a
// *jsError.
func runJS(t *testing.T, op string, spec jsSpec, in []byte, nodeArgs ...string) ([]byte, jsResult, error) {
	t.Helper()
	bin := needNode(t)
	dir := t.TempDir()
	specPath := filepath.Join(dir, "spec.json")
	inPath := filepath.Join(dir, "in")
	outPath := filepath.Join(dir, "out")
	sb, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specPath, sb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, in, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	args := append(append([]string(nil), nodeArgs...), esdkJS, op, specPath, inPath, outPath)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	nodeSlots <- struct{}{}
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	<-nodeSlots
	nodeStats.runs.Add(1)
	nodeStats.nanos.Add(int64(d))
	if ctx.Err() != nil {
		t.Fatalf("node esdk.js %s timed out after %v", op, nodeTimeout)
	}
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("running node: %v", err)
		}
		line := strings.TrimSpace(stderr.String())
		if exit.ExitCode() != 1 || line == "" || strings.Contains(line, "\n") {
			t.Errorf("esdk.js %s broke its failure contract: exit %d, stderr %q", op, exit.ExitCode(), stderr.String())
		}
		if _, serr := os.Stat(outPath); serr == nil {
			t.Errorf("esdk.js %s failed but left its output file behind", op)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".out.tmp-*")); len(left) > 0 {
			t.Errorf("esdk.js %s failed but left a temporary file behind: %v", op, left)
		}
		return nil, jsResult{}, &jsError{op: op, err: err, stderr: line}
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatalf("esdk.js %s succeeded without an output file: %v", op, err)
	}
	var res jsResult
	if op == "decrypt" {
		// The last line: with --security-revert Node prints a warning line
		// to stdout before it.
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		last := lines[len(lines)-1]
		dec := json.NewDecoder(strings.NewReader(last))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil || res.Suite == "" || res.Context == nil {
			t.Fatalf("esdk.js decrypt printed %q: %v", stdout.String(), err)
		}
	} else if stdout.Len() > 0 {
		t.Errorf("esdk.js encrypt printed %q", stdout.String())
	}
	return out, res, nil
}

// jsSpec is the SPEC.json of esdk.js.
type jsSpec struct {
	Keyrings    []map[string]any  `json:"keyrings"`
	Suite       string            `json:"suite,omitempty"`
	FrameLength int               `json:"frameLength,omitempty"`
	Context     map[string]string `json:"context,omitempty"`
	Stream      bool              `json:"stream,omitempty"`
	// CommitmentPolicy, if set, is the JS client's policy
	// (FORBID_ENCRYPT_ALLOW_DECRYPT writes legacy v1 messages).
	CommitmentPolicy string `json:"commitmentPolicy,omitempty"`
}

// keyDef is one key both sides hold: an esdk.js keyring and an hsmenv KEK.
type keyDef struct {
	label             string
	typ               string // "raw-aes" or "raw-rsa"
	name              string
	keyFile           string // raw-aes
	pubFile, privFile string // raw-rsa
	padding           string // raw-rsa
	kek               envelope.KEK
}

// js returns the esdk.js keyring. utf8Sorting asks the JS raw AES keyring to
// order the context of its wrapping AAD by UTF-8 bytes, as the spec and
// hsmenv do; false leaves the SDK default (localeCompare).
func (k *keyDef) js(utf8Sorting bool) map[string]any {
	m := map[string]any{"type": k.typ, "namespace": namespace, "name": k.name}
	switch k.typ {
	case "raw-aes":
		m["keyFile"] = k.keyFile
		if utf8Sorting {
			m["utf8Sorting"] = true
		}
	case "raw-rsa":
		m["publicKeyFile"], m["privateKeyFile"], m["padding"] = k.pubFile, k.privFile, k.padding
	}
	return m
}

// fixture holds the keys of every test, made once.
type fixture struct {
	dir  string
	keys map[string]*keyDef
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

// keys returns the shared keys: AES-128/192/256 made fresh, the RSA-3072
// pair of the vectors and a fresh RSA-2048 pair, under every padding.
func keys(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = makeFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func makeFixture() (*fixture, error) {
	dir, err := os.MkdirTemp("", "hsmenv-interop-")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir, keys: map[string]*keyDef{}}
	for _, n := range []int{16, 24, 32} {
		key := make([]byte, n)
		rand.Read(key)
		name := fmt.Sprintf("aes%d", n*8)
		path := filepath.Join(dir, name+".key")
		if err := os.WriteFile(path, key, 0o600); err != nil {
			return nil, err
		}
		kek, err := rawaes.New(namespace, name, key)
		if err != nil {
			return nil, err
		}
		f.keys[name] = &keyDef{label: name, typ: "raw-aes", name: name, keyFile: path, kek: kek}
	}

	// RSA-3072: the vectors' pair. RSA-2048: a fresh one.
	abs, err := filepath.Abs(vectors)
	if err != nil {
		return nil, err
	}
	pairs := map[string][2]string{
		"rsa3072": {filepath.Join(abs, "rsa3072.pub.pem"), filepath.Join(abs, "rsa3072.priv.pem")},
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	derPub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	p2048 := [2]string{filepath.Join(dir, "rsa2048.pub.pem"), filepath.Join(dir, "rsa2048.priv.pem")}
	if err := os.WriteFile(p2048[0], pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: derPub}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p2048[1], pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8}), 0o600); err != nil {
		return nil, err
	}
	pairs["rsa2048"] = p2048
	for _, c := range []struct{ pair, padding string }{
		{"rsa3072", "oaep-sha1"}, {"rsa2048", "oaep-sha256"}, {"rsa3072", "oaep-sha384"},
		{"rsa2048", "oaep-sha512"}, {"rsa3072", "pkcs1"},
	} {
		files := pairs[c.pair]
		pub, err := rawrsa.ReadPublicKey(files[0])
		if err != nil {
			return nil, err
		}
		pk, err := rawrsa.ReadPrivateKey(files[1])
		if err != nil {
			return nil, err
		}
		padding, err := rawrsa.ParsePadding(c.padding)
		if err != nil {
			return nil, err
		}
		// Each padding gets its own key name, so a message names exactly
		// one padding.
		name := c.pair + "-" + c.padding
		kek, err := rawrsa.New(namespace, name, pub, pk, padding)
		if err != nil {
			return nil, err
		}
		f.keys[c.padding] = &keyDef{label: c.padding, typ: "raw-rsa", name: name, pubFile: files[0], privFile: files[1], padding: c.padding, kek: kek}
	}
	return f, nil
}

// get returns the named keys.
func (f *fixture) get(t *testing.T, labels ...string) []*keyDef {
	t.Helper()
	var out []*keyDef
	for _, l := range labels {
		k, ok := f.keys[l]
		if !ok {
			t.Fatalf("no key %q", l)
		}
		out = append(out, k)
	}
	return out
}

// jsKeyrings returns the esdk.js keyrings of keys.
func jsKeyrings(keys []*keyDef, utf8Sorting bool) []map[string]any {
	var out []map[string]any
	for _, k := range keys {
		out = append(out, k.js(utf8Sorting))
	}
	return out
}

// hsmKeyring returns the hsmenv keyring of keys.
func hsmKeyring(t *testing.T, keys ...*keyDef) *envelope.Keyring {
	t.Helper()
	var keks []envelope.KEK
	for _, k := range keys {
		keks = append(keks, k.kek)
	}
	kr := envelope.NewKeyring(keks...)
	return kr
}

func labels(keys []*keyDef) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.label)
	}
	return strings.Join(s, "+")
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
