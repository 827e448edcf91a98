// Package fipstest runs a test in Go's FIPS 140-3 mode, for the packages
// that check every primitive they use is in the module and allowed there.
package fipstest

import (
	"bytes"
	"crypto/fips140"
	"os"
	"os/exec"
	"testing"
)

const childEnv = "HSMENV_FIPS_CHILD"

// InChild reports whether the calling test runs in FIPS mode and should
// go on. Called in the test process, it runs the test named name again in
// a child process with GODEBUG=fips140=on, fails t if that child fails or
// did not reach FIPS mode, and returns false. In the child it checks that
// FIPS mode is on and returns true.
func InChild(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(childEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^"+name+"$", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=on", childEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("fips140 enabled")) {
			t.Fatalf("FIPS child: %v\n%s", err, out)
		}
		return false
	}
	if !fips140.Enabled() {
		t.Fatal("GODEBUG=fips140=on did not enable FIPS 140-3 mode")
	}
	t.Log("fips140 enabled")
	return true
}
