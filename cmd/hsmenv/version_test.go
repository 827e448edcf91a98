package main_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// `hsmenv version` and `hsmenv --version` print the same four fields and
// exit 0 (version used to be an unknown command, exit 2).
func TestVersion(t *testing.T) {
	r := ok(t, run(t, nil, nil, "version"))
	lines := strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "hsmenv ") || !strings.HasPrefix(lines[1], "commit: ") ||
		!strings.Contains(lines[2], runtime.Version()) || !strings.HasPrefix(lines[3], "kek kinds: ") {
		t.Fatalf("version:\n%s", r.stdout)
	}
	for _, kind := range []string{"pkcs11", "raw-aes", "raw-rsa", "raw-ecdh", "tpm:seal", "tpm:key-file", "tpm:ek"} {
		if !strings.Contains(lines[3], kind) {
			t.Errorf("version does not list %s: %s", kind, lines[3])
		}
	}
	if v := ok(t, run(t, nil, nil, "--version")); string(v.stdout) != string(r.stdout) {
		t.Errorf("--version printed\n%s\nversion printed\n%s", v.stdout, r.stdout)
	}
	var b struct {
		Version  string   `json:"version"`
		Go       string   `json:"go"`
		KEKKinds []string `json:"kek_kinds"`
	}
	j := ok(t, run(t, nil, nil, "version", "--json"))
	if err := json.Unmarshal(j.stdout, &b); err != nil || b.Version == "" || b.Go != runtime.Version() || len(b.KEKKinds) < 7 {
		t.Fatalf("version --json: %v\n%s", err, j.stdout)
	}
	fails(t, run(t, nil, nil, "version", "extra"), "")
}

// A release build sets the version and commit with -ldflags -X.
func TestVersionLinkerOverride(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hsmenv")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-test -X main.commit=0123abcd", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := ok(t, output(t, exec.Command(bin, "--version")))
	if !strings.HasPrefix(string(r.stdout), "hsmenv v1.2.3-test\ncommit:    0123abcd") {
		t.Fatalf("--version of a release build:\n%s", r.stdout)
	}
}
