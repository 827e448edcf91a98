package main_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/kektemplate"
	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// keyErrorCase is one bad command about a key and what its error must say.
type keyErrorCase struct {
	name  string
	setup func(t *testing.T) // run first, its outcome not checked
	env   []string
	args  []string
	want  []string // words the message has
	once  string   // the key's name, shown exactly once ("" for none)
	// after, if set, is where the key's own message starts: a decrypt
	// error starts with what envelope says about all the keys tried
	// (errors-env's part), and only the rest is bounded here.
	after string
}

// keyErrorForbidden may appear in no message: grammar slips, internal and
// Go API names.
var keyErrorForbidden = []string{"token token=", `(tokens present: "")`, "(unnamed)", "tpm.Device", "ResetLockout", "envelope:", "hsm.", "resolver.", "any token", "TPM_PT_LOCKOUT"}

// checkKeyError runs c and checks: exit status 1, one line on stderr of at
// most 200 characters, the words wanted, the key named once, nothing
// forbidden and none of secrets (PINs).
func checkKeyError(t *testing.T, c keyErrorCase, secrets ...string) {
	t.Helper()
	if c.setup != nil {
		c.setup(t)
	}
	r := run(t, nil, c.env, c.args...)
	msg := strings.TrimSuffix(string(r.stderr), "\n")
	t.Logf("%s: %s", c.name, msg)
	switch {
	case r.code != 1:
		t.Errorf("%s: exit status %d, want 1", c.name, r.code)
	case strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "hsmenv: "):
		t.Errorf("%s: not one line: %q", c.name, msg)
	}
	if _, own, _ := strings.Cut(msg, c.after); len(own) > 200 {
		t.Errorf("%s: %d characters, want at most 200", c.name, len(own))
	}
	for _, w := range c.want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: does not say %q", c.name, w)
		}
	}
	if c.once != "" && strings.Count(msg, c.once) != 1 {
		t.Errorf("%s: names %s %d times, want once", c.name, c.once, strings.Count(msg, c.once))
	}
	for _, f := range append(keyErrorForbidden, secrets...) {
		if strings.Contains(msg, f) {
			t.Errorf("%s: says %q", c.name, f)
		}
	}
}

