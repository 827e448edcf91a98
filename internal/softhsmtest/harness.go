// Package softhsmtest provisions real, throw-away PKCS#11 tokens for tests:
// SoftHSM2 tokens with their own configuration, token directory and random
// PINs under a temporary directory, NSS softokn in no-database mode, and
// tpm2-pkcs11 tokens on a fresh swtpm. Everything is removed when the test
// ends.
//
// Each SoftHSM2 token gets its own copy of libsofthsm2.so, loaded and
// initialized with that token's SOFTHSM2_CONF: one process can hold tokens
// with different configurations (e.g. a restricted mechanism list that
// emulates a weaker HSM) side by side.
//
// When a tool is missing the test fails if $CI is set, and is skipped with
// the reason otherwise.
package softhsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/kektemplate"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// SoftHSMModules are where Debian and others install SoftHSM2.
var SoftHSMModules = []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"}

// NSSModule is Debian's NSS softokn.
const NSSModule = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so"

// TPM2Module is Debian's tpm2-pkcs11 (package libtpm2-pkcs11-1).
const TPM2Module = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"

// Require fails (under CI) or skips the test when path does not exist or,
// for a bare name, is not on $PATH.
func Require(t testing.TB, what, path string) string {
	t.Helper()
	found := path
	var err error
	if !strings.Contains(path, "/") {
		found, err = exec.LookPath(path)
	} else {
		_, err = os.Stat(path)
	}
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (%s: %v); run scripts/deps.sh", what, path, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return found
}

// Token is a SoftHSM2 token made for one test.
type Token struct {
	Dir     string // everything lives under here
	Conf    string // its softhsm2.conf
	Module  string // its own copy of libsofthsm2.so
	Label   string
	PIN     string
	SOPIN   string
	PINFile string // holds PIN, mode 0600
}

// Options shape a token.
type Options struct {
	// Label defaults to a random one.
	Label string
	// Mechanisms restricts what the token offers (softhsm2.conf
	// slots.mechanisms), e.g. to emulate a token without AES-GCM. Nil
	// means all. Remember the key-generation mechanisms.
	Mechanisms []string
}

// envMu serializes SOFTHSM2_CONF changes around C_Initialize.
var envMu sync.Mutex

// New creates and initializes a SoftHSM2 token.
func New(t testing.TB, opts Options) *Token {
	t.Helper()
	util := Require(t, "SoftHSM2 (softhsm2-util)", "softhsm2-util")
	lib := ""
	for _, p := range SoftHSMModules {
		if _, err := os.Stat(p); err == nil {
			lib = p
			break
		}
	}
	if lib == "" {
		Require(t, "SoftHSM2 module", SoftHSMModules[0])
	}
	dir := t.TempDir()
	tk := &Token{Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), Label: opts.Label, PIN: randHex(8), SOPIN: randHex(8)}
	if tk.Label == "" {
		tk.Label = "hsmenv-test-" + randHex(4)
	}
	mechs := "ALL"
	if opts.Mechanisms != nil {
		mechs = strings.Join(opts.Mechanisms, ",")
	}
	tokDir := filepath.Join(dir, "tokens")
	must(t, os.Mkdir(tokDir, 0o700))
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = %s\nlibrary.reset_on_fork = false\n", tokDir, mechs)
	must(t, os.WriteFile(tk.Conf, []byte(conf), 0o600))
	cmd := exec.Command(util, "--init-token", "--free", "--label", tk.Label, "--pin", tk.PIN, "--so-pin", tk.SOPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+tk.Conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	tk.PINFile = filepath.Join(dir, "pin")
	must(t, os.WriteFile(tk.PINFile, []byte(tk.PIN+"\n"), 0o600))
	tk.Module = filepath.Join(dir, "libsofthsm2-"+randHex(4)+".so")
	must(t, copyFile(lib, tk.Module))

	envMu.Lock()
	old, had := os.LookupEnv("SOFTHSM2_CONF")
	os.Setenv("SOFTHSM2_CONF", tk.Conf)
	mod, err := hsm.LoadModule(tk.Module, "")
	if had {
		os.Setenv("SOFTHSM2_CONF", old)
	} else {
		os.Unsetenv("SOFTHSM2_CONF")
	}
	envMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Finalize() })
	return tk
}

