package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// checkLines runs check and returns its exit status and stdout lines,
// checking the one-line summary on stderr of a failed run.
func checkLines(t *testing.T, env []string, args ...string) (int, []string) {
	t.Helper()
	r := run(t, nil, env, append([]string{"check"}, args...)...)
	if r.code != 0 {
		fails(t, r, "failed the check")
	}
	return r.code, strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
}

// check round-trips a data key with each key and names its mechanism and
// layout; a key with a wrong PIN fails (even after another key of the same
// token logged in) without stopping the others, and the exit status says
// so; no PIN is printed.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := tok.Env()
	aes, rsa, ec := tok.URI("aes"), tok.URI("rsa"), tok.URI("ec")
	ok(t, run(t, nil, env, "keygen", "--type", "aes-256", "--key", aes))
	ok(t, run(t, nil, env, "keygen", "--type", "rsa-2048", "--key", rsa))
	ok(t, run(t, nil, env, "keygen", "--type", "ec-p256", "--key", ec))
	badPIN := filepath.Join(dir, "bad-pin")
	os.WriteFile(badPIN, []byte("0000\n"), 0o600)
	wrong := strings.Replace(rsa, tok.PINFile, badPIN, 1)
	withValue := strings.Replace(ec, "pin-source=file:"+tok.PINFile, "pin-value="+tok.PIN, 1)
	raw := rawAESKey(t, dir, "c")

	code, lines := checkLines(t, env, "--key", raw, "--key", aes, "--key", wrong, "--key", rsa, "--key", withValue)
	if code != 1 || len(lines) != 5 {
		t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), strings.Join(lines, "\n"))
	}
	for i, want := range []string{
		"OK   " + raw + ": AES-GCM on the host, ESDK raw AES layout; open ",
		"OK   " + aes + ": CKM_AES_GCM in the token, ESDK raw AES layout; open ",
		"FAIL " + wrong + ": PIN",
		"OK   " + rsa + ": RSA-OAEP-SHA1: CKM_RSA_PKCS_OAEP in the token, wrap on the host, ESDK raw RSA layout; open ",
		"OK   pkcs11:",
	} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d: %s\nwant the prefix %s", i+1, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], ", unwrap ") || !strings.Contains(lines[4], "CKM_ECDH1_DERIVE") || strings.Contains(strings.Join(lines, "\n"), tok.PIN) {
		t.Errorf("check:\n%s", strings.Join(lines, "\n"))
	}

	// Defaults from $HSMENV_KEY; all good: exit 0.
	code, lines = checkLines(t, append(env, "HSMENV_KEY="+aes+" "+raw))
	if code != 0 || len(lines) != 2 {
		t.Fatalf("check with $HSMENV_KEY: exit %d:\n%s", code, strings.Join(lines, "\n"))
	}

	// Encrypt-only keys: the wrap is checked; a failure only when asked.
	pub := filepath.Join(dir, "rsa.pem")
	os.WriteFile(pub, ok(t, run(t, nil, env, "pubkey", "--key", rsa)).stdout, 0o600)
	encOnly := "raw-rsa:namespace=hsmenv;name=rsa;padding=oaep-sha1?public-key=" + pub
	code, lines = checkLines(t, env, "--key", encOnly)
	if code != 0 || !strings.HasPrefix(lines[0], "OK   "+encOnly+": RSA-OAEP-SHA1 on the host") || !strings.HasSuffix(lines[0], "encrypt-only: wrap checked, unwrap not possible") {
		t.Fatalf("encrypt-only key: exit %d: %s", code, lines)
	}
	code, lines = checkLines(t, env, "--require-unwrap", "--key", encOnly, "--key", raw)
	if code != 1 || !strings.HasPrefix(lines[0], "FAIL "+encOnly+": encrypt-only") || !strings.HasPrefix(lines[1], "OK ") {
		t.Fatalf("--require-unwrap: exit %d: %s", code, lines)
	}

	// --json: one object per key.
	r := run(t, nil, env, "check", "--json", "--key", raw, "--key", "raw-aes:namespace=n;name=k?key-file="+filepath.Join(dir, "missing"))
	var res []struct {
		URI       string `json:"uri"`
		OK        bool   `json:"ok"`
		Mechanism string `json:"mechanism"`
		Layout    string `json:"layout"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(r.stdout, &res); err != nil || r.code != 1 || len(res) != 2 || !res[0].OK || res[0].Layout != "ESDK raw AES" ||
		res[1].OK || !strings.Contains(res[1].Error, "missing") || strings.HasPrefix(res[1].Error, "key ") {
		t.Fatalf("check --json: exit %d, %v:\n%s", r.code, err, r.stdout)
	}
}

// TPM keys: sealed data keys and key files, with the TPM's mechanism.
func TestCheckTPM(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	seal := "tpm:seal?device=" + sw.Device()
	rsaKey := "tpm:key-file=" + filepath.Join(dir, "k.key") + "?device=" + sw.Device()
	ok(t, run(t, nil, nil, "keygen", "--key", rsaKey))
	code, lines := checkLines(t, nil, "--key", seal, "--key", rsaKey)
	if code != 0 || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "OK   "+seal+": sealed to the SRK in the TPM (TPM2_Create, TPM2_Unseal), hsmenv-tpm-seal layout") ||
		!strings.HasPrefix(lines[1], "OK   "+rsaKey+": RSA-OAEP-SHA256: TPM2_RSA_Decrypt in the TPM, wrap on the host, ESDK raw RSA layout") {
		t.Fatalf("check of TPM keys: exit %d:\n%s", code, strings.Join(lines, "\n"))
	}
}