// Errors about PKCS#11 keys, tokens and modules, from the real binary on
// a real SoftHSM2 token: the right category, what to do, one short line.
func TestKeyErrorsPKCS11(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Label: "demo"})
	env := append(cleanEnv("HSMENV_PKCS11_MODULE="), tok.Env()...)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("plaintext"), 0o600)
	out := filepath.Join(dir, "out.enc")
	query := "?module-path=" + tok.Module + "&pin-source=file:" + tok.PINFile
	key := func(path string) string { return "pkcs11:" + path + query }
	ok(t, run(t, nil, env, "keygen", "--key", key("token=demo;object=aes1")))
	ok(t, run(t, nil, env, "keygen", "--type", "rsa-2048", "--key", key("token=demo;object=rsa1")))
	for range 2 {
		k := make([]byte, 32)
		rand.Read(k)
		tok.ImportAESKey(t, "twin", k, kektemplate.AESEncrypt)
	}

	// A module with no initialized token: SoftHSM2 with an empty store.
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(filepath.Join(empty, "tokens"), 0o700)
	conf := filepath.Join(empty, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(empty, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	emptyEnv := append(cleanEnv("HSMENV_PKCS11_MODULE="), "SOFTHSM2_CONF="+conf)
	system := softhsmtest.Require(t, "SoftHSM2 module", softhsmtest.SoftHSMModules[0])

	// Modules that do not load: a text file, a library without
	// C_GetFunctionList, SoftHSM2 marked as built for another machine.
	text := filepath.Join(dir, "text.so")
	os.WriteFile(text, []byte(strings.Repeat("not a library\n", 20)), 0o600)
	arm := filepath.Join(dir, "arm.so")
	b, err := os.ReadFile(tok.Module)
	if err != nil {
		t.Fatal(err)
	}
	b[18], b[19] = 0xb7, 0 // e_machine: EM_AARCH64
	os.WriteFile(arm, b, 0o700)
	libc, _ := filepath.Glob("/usr/lib/*-linux-gnu/libc.so.6")
	if len(libc) == 0 {
		libc, _ = filepath.Glob("/lib*/libc.so.6")
	}
	if len(libc) == 0 {
		t.Fatal("no libc.so.6 to load as a library that is not a PKCS#11 module")
	}
	module := func(path string) string { return "pkcs11:token=demo;object=aes1?module-path=" + path }

	const pin1, pin2 = "S3cretK1", "S3cretK2"
	for _, c := range []keyErrorCase{
		{name: "pubkey of an AES key", args: []string{"pubkey", "--key", key("token=demo;object=aes1")},
			want: []string{"no public key", "symmetric AES-256"}, once: "pkcs11:token=demo;object=aes1"},
		{name: "pubkey of a missing key", args: []string{"pubkey", "--key", key("token=demo;object=nope")},
			want: []string{"key not found", `token "demo"`}, once: "pkcs11:token=demo;object=nope"},
		{name: "keygen without object=", args: []string{"keygen", "--key", key("token=demo")},
			want: []string{"add ;object=LABEL"}, once: "pkcs11:token=demo"},
		{name: "keygen of an unknown type", args: []string{"keygen", "--type", "foo", "--key", key("token=demo;object=x")},
			want: []string{`"foo"`, "aes-256, rsa-3072, rsa-2048, ec-p256, ec-p384, ec-p521"}, once: "pkcs11:token=demo;object=x"},
		{name: "two objects of one label", args: []string{"encrypt", "--key", key("token=demo;object=twin"), "-o", out, in},
			want: []string{"more than one object matches", `"twin" id `, "secret-key aes-256", "give id="}, once: "pkcs11:token=demo;object=twin"},
		{name: "no initialized token", env: emptyEnv, args: []string{"encrypt", "--key", "pkcs11:token=demo;object=aes1?module-path=" + system, "-o", out, in},
			want: []string{"no initialized token", "softhsm2-util --init-token"}},
		{name: "another label", args: []string{"encrypt", "--key", key("token=other;object=aes1"), "-o", out, in},
			want: []string{`no token "other"`, `(it has "demo")`}},
		{name: "';' in the query", args: []string{"encrypt", "--key", "pkcs11:token=demo;object=aes1?module-path=" + tok.Module + ";pin-source=file:" + tok.PINFile, "-o", out, in},
			want: []string{`"module-path" holds ";pin-source="`, `query attributes (after '?') are separated by '&'`}, once: "pkcs11:token=demo;object=aes1"},
		{name: "';' before pin-value in the query", args: []string{"encrypt", "--key", "pkcs11:token=demo;object=aes1?module-path=" + tok.Module + ";pin-value=" + pin1, "-o", out, in},
			want: []string{`query attributes (after '?') are separated by '&'`}},
		{name: "'&' in the path", args: []string{"encrypt", "--key", "pkcs11:token=demo&object=aes1" + query, "-o", out, in},
			want: []string{`"token" holds "&object="`, `path attributes are separated by ';'`}, once: "pkcs11:token=demo&object=aes1"},
		{name: "wrong PIN", args: []string{"encrypt", "--key", "pkcs11:token=demo;object=aes1?module-path=" + tok.Module + "&pin-value=" + pin2, "-o", out, in},
			want: []string{"rejected the PIN", `token "demo"`}, once: "pkcs11:token=demo;object=aes1"},
		{name: "missing module", args: []string{"encrypt", "--key", module(filepath.Join(dir, "missing.so")), "-o", out, in},
			want: []string{"cannot load it", "No such file or directory"}, once: "pkcs11:token=demo;object=aes1"},
		{name: "not a library", args: []string{"encrypt", "--key", module(text), "-o", out, in},
			want: []string{"cannot load it", "invalid ELF header"}},
		{name: "not a PKCS#11 library", args: []string{"encrypt", "--key", module(libc[0]), "-o", out, in},
			want: []string{"no C_GetFunctionList", "not a PKCS#11 module"}},
		{name: "another machine's library", args: []string{"encrypt", "--key", module(arm), "-o", out, in},
			want: []string{"built for AARCH64", "this program for X86_64"}},
	} {
		if c.env == nil {
			c.env = env
		}
		checkKeyError(t, c, pin1, pin2, tok.PIN)
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: %s was written", c.name, out)
		}
	}
}

