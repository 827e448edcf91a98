package main_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/armor"
)

// encrypt -a writes armor that decrypt, inspect and rewrap recognise from
// a file and from a pipe; rewrap keeps it armored; a damaged or truncated
// armor is one error naming the armor and leaves no output; an armored
// message may go to a terminal.
func TestArmor(t *testing.T) {
	dir := t.TempDir()
	key, key2 := rawAESKey(t, dir, "k"), rawAESKey(t, dir, "k2")
	plain := make([]byte, 200_000)
	rand.Read(plain)
	in := filepath.Join(dir, "plain")
	os.WriteFile(in, plain, 0o600)
	asc := filepath.Join(dir, "msg.asc")
	ok(t, run(t, nil, nil, "encrypt", "-q", "--key", key, "-a", "--context", "a=b", "-o", asc, in))
	text, _ := os.ReadFile(asc)
	if !bytes.HasPrefix(text, []byte(armor.Begin+"\n")) || !bytes.HasSuffix(text, []byte(armor.End+"\n")) {
		t.Fatalf("not armored: %.80q ... %q", text, text[len(text)-60:])
	}
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if len(line) > 64 && !strings.HasPrefix(line, "-----") {
			t.Fatalf("line of %d columns", len(line))
		}
	}

	// decrypt from the file and from a pipe.
	out := filepath.Join(dir, "out")
	ok(t, run(t, nil, nil, "decrypt", "-q", "--key", key, "--require-context", "a=b", "-o", out, asc))
	if got, _ := os.ReadFile(out); !bytes.Equal(got, plain) {
		t.Fatal("armored file: plaintext differs")
	}
	if r := ok(t, run(t, text, nil, "decrypt", "-q", "--key", key, "-o", "-", "-")); !bytes.Equal(r.stdout, plain) {
		t.Fatal("armored stdin: plaintext differs")
	}

	// inspect shows the same header as the binary form's.
	bin := filepath.Join(dir, "msg.enc")
	ok(t, run(t, nil, nil, "encrypt", "-q", "--key", key, "--context", "a=b", "-o", bin, in))
	ascJSON := ok(t, run(t, nil, nil, "inspect", "--json", asc)).stdout
	if !bytes.Contains(ascJSON, []byte(`"a": "b"`)) {
		t.Fatalf("inspect of armor: %s", ascJSON)
	}
	if r := ok(t, run(t, text, nil, "inspect", "-")); !strings.Contains(string(r.stdout), "message id:") {
		t.Fatalf("inspect of armored stdin: %s", r.stdout)
	}

	// rewrap keeps the armor; the new key opens it, the old one not.
	re := filepath.Join(dir, "re.asc")
	ok(t, run(t, nil, nil, "rewrap", "--key", key, "--to", key2, "-o", re, asc))
	if b, _ := os.ReadFile(re); !bytes.HasPrefix(b, []byte(armor.Begin)) {
		t.Fatal("rewrap dropped the armor")
	}
	if r := ok(t, run(t, nil, nil, "decrypt", "-q", "--key", key2, "-o", "-", re)); !bytes.Equal(r.stdout, plain) {
		t.Fatal("rewrapped armor: plaintext differs")
	}
	fails(t, run(t, nil, nil, "decrypt", "-q", "--key", key, "-o", filepath.Join(dir, "x"), re), "")

	// Damaged and truncated armor: one error, nothing left.
	lines := strings.Split(string(text), "\n")
	long := append([]string{}, lines...)
	long[5] += "AAAA"
	bad := map[string]string{
		"truncated": string(text[:len(text)/2]),
		"long line": strings.Join(long, "\n"),
		"no end":    strings.Join(lines[:len(lines)-2], "\n") + "\n",
	}
	for name, b := range bad {
		p := filepath.Join(dir, "bad.asc")
		os.WriteFile(p, []byte(b), 0o600)
		o := filepath.Join(dir, "bad.out")
		fails(t, run(t, nil, nil, "decrypt", "-q", "--key", key, "-o", o, p), "armor")
		if _, err := os.Stat(o); !os.IsNotExist(err) {
			t.Fatalf("%s: output left behind", name)
		}
	}
	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--range", "0:10", asc), "armored")

	// Armor is text: a terminal may have it without -o -.
	shown, r := runOnTerminal(t, []byte("secret\n"), "encrypt", "--key", key, "-a", "-")
	if r.code != 0 || !strings.Contains(shown, armor.Begin) {
		t.Fatalf("armored encrypt to a terminal: exit %d, stderr %q, shown %.80q", r.code, r.stderr, shown)
	}
}
