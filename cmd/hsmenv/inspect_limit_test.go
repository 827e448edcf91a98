package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectBoundsEDKs: inspect read every EDK a header claimed (65,535
// of 192 KiB: 12 GiB) before it applied any limit.
func TestInspectBoundsEDKs(t *testing.T) {
	dir := t.TempDir()
	h := []byte{2, 0x04, 0x78}
	h = append(h, make([]byte, 32)...)
	h = append(h, 0, 0, 0x05, 0xDC) // empty context, 1,500 EDKs
	for i := 0; i < 1500; i++ {
		h = append(h, 0, 1, 'p', 0, 1, 'i', 0, 1, 'c')
	}
	h = append(h, 2, 0, 1, 0, 0)
	h = append(h, make([]byte, 32+16)...) // commit key, auth tag
	p := filepath.Join(dir, "many.enc")
	if err := os.WriteFile(p, h, 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, run(t, nil, nil, "inspect", p), "too many encrypted data keys")
	r := ok(t, run(t, nil, nil, "inspect", "--max-edks", "1500", p))
	if !bytes.Contains(r.stdout, []byte("EDKs:        1500")) {
		t.Fatalf("inspect --max-edks 1500: %s", r.stdout)
	}
	r = run(t, nil, nil, "inspect", "--max-edks", "0", p)
	if r.code != 2 || !strings.Contains(string(r.stderr), "--max-edks") {
		t.Fatalf("--max-edks 0: exit %d %s", r.code, r.stderr)
	}
}