// Errors about TPM keys from the real binary on swtpm: a wrong PIN, the
// lockout after it, a PCR that moved, another TPM, what keygen and pubkey
// refuse; one line each, no Go API names.
func TestKeyErrorsTPM(t *testing.T) {
	sw, other := tpmtest.Start(t), tpmtest.Start(t)
	env := tpmEnv()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("plaintext"), 0o600)
	dev := sw.Device()
	seal := func(attrs, query string) string { return "tpm:seal" + attrs + "?device=" + dev + query }
	pinned, pcr, plain := filepath.Join(dir, "pin.enc"), filepath.Join(dir, "pcr.enc"), filepath.Join(dir, "plain.enc")
	ok(t, run(t, nil, env, "encrypt", "--key", seal(";pin=yes", "&pin-value=right"), "-o", pinned, in))
	ok(t, run(t, nil, env, "encrypt", "--key", seal(";pcrs=16", ""), "-o", pcr, in))
	ok(t, run(t, nil, env, "encrypt", "--key", seal("", ""), "-o", plain, in))
	const wrong = "Wr0ngPin"
	wrongPIN := []string{"decrypt", "--key", seal(";pin=yes", "&pin-value="+wrong), "-o", filepath.Join(dir, "out"), pinned}
	for _, c := range []keyErrorCase{
		{name: "wrong PIN", args: wrongPIN, want: []string{"TPM PIN: the TPM rejected the PIN", "2 more lock the TPM out"}, once: "tpm:seal;pin=yes", after: "(hsmenv-tpm-seal): "},
		{name: "lockout", setup: func(t *testing.T) {
			run(t, nil, env, wrongPIN...)
			run(t, nil, env, wrongPIN...)
		}, args: wrongPIN, want: []string{"dictionary-attack lockout", "3 wrong PINs (limit 3)", "within 1000 s", "hsmenv tpm reset-lockout"}, once: "tpm:seal;pin=yes", after: "(hsmenv-tpm-seal): "},
		{name: "PCR moved", setup: func(t *testing.T) { extendPCR16(t, sw) },
			args: []string{"decrypt", "--key", seal(";pcrs=16", ""), "-o", filepath.Join(dir, "out"), pcr},
			want: []string{"PCR policy failed: PCR 16 (00000000... then, ", "changed since sealing"}, once: "tpm:seal;pcrs=sha256:16", after: "(hsmenv-tpm-seal): "},
		{name: "another TPM", args: []string{"decrypt", "--key", "tpm:seal?device=" + other.Device(), "-o", filepath.Join(dir, "out"), plain},
			want: []string{"different TPM", "another TPM, or this one was cleared"}, once: "tpm:seal", after: "(hsmenv-tpm-seal): "},
		{name: "keygen of an unknown type", args: []string{"keygen", "--type", "foo", "--key", "tpm:key-file=" + filepath.Join(dir, "k.tpm") + "?device=" + dev},
			want: []string{`key type "foo"`, "rsa-2048", "ecc-p256", "seal"}, once: "tpm:key-file="},
		{name: "pubkey of a sealed key", args: []string{"pubkey", "--key", seal("", "")},
			want: []string{"no public key"}, once: "tpm:seal"},
	} {
		checkKeyError(t, c, wrong, "pin-value=right")
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Fatal("a failed decrypt left its output")
	}
}
