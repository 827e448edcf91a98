package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// Several hsmenv processes on one SoftHSM2 token at once all succeed:
// encrypts and decrypts, each logging in, while another process generates
// a key. SoftHSM2 2.6.1 rewrites the token's state file on every login and
// writes it out after unlocking it, so the other processes can read it
// empty; without hsmenv's re-initialize-and-retry for that (hsm
// Profile.TornReads) some of them fail with "token not found" or
// CKR_GENERAL_ERROR.
func TestConcurrentProcessesOneToken(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := tok.Env()
	dir := t.TempDir()
	key := tok.URI("kek")
	ok(t, run(t, nil, env, "keygen", "--type", "aes-256", "--key", key))
	pt := []byte("one token, many processes")
	msg := filepath.Join(dir, "msg")
	if err := os.WriteFile(msg, pt, 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "msg.enc")
	ok(t, run(t, nil, env, "encrypt", "--key", key, "-o", enc, msg))

	const rounds, procs = 6, 10
	var failures []string
	for r := range rounds {
		var cmds [][]string
		for i := range procs {
			if i%2 == 0 {
				cmds = append(cmds, []string{"encrypt", "--key", key, "-o", filepath.Join(dir, fmt.Sprintf("e%d-%d.enc", r, i)), msg})
			} else {
				cmds = append(cmds, []string{"decrypt", "--key", key, "-o", filepath.Join(dir, fmt.Sprintf("d%d-%d", r, i)), enc})
			}
		}
		cmds = append(cmds, []string{"keygen", "--type", "aes-256", "--key", tok.URI(fmt.Sprintf("kg%d", r))})
		errs := make([]string, len(cmds))
		var wg sync.WaitGroup
		for i, args := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Sprintf("%s (%v): %s", args[0], err, bytes.TrimSpace(out))
				}
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				failures = append(failures, e)
			}
		}
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d processes failed:\n%s", len(failures), rounds*(procs+1), strings.Join(failures, "\n"))
	}
	// Every encrypt wrote a message that opens, and every decrypt the
	// plaintext; one decrypt run opens all the messages.
	var encs []string
	for r := range rounds {
		for i := range procs {
			if i%2 == 0 {
				encs = append(encs, filepath.Join(dir, fmt.Sprintf("e%d-%d.enc", r, i)))
			}
		}
	}
	opened := filepath.Join(dir, "opened")
	if err := os.Mkdir(opened, 0o700); err != nil {
		t.Fatal(err)
	}
	ok(t, run(t, nil, env, append([]string{"decrypt", "--key", key, "-o", opened}, encs...)...))
	for r := range rounds {
		for i := range procs {
			out := filepath.Join(dir, fmt.Sprintf("d%d-%d", r, i))
			if i%2 == 0 {
				out = filepath.Join(opened, fmt.Sprintf("e%d-%d", r, i))
			}
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%s: %v, %q", out, err, got)
			}
		}
	}
}
