package kubernetes_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// softKEK makes a SoftHSM2 token with a key of typ labelled label, made
// with `hsmenv keygen`, and returns the token and the key's URI.
func softKEK(t *testing.T, label, typ string) (*softhsmtest.Token, string) {
	t.Helper()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	uri := tok.URI(label)
	run(t, tok.Env(), "keygen", "--key", uri, "--type", typ)
	return tok, uri
}

// tpmKEK starts a swtpm and makes a key file of typ on it with `hsmenv
// keygen`; it returns the key's URI.
func tpmKEK(t *testing.T, typ string) string {
	t.Helper()
	sw := tpmtest.Start(t)
	uri := "tpm:key-file=" + filepath.Join(t.TempDir(), "kek.tpmkey") + "?device=" + sw.Device()
	run(t, nil, "keygen", "--key", uri, "--type", typ)
	return uri
}

// wantCalls checks how many successful calls of method the plugin logged.
// The plugin writes a call's line before it answers, but the line reaches
// the test through a pipe: a count short of want is given a few seconds.
func wantCalls(t *testing.T, p *plugin, method string, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := p.count(method)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s: the plugin logged %d successful %s calls, want %d; stderr:\n%s", when, got, method, want, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantHealthyStatus checks the plugin's own Status over its socket.
func wantHealthyStatus(t *testing.T, p *plugin) {
	t.Helper()
	st, err := p.status(t)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Healthz != "ok" || st.Version != "v2" || st.KeyId != p.keyID {
		t.Fatalf("Status: healthz %q, version %q, key_id %q; want ok, v2, %q", st.Healthz, st.Version, st.KeyId, p.keyID)
	}
}

// 100 Secrets written through the apiserver's transformer cost the plugin
// one Encrypt (the seed's, when the apiserver starts), are stored under the
// KMS v2 prefix without their plaintext, and read back; a restarted
// apiserver reads them all with one Decrypt; and `hsmenv decrypt` recovers
// the seed from what etcd holds, without a cluster, which opens the Secret,
// as `hsmenv kms-plugin recover` does (the documented disaster recovery).
func TestHundredWritesOneEncrypt(t *testing.T) {
	t.Parallel()
	tok, uri := softKEK(t, "kek", "aes-256")
	sock := filepath.Join(shortDir(t), "kms.sock")
	p := startPlugin(t, sock, tok.Env(), "--key", uri)
	wantHealthyStatus(t, p)

	const name = "hsmenv-writes"
	a := newAPIServer(t, name, sock)
	wantCalls(t, p, "Encrypt", 1, "apiserver started")
	secrets := writeSecrets(t, a, "s", 100)
	wantCalls(t, p, "Encrypt", 1, "100 Secrets written")

	first := decode(t, name, secrets[0].value, secrets[0].plain)
	for _, s := range secrets {
		o := decode(t, name, s.value, s.plain)
		if o.KeyID != p.keyID {
			t.Fatalf("%s stored under key_id %q, the plugin's is %q", s.key, o.KeyID, p.keyID)
		}
		if !bytes.Equal(o.EncryptedDEKSource, first.EncryptedDEKSource) {
			t.Fatalf("%s stored with another encrypted seed than %s", s.key, secrets[0].key)
		}
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	if len(first.EncryptedDEKSource) > 1024 {
		t.Errorf("the plugin's ciphertext is %d bytes, over the API's 1024", len(first.EncryptedDEKSource))
	}
	// The apiserver authenticates the etcd key: a value moved to another
	// key does not read.
	if _, _, err := a.read(secretKey("ns-s", "elsewhere"), secrets[0].value); err == nil {
		t.Fatal("a Secret's stored value read back under another etcd key")
	}

	// A restarted apiserver (a new seed: one Encrypt) reads all 100 with
	// one Decrypt of the old seed, not stale (same key_id).
	b := newAPIServer(t, name, sock)
	for _, s := range secrets {
		b.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, p, "Encrypt", 2, "a second apiserver started")
	wantCalls(t, p, "Decrypt", 1, "a restarted apiserver read 100 Secrets")
	for _, ll := range p.log.calls("Encrypt") {
		if ll.KeyID != p.keyID || ll.LatencyMS == nil {
			t.Errorf("Encrypt log line with key_id %q, latency_ms %v; want %q and a latency", ll.KeyID, ll.LatencyMS, p.keyID)
		}
	}

	// Disaster recovery: the seed from etcd's bytes with the CLI alone.
	msg := writeFile(t, "seed.msg", first.EncryptedDEKSource)
	seedFile := filepath.Join(t.TempDir(), "seed")
	run(t, tok.Env(), "decrypt", "--key", uri, "--context", "kubernetes.io/kms-v2=seed", "-o", seedFile, msg)
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(seed) != 32 {
		t.Fatalf("hsmenv decrypt recovered a %d-byte seed, the apiserver's are 32", len(seed))
	}
	tr, err := aestransformer.NewHKDFExtendedNonceGCMTransformer(seed)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := tr.TransformFromStorage(context.Background(), first.EncryptedData, value.DefaultContext(secrets[0].key))
	if err != nil {
		t.Fatalf("the recovered seed does not open %s: %v", secrets[0].key, err)
	}
	if !bytes.Equal(got, secrets[0].plain) {
		t.Fatalf("the recovered seed opened %s as %q, want %q", secrets[0].key, got, secrets[0].plain)
	}
	// And `hsmenv kms-plugin recover` opens the etcd value itself.
	value0 := writeFile(t, "value.bin", secrets[1].value)
	out := filepath.Join(t.TempDir(), "secret.out")
	run(t, tok.Env(), "kms-plugin", "recover", "--key", uri, "--etcd-key", secrets[1].key, "-o", out, value0)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, secrets[1].plain) {
		t.Fatalf("hsmenv kms-plugin recover wrote %q (%v), want %q", got, err, secrets[1].plain)
	}

	p.stop()
	logged := p.log.String()
	for _, form := range []string{string(seed), hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(seed)} {
		if strings.Contains(logged, form) {
			t.Fatalf("the plugin's log holds the seed; stderr:\n%s", logged)
		}
	}
}

// Rotation as docs/kubernetes.md describes it: the plugin restarted with a
// new key first under --key and the old one under --decrypt-key. The
// running apiserver notices the new key_id at its next health check (or its
// one-minute poll) and encrypts one new seed; new writes carry the new
// key_id, old Secrets still read and are reported stale (so a storage
// migration rewrites them). A restarted apiserver reads the old Secrets
// through the --decrypt-key. Without the old key they no longer read.
func TestRotation(t *testing.T) {
	t.Parallel()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	oldKey, newKey := tok.URI("kek-2025"), tok.URI("kek-2026")
	run(t, tok.Env(), "keygen", "--key", oldKey, "--type", "aes-256")
	run(t, tok.Env(), "keygen", "--key", newKey, "--type", "ec-p256")
	sock := filepath.Join(shortDir(t), "kms.sock")

	const name = "hsmenv-rotation"
	p1 := startPlugin(t, sock, tok.Env(), "--key", oldKey)
	a := newAPIServer(t, name, sock)
	old := writeSecrets(t, a, "old", 10)
	oldID := keyIDOf(t, name, old[0])
	if oldID != p1.keyID {
		t.Fatalf("stored key_id %q, the plugin's %q", oldID, p1.keyID)
	}
	p1.stop()

	p2 := startPlugin(t, sock, tok.Env(), "--key", newKey, "--decrypt-key", oldKey)
	if p2.keyID == oldID {
		t.Fatalf("the key_id did not change with the --key set: %q", oldID)
	}
	wantHealthyStatus(t, p2)

	// The running apiserver: until it checks Status it coasts on its seed
	// (and the old key_id). It notices within 20 s of its last check
	// through the health check, within a minute by its own poll.
	start := time.Now()
	err := eventually(90*time.Second, 500*time.Millisecond, func() error {
		if err := a.health(); err != nil {
			return err
		}
		s := writeSecrets(t, a, "probe", 1)[0]
		if id := keyIDOf(t, name, s); id != p2.keyID {
			return fmt.Errorf("new Secrets are still written under key_id %q", id)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the running apiserver did not move to the new key_id %q within 90 s: %v", p2.keyID, err)
	}
	t.Logf("the running apiserver moved to the new key_id after %v", time.Since(start).Round(time.Second))
	wantCalls(t, p2, "Encrypt", 1, "the running apiserver rotated its seed")
	rotated := writeSecrets(t, a, "new", 5)
	for _, s := range rotated {
		if id := keyIDOf(t, name, s); id != p2.keyID {
			t.Fatalf("after rotation %s stored under key_id %q, want %q", s.key, id, p2.keyID)
		}
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	for _, s := range old {
		a.mustRead(t, s.key, s.value, s.plain, true)
	}
	wantCalls(t, p2, "Encrypt", 1, "5 Secrets written after rotation")

	// A restarted apiserver: its seed is under the new key_id at once;
	// the old Secrets need the old seed, which only the --decrypt-key
	// opens.
	b := newAPIServer(t, name, sock)
	wantCalls(t, p2, "Encrypt", 2, "a second apiserver started")
	for _, s := range old {
		b.mustRead(t, s.key, s.value, s.plain, true)
	}
	for _, s := range rotated {
		b.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, p2, "Decrypt", 2, "a restarted apiserver read old and rotated Secrets (one Decrypt per seed)")
	decrypts := p2.log.calls("Decrypt")
	if len(decrypts) != 2 {
		t.Fatalf("%d Decrypt lines, want 2 (both ok); stderr:\n%s", len(decrypts), p2.log)
	}
	if decrypts[0].KeyID != oldID {
		t.Errorf("the Decrypt of the old seed was logged with key_id %q, want the request's %q", decrypts[0].KeyID, oldID)
	}
	// The storage migration: read stale, write again; then nothing needs
	// the old key.
	migrated := make([]stored, len(old))
	for i, s := range old {
		migrated[i] = stored{s.secret, b.write(t, s.key, s.plain)}
		if id := keyIDOf(t, name, migrated[i]); id != p2.keyID {
			t.Fatalf("migrated %s stored under key_id %q", s.key, id)
		}
	}
	p2.stop()

	// Without the old key the old Secrets no longer read (a new
	// apiserver: no cached seed), and the plugin says why.
	p3 := startPlugin(t, sock, tok.Env(), "--key", newKey)
	if p3.keyID != p2.keyID {
		t.Fatalf("the key_id changed with the --decrypt-key set: %q, then %q", p2.keyID, p3.keyID)
	}
	c := newAPIServer(t, name, sock)
	if _, _, err := c.read(old[0].key, old[0].value); err == nil {
		t.Fatal("an old Secret read back with neither the old key under --key nor --decrypt-key")
	}
	if _, ok := p3.log.waitFor(nil, 5*time.Second, func(ll logLine) bool {
		return ll.Msg == "kms" && ll.Method == "Decrypt" && ll.Outcome != "ok" && ll.Outcome != "" && ll.KeyID == oldID
	}); !ok {
		t.Errorf("no Decrypt log line with the old key_id and the error as outcome; stderr:\n%s", p3.log)
	}
	for _, s := range migrated {
		c.mustRead(t, s.key, s.value, s.plain, false)
	}
}

// The plugin killed with SIGKILL while the apiserver reads and writes:
// writes and reads of its own seed go on (the apiserver holds the seed),
// a Secret under another seed does not read while the plugin is away, and
// the apiserver's health check fails; restarted on the same socket path (a
// stale socket left by the crash), the apiserver's gRPC client reconnects
// by itself: that Secret reads, the health check passes again.
func TestPluginKilledAndRestarted(t *testing.T) {
	t.Parallel()
	tok, uri := softKEK(t, "kek", "aes-256")
	sock := filepath.Join(shortDir(t), "kms.sock")
	p := startPlugin(t, sock, tok.Env(), "--key", uri)

	const name = "hsmenv-kill"
	// Two other apiservers, each with its own seed: the apiserver under
	// test reads the first's Secrets before the kill, the second's after.
	seen := writeSecrets(t, newAPIServer(t, name, sock), "seen", 3)
	unseen := writeSecrets(t, newAPIServer(t, name, sock), "unseen", 3)
	a := newAPIServer(t, name, sock)
	for _, s := range seen {
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, p, "Decrypt", 1, "the apiserver read Secrets under another seed")
	own := writeSecrets(t, a, "own", 5)

	// The apiserver keeps serving Secrets during the whole test.
	var (
		mu     sync.Mutex
		errs   []error
		rounds int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s := newSecret("ns-loop", fmt.Sprintf("loop-%d", i))
			st, err := a.tr.TransformToStorage(context.Background(), s.plain, value.DefaultContext(s.key))
			if err == nil {
				var got []byte
				got, _, err = a.read(s.key, st)
				if err == nil && !bytes.Equal(got, s.plain) {
					err = errors.New("read back another value")
				}
			}
			mu.Lock()
			rounds++
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.key, err))
			}
			mu.Unlock()
		}
	})
	var once sync.Once
	stopLoop := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoop()

	// A second plugin on the live socket is refused and leaves it be.
	msg := refused(t, sock, tok.Env(), "--key", uri)
	t.Logf("a second plugin on the live socket: %s", msg)
	wantHealthyStatus(t, p)

	time.Sleep(200 * time.Millisecond)
	p.kill()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("after SIGKILL the socket should be left behind: %v", err)
	}
	if _, _, err := a.read(unseen[0].key, unseen[0].value); err == nil {
		t.Fatal("a Secret under a seed the apiserver does not hold read back while the plugin was down")
	}
	// Its health check fails once its last success (20 s) is too old.
	err := eventually(45*time.Second, time.Second, func() error {
		if a.health() == nil {
			return errors.New("the apiserver's health check still passes")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	p.start() // the same socket path: the stale socket is replaced
	start := time.Now()
	err = eventually(60*time.Second, 200*time.Millisecond, func() error {
		_, _, err := a.read(unseen[0].key, unseen[0].value)
		return err
	})
	if err != nil {
		t.Fatalf("after the plugin's restart the apiserver still cannot read a Secret under another seed: %v; plugin stderr:\n%s", err, p.log)
	}
	t.Logf("the apiserver's client reconnected %v after the restart", time.Since(start).Round(10*time.Millisecond))
	for _, s := range append(seen, unseen...) {
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	for _, s := range own {
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	if err := eventually(30*time.Second, 500*time.Millisecond, a.health); err != nil {
		t.Fatalf("the apiserver's health check does not pass after the restart: %v", err)
	}
	wantCalls(t, p, "Decrypt", 1, "the apiserver read a Secret under another seed after the restart")

	stopLoop()
	mu.Lock()
	defer mu.Unlock()
	if rounds < 10 {
		t.Fatalf("the apiserver's loop ran %d rounds", rounds)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads and writes failed while the plugin was killed and restarted; first: %v", len(errs), rounds, errs[0])
	}
	t.Logf("%d writes and reads during the kill and restart, none failed", rounds)
}

// The SoftHSM2 token goes away under the running plugin (its directory,
// where SoftHSM2 keeps the token, moved out of the token directory) and
// comes back: the plugin's Status turns unhealthy with a reason, which the
// apiserver's health check reports, and turns ok again by itself once the
// token is back; the apiserver then works with the plugin as before.
func TestTokenRemovedAndRestored(t *testing.T) {
	t.Parallel()
	tok, uri := softKEK(t, "kek", "aes-256")
	sock := filepath.Join(shortDir(t), "kms.sock")
	p := startPlugin(t, sock, tok.Env(), "--key", uri, "--health-interval", "1s")
	const name = "hsmenv-token"
	a := newAPIServer(t, name, sock)
	before := writeSecrets(t, a, "before", 3)
	wantHealthyStatus(t, p)

	dirs, err := filepath.Glob(filepath.Join(tok.Dir, "tokens", "*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("SoftHSM2 token directories: %v %v, want one", dirs, err)
	}
	away := filepath.Join(tok.Dir, "token-away")
	if err := os.Rename(dirs[0], away); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := os.Rename(away, dirs[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()

	var reason string
	err = eventually(20*time.Second, 200*time.Millisecond, func() error {
		st, err := p.status(t)
		if err != nil {
			return fmt.Errorf("Status: %w", err)
		}
		if st.Healthz == "ok" {
			return errors.New("Status still says ok")
		}
		if st.KeyId != p.keyID {
			return fmt.Errorf("an unhealthy Status with key_id %q, want %q", st.KeyId, p.keyID)
		}
		reason = st.Healthz
		return nil
	})
	if err != nil {
		t.Fatalf("token removed: %v; stderr:\n%s", err, p.log)
	}
	t.Logf("token removed: Status says %q", reason)
	if strings.TrimSpace(reason) == "" || strings.Contains(reason, "\n") {
		t.Errorf("the unhealthy Status's reason %q is not one non-empty line", reason)
	}
	if ll, ok := p.log.waitFor(nil, time.Second, func(ll logLine) bool {
		return ll.Msg == "kms" && ll.Method == "Status" && ll.Outcome != "ok" && ll.Outcome != ""
	}); !ok {
		t.Errorf("no Status log line with the failure as outcome; stderr:\n%s", p.log)
	} else if ll.KeyID != p.keyID {
		t.Errorf("failed Status logged with key_id %q, want %q", ll.KeyID, p.keyID)
	}
	// The apiserver's health check reports it (once its last success is
	// older than 20 s), and the apiserver keeps writing with its seed.
	var apiErr error
	err = eventually(45*time.Second, time.Second, func() error {
		if apiErr = a.health(); apiErr == nil {
			return errors.New("the apiserver's health check still passes")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("token removed: the apiserver's health check says: %v", apiErr)
	if !strings.Contains(apiErr.Error(), "unexpected healthz status") {
		t.Errorf("the apiserver's health check failed with %v, not with the plugin's healthz", apiErr)
	}
	during := writeSecrets(t, a, "during", 3)

	restore()
	start := time.Now()
	err = eventually(30*time.Second, 200*time.Millisecond, func() error {
		st, err := p.status(t)
		if err != nil {
			return err
		}
		if st.Healthz != "ok" {
			return fmt.Errorf("Status still says %q", st.Healthz)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("token restored: the plugin did not recover by itself within 30 s: %v; stderr:\n%s", err, p.log)
	}
	t.Logf("token restored: Status ok again after %v", time.Since(start).Round(10*time.Millisecond))
	if err := eventually(30*time.Second, 500*time.Millisecond, a.health); err != nil {
		t.Fatalf("token restored: the apiserver's health check does not pass: %v", err)
	}
	// A new apiserver: Encrypt and Decrypt with the token again.
	b := newAPIServer(t, name, sock)
	for _, s := range append(before, during...) {
		b.mustRead(t, s.key, s.value, s.plain, false)
	}
	for _, s := range writeSecrets(t, b, "after", 3) {
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
}

// A TPM KEK (an RSA-2048 key file on swtpm, made with `hsmenv keygen`):
// Secrets written and read back, one Encrypt for all of them, one Decrypt
// for a restarted apiserver.
func TestTPMKEK(t *testing.T) {
	t.Parallel()
	uri := tpmKEK(t, "rsa-2048")
	sock := filepath.Join(shortDir(t), "kms.sock")
	p := startPlugin(t, sock, nil, "--key", uri)
	wantHealthyStatus(t, p)

	const name = "hsmenv-tpm"
	a := newAPIServer(t, name, sock)
	secrets := writeSecrets(t, a, "tpm", 20)
	for _, s := range secrets {
		if id := keyIDOf(t, name, s); id != p.keyID {
			t.Fatalf("%s stored under key_id %q, the plugin's is %q", s.key, id, p.keyID)
		}
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, p, "Encrypt", 1, "20 Secrets written")
	b := newAPIServer(t, name, sock)
	for _, s := range secrets {
		b.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, p, "Decrypt", 1, "a restarted apiserver read 20 Secrets")
}

// Two control-plane nodes, each with its own device (node A: an EC P-256
// key in a SoftHSM2 token; node B: an ECC P-256 key file on its swtpm),
// each plugin listing its own key and the other node's public key (a
// raw-ecdh URI, from `hsmenv pubkey`): both report the same key_id, and
// what either apiserver writes the other reads, not stale.
func TestTwoControlPlaneNodes(t *testing.T) {
	t.Parallel()
	tok, keyA := softKEK(t, "node-a", "ec-p256")
	keyB := tpmKEK(t, "ecc-p256")
	pemA := writeFile(t, "node-a.pem", []byte(run(t, tok.Env(), "pubkey", "--key", keyA)))
	pemB := writeFile(t, "node-b.pem", []byte(run(t, nil, "pubkey", "--key", keyB)))
	peer := func(pem string) string { return "raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + pem }

	dir := shortDir(t)
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	pa := startPlugin(t, sockA, tok.Env(), "--key", keyA, "--key", peer(pemB))
	pb := startPlugin(t, sockB, nil, "--key", keyB, "--key", peer(pemA))
	if pa.keyID != pb.keyID {
		t.Fatalf("node A's key_id %q, node B's %q: the same two keys must give the same key_id", pa.keyID, pb.keyID)
	}
	wantHealthyStatus(t, pa)
	wantHealthyStatus(t, pb)

	// Both nodes' apiservers share the EncryptionConfiguration (and so
	// the provider's name); each talks to its own node's plugin.
	const name = "hsmenv"
	a := newAPIServer(t, name, sockA)
	b := newAPIServer(t, name, sockB)
	fromA := writeSecrets(t, a, "a", 10)
	fromB := writeSecrets(t, b, "b", 10)
	if ia, ib := keyIDOf(t, name, fromA[0]), keyIDOf(t, name, fromB[0]); ia != ib || ia != pa.keyID {
		t.Fatalf("stored key_ids: node A %q, node B %q, plugins %q", ia, ib, pa.keyID)
	}
	for _, s := range fromA {
		b.mustRead(t, s.key, s.value, s.plain, false)
	}
	for _, s := range fromB {
		a.mustRead(t, s.key, s.value, s.plain, false)
	}
	wantCalls(t, pa, "Decrypt", 1, "node A read node B's Secrets")
	wantCalls(t, pb, "Decrypt", 1, "node B read node A's Secrets")
	wantCalls(t, pa, "Encrypt", 1, "node A's apiserver wrote 10 Secrets")
	wantCalls(t, pb, "Encrypt", 1, "node B's apiserver wrote 10 Secrets")
}
