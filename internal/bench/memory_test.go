package bench

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// Need grows with each dimension, counts every kept message, and saturates
// instead of overflowing.
func TestNeed(t *testing.T) {
	base := Options{Size: 1 << 20, Messages: 100, Concurrency: 2}
	n := Need(base)
	if n < 102<<20 || n > 120<<20 {
		t.Fatalf("Need(%+v) = %d, want about 106 MiB", base, n)
	}
	for _, o := range []Options{{Size: 2 << 20, Messages: 100, Concurrency: 2}, {Size: 1 << 20, Messages: 101, Concurrency: 2}, {Size: 1 << 20, Messages: 100, Concurrency: 3}} {
		if Need(o) <= n {
			t.Errorf("Need(%+v) = %d, not more than Need(%+v) = %d", o, Need(o), base, n)
		}
	}
	if got := Need(Options{Size: math.MaxInt, Messages: math.MaxInt, Concurrency: math.MaxInt}); got != math.MaxInt64 {
		t.Errorf("Need of the largest run = %d, want saturation", got)
	}
	if Need(Options{}) != Need(Options{Size: 1024, Messages: 1000, Concurrency: 1}) {
		t.Error("Need does not apply Run's defaults")
	}
}

// A run larger than the memory available is refused before anything is
// allocated, saying how much it needs and has.
func TestRunRefusesWhatDoesNotFit(t *testing.T) {
	have, ok := available()
	if !ok {
		t.Skip("available memory is not known here")
	}
	size := int(have / 2) // Need counts it at least 5 times with one message
	_, err := Run(t.Context(), envelope.NewKeyring(), Options{Size: size, Messages: 1})
	if !errors.Is(err, ErrMemory) || !strings.Contains(err.Error(), FormatBytes(have)) || !strings.Contains(err.Error(), "need about") {
		t.Fatalf("Run of %d bytes with %d available: %v", size, have, err)
	}
}

func TestRunRefusesNegative(t *testing.T) {
	for _, o := range []Options{{Size: -1}, {Messages: -1}, {Concurrency: -1}} {
		if _, err := Run(t.Context(), envelope.NewKeyring(), o); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("Run(%+v): %v", o, err)
		}
	}
}

func TestMemAvailable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("meminfo", "MemTotal:       32594236 kB\nMemFree:         1000000 kB\nMemAvailable:   23869720 kB\nBuffers: 1 kB\n")
	if n, ok := memAvailable(p); !ok || n != 23869720*1024 {
		t.Errorf("memAvailable = %d, %v", n, ok)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: x kB\n", "MemAvailable: 5 MB\n"} {
		if n, ok := memAvailable(write("bad", bad)); ok {
			t.Errorf("memAvailable(%q) = %d, true", bad, n)
		}
	}
	if _, ok := memAvailable(filepath.Join(dir, "missing")); ok {
		t.Error("a missing meminfo was read")
	}

	// cgroup v2: limit less usage; no limit, v1 and hybrid hierarchies give
	// nothing.
	root := filepath.Join(dir, "cg")
	os.MkdirAll(filepath.Join(root, "user.slice", "a.scope"), 0o700)
	write("cg/user.slice/a.scope/memory.max", "1073741824\n")
	write("cg/user.slice/a.scope/memory.current", "73741824\n")
	if n, ok := cgroupAvailable(write("self", "0::/user.slice/a.scope\n"), root); !ok || n != 1000000000 {
		t.Errorf("cgroupAvailable = %d, %v", n, ok)
	}
	write("cg/user.slice/a.scope/memory.max", "max\n")
	if n, ok := cgroupAvailable(write("self", "0::/user.slice/a.scope\n"), root); ok {
		t.Errorf("cgroupAvailable without a limit = %d", n)
	}
	if n, ok := cgroupAvailable(write("self", "4:memory:/x\n0::/\n"), root); ok {
		t.Errorf("cgroupAvailable of a hybrid hierarchy = %d", n)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 1 << 30: "1.0 GiB", 104857600000: "97.7 GiB", math.MaxInt64: "8.0 EiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
