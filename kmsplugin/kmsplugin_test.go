package kmsplugin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"
	"k8s.io/kms/pkg/service"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/kmsplugin"
	"github.com/hsmenv/hsmenv/resolver"
)

// keys makes a SoftHSM2 token with a key of each type in types, labelled
// by its type, and returns their URIs.
func keys(t testing.TB, types ...string) (*softhsmtest.Token, []string) {
	t.Helper()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	var uris []string
	for i, kt := range types {
		u := tok.URI(kt + "-" + string(rune('a'+i)))
		if _, err := resolver.GenerateKey(context.Background(), u, kt, resolver.Options{}); err != nil {
			t.Fatal(err)
		}
		uris = append(uris, u)
	}
	return tok, uris
}

// lockedBuffer collects log output from concurrent calls.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newPlugin(t testing.TB, cfg kmsplugin.Config) (*kmsplugin.Plugin, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	p, err := kmsplugin.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

// serve runs p on a socket in a temporary directory and returns a client.
func serve(t testing.TB, p *kmsplugin.Plugin) (kmsapi.KeyManagementServiceClient, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kms.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, sock, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return kmsapi.NewKeyManagementServiceClient(conn), sock
}

func TestOverSocket(t *testing.T) {
	_, uris := keys(t, "aes-256", "ec-p256")
	p, logs := newPlugin(t, kmsplugin.Config{Keys: uris})
	client, sock := serve(t, p)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	ctx := context.Background()
	st, err := client.Status(ctx, &kmsapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthz != "ok" || st.Version != "v2" || st.KeyId != p.KeyID() || !strings.HasPrefix(st.KeyId, "hsmenv-") {
		t.Fatalf("status %+v", st)
	}
	seed := make([]byte, 32)
	rand.Read(seed)
	enc, err := client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed, Uid: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if enc.KeyId != p.KeyID() || len(enc.Ciphertext) > kmsplugin.MaxCiphertext || len(enc.Annotations) != 0 {
		t.Fatalf("encrypt: key id %q, %d bytes, %d annotations", enc.KeyId, len(enc.Ciphertext), len(enc.Annotations))
	}
	t.Logf("ciphertext of a 32-byte seed under AES-256 + EC P-256: %d bytes", len(enc.Ciphertext))
	dec, err := client.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: enc.Ciphertext, KeyId: enc.KeyId, Uid: "u2"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Plaintext, seed) {
		t.Fatal("decrypted seed differs")
	}
	// Recovery without a cluster: the ciphertext is an hsmenv message that
	// either key opens alone, under the seed context.
	for _, u := range uris {
		kek, err := resolver.OpenKEK(ctx, u, resolver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := envelope.Decrypt(ctx, enc.Ciphertext, envelope.NewKeyring(kek), envelope.DecryptOptions{
			RequiredContext: envelope.EncryptionContext{kmsplugin.ContextKey: kmsplugin.ContextValue}})
		if err != nil || !bytes.Equal(got, seed) {
			t.Fatalf("recovering with %s alone: %v", u, err)
		}
	}
	// One JSON line per call, naming method, key id, latency and outcome,
	// never the seed.
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	var methods []string
	for _, m := range lines {
		if m["msg"] != "kms" || m["key_id"] == nil || m["latency_ms"] == nil || m["outcome"] != "ok" {
			t.Fatalf("log line %v", m)
		}
		methods = append(methods, m["method"].(string))
	}
	if strings.Join(methods, ",") != "Status,Encrypt,Decrypt" {
		t.Fatalf("logged calls %v, want Status,Encrypt,Decrypt", methods)
	}
	for _, enc := range []string{hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawStdEncoding.EncodeToString(seed)} {
		if strings.Contains(logs.String(), enc) {
			t.Fatal("the seed is in the logs")
		}
	}
}

// The key id depends on the set of keys, not their order, and a
// public-key URI of a key counts as the key itself (another node's view).
func TestKeyID(t *testing.T) {
	_, uris := keys(t, "aes-256", "ec-p256", "ec-p384")
	ctx := context.Background()
	id := func(uris ...string) string {
		t.Helper()
		p, _ := newPlugin(t, kmsplugin.Config{Keys: uris})
		return p.KeyID()
	}
	a := id(uris[0], uris[1])
	if b := id(uris[1], uris[0]); a != b {
		t.Fatalf("order changed the key id: %s, %s", a, b)
	}
	if c := id(uris[0], uris[2]); c == a {
		t.Fatal("another key set has the same key id")
	}
	if d := id(uris[0]); d == a {
		t.Fatal("a subset has the same key id")
	}
	pem, err := resolver.PublicKeyPEM(ctx, uris[1], resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(pemFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	other := "raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + pemFile
	if e := id(uris[0], other); e != a {
		t.Fatalf("the EC key by its public key: key id %s, want %s", e, a)
	}
	// A different module path or PIN source (another node) is the same key.
	moved := strings.Replace(uris[0], "pin-source=", "x-max-sessions=3&pin-source=", 1)
	if f := id(moved, uris[1]); f != a {
		t.Fatalf("query attributes changed the key id: %s, want %s", f, a)
	}
}

func TestCiphertextTooLarge(t *testing.T) {
	_, uris := keys(t, "rsa-3072", "rsa-3072", "rsa-3072")
	_, err := kmsplugin.New(context.Background(), kmsplugin.Config{Keys: uris})
	if !errors.Is(err, kmsplugin.ErrConfig) || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("three RSA-3072 keys: %v", err)
	}
	if _, err := kmsplugin.New(context.Background(), kmsplugin.Config{Keys: uris[:2]}); err != nil {
		t.Fatalf("two RSA-3072 keys: %v", err)
	}
}

// Rotation: the new key first, the old one decrypt-only: old ciphertexts
// open, new ones are under the new key alone.
func TestRotation(t *testing.T) {
	_, uris := keys(t, "aes-256", "aes-256")
	ctx := context.Background()
	old, _ := newPlugin(t, kmsplugin.Config{Keys: uris[:1]})
	seed := []byte("0123456789abcdef0123456789abcdef")
	ct, err := old.Encrypt(ctx, "", seed)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := newPlugin(t, kmsplugin.Config{Keys: uris[1:], DecryptKeys: uris[:1]})
	if rotated.KeyID() == old.KeyID() {
		t.Fatal("the key id did not change with the key")
	}
	got, err := rotated.Decrypt(ctx, "", &service.DecryptRequest{Ciphertext: ct.Ciphertext, KeyID: ct.KeyID})
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}
	ct2, err := rotated.Encrypt(ctx, "", seed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Decrypt(ctx, "", &service.DecryptRequest{Ciphertext: ct2.Ciphertext, KeyID: ct2.KeyID}); err == nil {
		t.Fatal("the retired key opened a ciphertext made after rotation")
	}
	dropped, _ := newPlugin(t, kmsplugin.Config{Keys: uris[1:]})
	if _, err := dropped.Decrypt(ctx, "", &service.DecryptRequest{Ciphertext: ct.Ciphertext, KeyID: ct.KeyID}); !errors.Is(err, envelope.ErrNoKEK) {
		t.Fatalf("old ciphertext without the old key: %v", err)
	}
}

func TestDecryptRejects(t *testing.T) {
	_, uris := keys(t, "aes-256")
	ctx := context.Background()
	p, _ := newPlugin(t, kmsplugin.Config{Keys: uris})
	seed := make([]byte, 32)
	ct, err := p.Encrypt(ctx, "", seed)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := resolver.OpenKEK(ctx, uris[0], resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherContext, err := envelope.Encrypt(ctx, seed, envelope.NewKeyring(kek), envelope.EncryptOptions{Suite: envelope.SuiteCommit, Context: envelope.EncryptionContext{"purpose": "backup"}})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(ct.Ciphertext)
	flipped[len(flipped)-5] ^= 1
	for name, req := range map[string]*service.DecryptRequest{
		"bit flipped":   {Ciphertext: flipped},
		"truncated":     {Ciphertext: ct.Ciphertext[:len(ct.Ciphertext)-1]},
		"other context": {Ciphertext: otherContext},
		"too long":      {Ciphertext: make([]byte, kmsplugin.MaxCiphertext+1)},
		"empty":         {},
		"annotations":   {Ciphertext: ct.Ciphertext, Annotations: map[string][]byte{"a.example.com": {1}}},
	} {
		if got, err := p.Decrypt(ctx, "", req); err == nil || got != nil {
			t.Errorf("%s: got %d bytes, %v", name, len(got), err)
		}
	}
	for _, n := range []int{0, 513} {
		if _, err := p.Encrypt(ctx, "", make([]byte, n)); err == nil {
			t.Errorf("a %d-byte seed was encrypted", n)
		}
	}
}

// A stale socket (its plugin crashed) is replaced; a live one, or a file
// that is not a socket, is refused and left alone.
func TestSocketPath(t *testing.T) {
	_, uris := keys(t, "aes-256")
	p, _ := newPlugin(t, kmsplugin.Config{Keys: uris})
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- p.Serve(ctx, stale, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("stale socket: %v", err)
	}
	// Now it is live: a second plugin on the same path is refused.
	if err := p.Serve(context.Background(), stale, nil); !errors.Is(err, kmsplugin.ErrSocket) || !strings.Contains(err.Error(), "listening") {
		t.Fatalf("live socket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(dir, "file.sock")
	os.WriteFile(regular, []byte("keep"), 0o600)
	if err := p.Serve(context.Background(), regular, nil); !errors.Is(err, kmsplugin.ErrSocket) {
		t.Fatalf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Fatal("the regular file was replaced")
	}
	for _, bad := range []string{"", "unix://", "/path.sock", "tcp://x:1"} {
		if _, err := kmsplugin.SocketPath(bad); err == nil {
			t.Errorf("--listen %q accepted", bad)
		}
	}
}

// The token goes away (its directory moved) and comes back: Status turns
// unhealthy with a reason, and healthy again by itself.
func TestTokenGoneAndBack(t *testing.T) {
	tok, uris := keys(t, "aes-256")
	t.Setenv("SOFTHSM2_CONF", tok.Conf) // SoftHSM2 reads it again when re-initialized
	ctx := context.Background()
	p, _ := newPlugin(t, kmsplugin.Config{Keys: uris, HealthInterval: time.Millisecond})
	status := func() string {
		st, err := p.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Healthz
	}
	if h := status(); h != "ok" {
		t.Fatalf("before: %s", h)
	}
	dir := filepath.Join(tok.Dir, "tokens")
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	// SoftHSM2 may serve a call or two from memory before it notices.
	h := status()
	for deadline := time.Now().Add(5 * time.Second); h == "ok" && time.Now().Before(deadline); h = status() {
		time.Sleep(50 * time.Millisecond)
	}
	if h == "ok" || !strings.Contains(h, "primary key") {
		t.Fatalf("token away: %q", h)
	}
	t.Logf("token away: %s", h)
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for status() != "ok" {
		if time.Now().After(deadline) {
			t.Fatalf("still unhealthy 10 s after the token came back: %s", status())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A key regenerated under the same token and object labels (here: a second
// token with the same label, a new key under the same label) is another
// key: the key id changes, so the apiserver makes a new seed. The same for
// tpm:seal on another (or a cleared) TPM.
func TestKeyIDFollowsTheKey(t *testing.T) {
	ctx := context.Background()
	var ids []string
	for range 2 {
		tok := softhsmtest.New(t, softhsmtest.Options{Label: "same-label"})
		u := tok.URI("kek")
		if _, err := resolver.GenerateKey(ctx, u, "aes-256", resolver.Options{}); err != nil {
			t.Fatal(err)
		}
		p, _ := newPlugin(t, kmsplugin.Config{Keys: []string{u}})
		again, _ := newPlugin(t, kmsplugin.Config{Keys: []string{u}})
		if p.KeyID() != again.KeyID() {
			t.Fatalf("the same key has two key ids: %s, %s", p.KeyID(), again.KeyID())
		}
		ids = append(ids, p.KeyID())
	}
	if ids[0] == ids[1] {
		t.Fatalf("two AES keys under the same labels share key id %s", ids[0])
	}
	ids = ids[:0]
	for range 2 {
		sw := tpmtest.Start(t)
		u := "tpm:seal?device=" + sw.Device()
		p, _ := newPlugin(t, kmsplugin.Config{Keys: []string{u}})
		again, _ := newPlugin(t, kmsplugin.Config{Keys: []string{u}})
		if p.KeyID() != again.KeyID() {
			t.Fatalf("the same TPM has two key ids: %s, %s", p.KeyID(), again.KeyID())
		}
		ids = append(ids, p.KeyID())
		sw.Stop()
	}
	if ids[0] == ids[1] {
		t.Fatalf("tpm:seal on two TPMs shares key id %s", ids[0])
	}
}