// URI returns a pkcs11: URI for object on this token with the PIN in a
// file; extra query attributes ("x-mechanism=aes-kw") are appended.
func (tk *Token) URI(object string, extra ...string) string {
	u := "pkcs11:token=" + esc(tk.Label)
	if object != "" {
		u += ";object=" + esc(object)
	}
	u += "?module-path=" + tk.Module + "&pin-source=file:" + tk.PINFile
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

// Slot returns the PKCS#11 context of the token's module (shared with hsm,
// which loaded it) and the slot holding the token, for tests that reach the
// token behind hsm's back.
func (tk *Token) Slot(t testing.TB) (*pkcs11.Ctx, uint) {
	t.Helper()
	mod, err := hsm.LoadModule(tk.Module, "")
	if err != nil {
		t.Fatal(err)
	}
	p := mod.Ctx()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && strings.TrimSpace(ti.Label) == tk.Label {
			return p, s
		}
	}
	t.Fatalf("no slot holds token %q", tk.Label)
	return nil, 0
}

// ImportAESKey stores key (16, 24 or 32 bytes) on the token as an AES KEK
// labelled label, with the attributes hsm.Generate gives the KEKs it makes
// (kektemplate.Template: a private, sensitive, non-extractable token object
// with only the usage flags of use) and a random id, so that a test can
// share known key bytes with an ESDK raw AES keyring. It logs in with the
// token's PIN on a session of its own, which it closes.
func (tk *Token) ImportAESKey(t testing.TB, label string, key []byte, use kektemplate.Usage) {
	t.Helper()
	p, slot := tk.Slot(t)
	h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("C_OpenSession: %v", err)
	}
	defer p.CloseSession(h)
	if err := p.Login(h, pkcs11.CKU_USER, tk.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatalf("C_Login: %v", err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	tmpl, _ := kektemplate.Template(use, label, id)
	if _, err := p.CreateObject(h, append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_VALUE, key))); err != nil {
		t.Fatalf("importing AES key %q: C_CreateObject: %v", label, err)
	}
}

// Env returns the environment a subprocess needs to see this token through
// the system libsofthsm2.so (the copy works as well).
func (tk *Token) Env() []string { return []string{"SOFTHSM2_CONF=" + tk.Conf} }

// NSS is NSS softokn's generic crypto slot, opened without any database:
// objects live in sessions, so keys for tests are session objects that this
// harness creates and holds until the test ends.
type NSS struct {
	Module string
	Label  string
	mod    *hsm.Module
	sess   pkcs11.SessionHandle
}

// NewNSS opens NSS softokn in no-database mode.
func NewNSS(t testing.TB) *NSS {
	t.Helper()
	Require(t, "NSS softokn (libnss3)", NSSModule)
	mod, err := hsm.LoadModule(NSSModule, "")
	if err != nil {
		t.Fatal(err)
	}
	n := &NSS{Module: NSSModule, Label: "NSS Generic Crypto Services", mod: mod}
	slot := n.slot(t)
	n.sess, err = mod.Ctx().OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("NSS: C_OpenSession: %v", err)
	}
	// Closing the session destroys the keys made in it.
	t.Cleanup(func() { mod.Ctx().CloseSession(n.sess) })
	return n
}

func (n *NSS) slot(t testing.TB) uint {
	slots, err := n.mod.Ctx().GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := n.mod.Ctx().GetTokenInfo(s); err == nil && strings.TrimSpace(ti.Label) == n.Label {
			return s
		}
	}
	t.Fatalf("NSS: no slot %q", n.Label)
	return 0
}

// AESKey creates an AES session key labelled label: from key bytes if given,
// else generated in the token; sensitive and not extractable, usable for
// key wrap (NSS's C_Encrypt length query for GCM is broken: docs/vendors/nss.md).
func (n *NSS) AESKey(t testing.TB, label string, key []byte) {
	t.Helper()
	attrs := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}
	var err error
	if key != nil {
		_, err = n.mod.Ctx().CreateObject(n.sess, append(attrs, pkcs11.NewAttribute(pkcs11.CKA_VALUE, key)))
	} else {
		_, err = n.mod.Ctx().GenerateKey(n.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			append(attrs, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32)))
	}
	if err != nil {
		t.Fatalf("NSS: making AES key %q: %v", label, err)
	}
}

// RSAKey generates an RSA key pair of the given size as session objects.
func (n *NSS) RSAKey(t testing.TB, label string, bits int) {
	t.Helper()
	common := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}
	pub := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
	}, common...)
	priv := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}, common...)
	if _, _, err := n.mod.Ctx().GenerateKeyPair(n.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pub, priv); err != nil {
		t.Fatalf("NSS: making RSA key %q: %v", label, err)
	}
}

