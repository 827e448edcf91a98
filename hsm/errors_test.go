package hsm_test

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/kektemplate"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// wantError checks that err is sentinel, says every want, and names the
// key (its URI's path part) once.
func wantError(t *testing.T, what string, err, sentinel error, name string, want ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: %v, want %v", what, err, sentinel)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: %q does not say %q", what, msg, w)
		}
	}
	if name != "" && strings.Count(msg, name) != 1 {
		t.Errorf("%s: %q names %s %d times", what, msg, name, strings.Count(msg, name))
	}
	if strings.Contains(msg, "token token=") || strings.Contains(msg, "token=;") {
		t.Errorf("%s: %q", what, msg)
	}
}

// PublicKeyPEM of an AES key is ErrNoPublicKey, not ErrKeyNotFound; a
// key that is not there is ErrKeyNotFound naming the token.
func TestPublicKeyOfSymmetricKey(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Label: "demo"})
	generate(t, tok.URI("aes"), hsm.KeyAES256)
	_, err := hsm.PublicKeyPEM(ctx, tok.URI("aes"))
	wantError(t, "AES key", err, hsm.ErrNoPublicKey, "pkcs11:token=demo;object=aes", "symmetric AES-256 key")
	if errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("AES key: %v is ErrKeyNotFound", err)
	}
	_, err = hsm.PublicKeyPEM(ctx, tok.URI("nope"))
	wantError(t, "missing key", err, hsm.ErrKeyNotFound, "pkcs11:token=demo;object=nope", `on token "demo"`)
}

// More than one object of a label: the error lists them (label, id,
// class, type), at most four.
func TestAmbiguousListsObjects(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for i := range 6 {
		k := make([]byte, 32)
		rand.Read(k)
		tok.ImportAESKey(t, "twin", k, kektemplate.AESEncrypt)
		if i == 1 {
			_, err := hsm.OpenURI(ctx, tok.URI("twin"))
			wantError(t, "two", err, hsm.ErrAmbiguous, "object=twin", `"twin" id `, "secret-key aes-256", "give id= or type=")
			if n := strings.Count(err.Error(), `"twin" id `); n != 2 {
				t.Errorf("two objects, %d listed: %v", n, err)
			}
		}
	}
	_, err := hsm.OpenURI(ctx, tok.URI("twin"))
	wantError(t, "six", err, hsm.ErrAmbiguous, "object=twin", "and more")
	if n := strings.Count(err.Error(), `"twin" id `); n != 4 {
		t.Errorf("six objects, %d listed: %v", n, err)
	}
}

// keygen's mistakes: no object= says what to add; an unknown type lists
// the types, before anything is sent to the token.
func TestGenerateMistakes(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Label: "demo"})
	_, err := hsm.Generate(ctx, tok.URI(""), hsm.KeyAES256)
	wantError(t, "no object", err, keyuri.ErrSyntax, "pkcs11:token=demo", "add ;object=LABEL")
	_, err = hsm.Generate(ctx, tok.URI("x"), "foo")
	wantError(t, "type foo", err, hsm.ErrMechanism, "pkcs11:token=demo;object=x", `"foo"`, strings.Join([]string{hsm.KeyAES256, hsm.KeyRSA3072, hsm.KeyRSA2048, hsm.KeyECP256, hsm.KeyECP384, hsm.KeyECP521}, ", "))
}

// A module that does not load says why: the dynamic loader's text, that
// C_GetFunctionList is missing, or the machine it was built for.
func TestModuleLoadReasons(t *testing.T) {
	lib := softhsmtest.Require(t, "SoftHSM2 module", softhsmtest.SoftHSMModules[0])
	dir := t.TempDir()
	text := filepath.Join(dir, "text.so")
	os.WriteFile(text, []byte(strings.Repeat("not a library\n", 20)), 0o600)
	b, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	b[18], b[19] = 0xb7, 0 // e_machine: EM_AARCH64
	arm := filepath.Join(dir, "arm.so")
	os.WriteFile(arm, b, 0o700)
	libc, _ := filepath.Glob("/usr/lib/*-linux-gnu/libc.so.6")
	if len(libc) == 0 {
		t.Fatal("no libc.so.6")
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.so"): "cannot open shared object file: No such file or directory",
		text:                             "invalid ELF header",
		libc[0]:                          "it has no C_GetFunctionList: not a PKCS#11 module",
		arm:                              "it is built for AARCH64 (ELFCLASS64), this program for X86_64",
	} {
		_, err := hsm.LoadModule(path, "")
		wantError(t, filepath.Base(path), err, hsm.ErrModule, "", path+": cannot load it: "+want)
	}
}

// A module whose slots hold no initialized token says so and how to make
// one, and lists no empty label.
func TestNoInitializedToken(t *testing.T) {
	lib := softhsmtest.Require(t, "SoftHSM2 module", softhsmtest.SoftHSMModules[0])
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "tokens"), 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	mod := filepath.Join(dir, "libsofthsm2-empty.so") // a module of its own, initialized with conf
	b, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(mod, b, 0o700)
	t.Setenv("SOFTHSM2_CONF", conf)
	m, err := hsm.LoadModule(mod, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Finalize()
	// A PIN no temporary directory name holds (one with 1234 in it did).
	_, err = hsm.OpenURI(ctx, "pkcs11:token=demo;object=k?module-path="+mod+"&pin-value=S3cretPq")
	wantError(t, "empty module", err, hsm.ErrTokenNotFound, "pkcs11:token=demo;object=k", "has no initialized token", "softhsm2-util --init-token")
	if strings.Contains(err.Error(), `""`) || strings.Contains(err.Error(), "S3cretPq") {
		t.Errorf("empty module: %v", err)
	}
}