// ECKey generates an EC key pair for raw ECDH on the NIST curve of bits
// (256, 384 or 521) as session objects, with the attributes hsm.Generate
// gives the token objects it makes (kektemplate.ECDerive: the private key
// sensitive, not extractable, derive only).
func (n *NSS) ECKey(t testing.TB, label string, bits int) {
	t.Helper()
	id := make([]byte, 8)
	rand.Read(id)
	priv, pub := kektemplate.Template(kektemplate.ECDerive, label, id)
	pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, kektemplate.ECParams(bits)))
	// The generic slot without a database holds session objects only.
	for _, tmpl := range [][]*pkcs11.Attribute{priv, pub} {
		for i, a := range tmpl {
			if a.Type == pkcs11.CKA_TOKEN {
				tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)
			}
		}
	}
	if _, _, err := n.mod.Ctx().GenerateKeyPair(n.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv); err != nil {
		t.Fatalf("NSS: making EC P-%d key %q: %v", bits, label, err)
	}
}

// URI returns a pkcs11: URI for object in NSS's generic slot (no PIN).
func (n *NSS) URI(object string, extra ...string) string {
	u := "pkcs11:token=" + esc(n.Label) + ";object=" + esc(object) + "?module-path=" + n.Module
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

func esc(s string) string { return strings.ReplaceAll(url.PathEscape(s), ";", "%3B") }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TPM2 is a tpm2-pkcs11 token made for one test, on a swtpm of its own
// (internal/tpmtest), with its own store directory and random PINs.
type TPM2 struct {
	Module string // its own copy of libtpm2_pkcs11.so
	Label  string
	PIN    string
	SOPIN  string
}

// NewTPM2 starts a swtpm, points a copy of tpm2-pkcs11 at it (its
// TPM2_PKCS11_TCTI and TPM2_PKCS11_STORE are set for the test, which
// therefore cannot run in parallel) and initializes a token with a user
// PIN. swtpm has no resource manager and room for three loaded objects:
// make one key per token.
func NewTPM2(t *testing.T) *TPM2 {
	t.Helper()
	Require(t, "tpm2-pkcs11 (libtpm2-pkcs11-1)", TPM2Module)
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	tk := &TPM2{Label: "hsmenv-tpm2-" + randHex(4), PIN: randHex(8), SOPIN: randHex(8)}
	// The file name keeps the prefix that selects hsm's tpm2 profile.
	tk.Module = filepath.Join(dir, "libtpm2_pkcs11-"+randHex(4)+".so")
	must(t, copyFile(TPM2Module, tk.Module))
	t.Setenv("TPM2_PKCS11_TCTI", fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", sw.Port))
	t.Setenv("TPM2_PKCS11_STORE", dir)
	t.Setenv("TPM2_PKCS11_LOG_LEVEL", "0")
	mod, err := hsm.LoadModule(tk.Module, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Finalize() })
	p := mod.Ctx()
	slots, err := p.GetSlotList(false)
	if err != nil || len(slots) == 0 {
		t.Fatalf("tpm2-pkcs11: no slot: %v", err)
	}
	if err := p.InitToken(slots[0], tk.SOPIN, tk.Label); err != nil {
		t.Fatalf("tpm2-pkcs11: C_InitToken: %v", err)
	}
	h, err := p.OpenSession(slots[0], pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("tpm2-pkcs11: C_OpenSession: %v", err)
	}
	defer p.CloseSession(h)
	if err := p.Login(h, pkcs11.CKU_SO, tk.SOPIN); err != nil {
		t.Fatalf("tpm2-pkcs11: C_Login (SO): %v", err)
	}
	if err := p.InitPIN(h, tk.PIN); err != nil {
		t.Fatalf("tpm2-pkcs11: C_InitPIN: %v", err)
	}
	if err := p.Logout(h); err != nil {
		t.Fatalf("tpm2-pkcs11: C_Logout: %v", err)
	}
	return tk
}

// URI returns a pkcs11: URI for object on this token with its PIN;
// extra query attributes are appended.
func (tk *TPM2) URI(object string, extra ...string) string {
	u := "pkcs11:token=" + esc(tk.Label) + ";object=" + esc(object) + "?module-path=" + tk.Module + "&pin-value=" + tk.PIN
	for _, e := range extra {
		u += "&" + e
	}
	return u
}
