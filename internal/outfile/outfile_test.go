//go:build unix

package outfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hsmenv/hsmenv/internal/ostest"
)

// bothTemps runs f with the unnamed (O_TMPFILE) and the named temporary
// file.
func bothTemps(t *testing.T, f func(t *testing.T)) {
	t.Run("unnamed", f)
	t.Run("named", func(t *testing.T) {
		noUnnamed = true
		t.Cleanup(func() { noUnnamed = false })
		f(t)
	})
}

func write(t *testing.T, f *File, s string) {
	t.Helper()
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A FIFO planted at the output path is refused without force: nothing is
// opened or written, its reader receives nothing.
func TestPlantedFIFORefused(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r := ostest.FIFO(t, out)
	f, err := Create(out, false, "")
	if err == nil {
		write(t, f, "plaintext")
	}
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "FIFO") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Create on a FIFO: %v, want ErrNotRegular naming the FIFO and --force", err)
	}
	if got := ostest.Received(t, r); len(got) != 0 {
		t.Fatalf("the FIFO's reader received %q", got)
	}
	// A link to a FIFO elsewhere: refused, even with force not written
	// through (the link itself is replaced).
	elsewhere := filepath.Join(dir, "elsewhere")
	r2 := ostest.FIFO(t, elsewhere)
	link := filepath.Join(dir, "link")
	os.Symlink(elsewhere, link)
	if _, err := Create(link, false, ""); !errors.Is(err, ErrSymlink) {
		t.Fatalf("Create on a link to a FIFO: %v, want ErrSymlink", err)
	}
	f, err = Create(link, true, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "plaintext")
	if got := ostest.Received(t, r2); len(got) != 0 {
		t.Fatalf("the FIFO behind the link received %q", got)
	}
	if st, err := os.Lstat(link); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("--force on a link: %v, %v; want the link replaced by a regular file", st, err)
	}
}

// With force, an existing FIFO is written to: the user asked for it.
func TestForceWritesFIFO(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := ostest.FIFO(t, out)
	f, err := Create(out, true, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "for the reader")
	if got := ostest.Received(t, r); string(got) != "for the reader" {
		t.Fatalf("the FIFO's reader received %q", got)
	}
}

// A symbolic link at the output path is refused without force, and never
// written through; with force the link itself is replaced.
func TestSymlinkRefused(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other")
		os.WriteFile(other, []byte("keep"), 0o600)
		out := filepath.Join(dir, "out")
		os.Symlink(other, out)
		if _, err := Create(out, false, ""); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("Create on a link: %v, want ErrSymlink", err)
		}
		dangling := filepath.Join(dir, "dangling")
		os.Symlink(filepath.Join(dir, "nowhere"), dangling)
		if _, err := Create(dangling, false, ""); !errors.Is(err, ErrSymlink) {
			t.Fatalf("Create on a dangling link: %v, want ErrSymlink", err)
		}
		f, err := Create(out, true, "")
		if err != nil {
			t.Fatal(err)
		}
		write(t, f, "new")
		if b, _ := os.ReadFile(other); string(b) != "keep" {
			t.Fatalf("the link's target was written: %q", b)
		}
		if b, _ := os.ReadFile(out); string(b) != "new" {
			t.Fatalf("output %q", b)
		}
		if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
			t.Fatal("created the dangling link's target")
		}
	})
}

// Something planted at the path after Create (a link, a FIFO) is never
// written through: without force Commit fails with ErrExists and leaves it,
// with force the rename replaces the entry itself.
func TestPlantedDuringWrite(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other")
		os.WriteFile(other, []byte("keep"), 0o600)
		out := filepath.Join(dir, "out")
		f, err := Create(out, false, "")
		if err != nil {
			t.Fatal(err)
		}
		os.Symlink(other, out)
		io.WriteString(f, "secret")
		if err := f.Commit(); !errors.Is(err, ErrExists) {
			t.Fatalf("Commit over a planted link: %v, want ErrExists", err)
		}
		if b, _ := os.ReadFile(other); string(b) != "keep" {
			t.Fatalf("the planted link's target was written: %q", b)
		}
		if st, err := os.Lstat(out); err != nil || st.Mode()&fs.ModeSymlink == 0 {
			t.Fatal("the planted link was replaced without force")
		}
		os.Remove(out)
		if f, err = Create(out, false, ""); err != nil {
			t.Fatal(err)
		}
		r := ostest.FIFO(t, out)
		io.WriteString(f, "secret")
		if err := f.Commit(); !errors.Is(err, ErrExists) {
			t.Fatalf("Commit over a planted FIFO: %v, want ErrExists", err)
		}
		if got := ostest.Received(t, r); len(got) != 0 {
			t.Fatalf("the planted FIFO received %q", got)
		}
		// With force: replaced, not followed.
		os.Remove(out)
		if f, err = Create(out, true, ""); err != nil {
			t.Fatal(err)
		}
		os.Symlink(other, out)
		write(t, f, "secret")
		if b, _ := os.ReadFile(other); string(b) != "keep" {
			t.Fatalf("--force wrote through the planted link: %q", b)
		}
		if b, _ := os.ReadFile(out); string(b) != "secret" {
			t.Fatalf("output %q", b)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".out*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
}

// A target that belongs to another user is refused, even with force.
func TestOtherUsersTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := t.TempDir()
	for _, mk := range []func(string) error{
		func(p string) error { return os.WriteFile(p, []byte("theirs"), 0o666) },
		func(p string) error { return syscall.Mkfifo(p, 0o666) },
		func(p string) error { return os.Symlink("/etc/passwd", p) },
	} {
		p := filepath.Join(dir, "planted")
		os.Remove(p)
		if err := mk(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		for _, force := range []bool{false, true} {
			if _, err := Create(p, force, ""); !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), "uid 65534") {
				t.Fatalf("force=%v: %v, want ErrNotOwner", force, err)
			}
		}
	}
}

// Standard output, /dev/null and the process's own descriptors are written
// directly, without force.
func TestDirectOutputs(t *testing.T) {
	for _, p := range []string{"", "-", "/dev/stdout", "/dev/stderr"} {
		f, err := Create(p, false, "")
		if err != nil || f.tmp != nil || f.direct != nil {
			t.Fatalf("%q: %v", p, err)
		}
		f.Abort()
	}
	f, err := Create("/dev/null", false, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "gone")
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&fs.ModeCharDevice == 0 {
		t.Fatal("/dev/null is no longer a device")
	}
	// /dev/fd/N: a pipe the caller set up.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err = Create("/dev/fd/"+strconv.Itoa(int(w.Fd())), false, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "piped")
	w.Close()
	if b, _ := io.ReadAll(r); string(b) != "piped" {
		t.Fatalf("/dev/fd/N got %q", b)
	}
	// A directory is never an output.
	if _, err := Create(t.TempDir(), true, ""); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("directory: %v", err)
	}
}

// An existing regular file needs force; the input is never the output.
func TestExistingFile(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		os.WriteFile(out, []byte("old"), 0o600)
		if _, err := Create(out, false, ""); !errors.Is(err, ErrExists) {
			t.Fatalf("%v, want ErrExists", err)
		}
		if _, err := Create(out, true, out); !errors.Is(err, ErrIsInput) {
			t.Fatalf("%v, want ErrIsInput", err)
		}
		link := filepath.Join(dir, "link")
		os.Symlink(out, link)
		if _, err := Create(link, true, out); !errors.Is(err, ErrIsInput) {
			t.Fatalf("through a link: %v, want ErrIsInput", err)
		}
		f, err := Create(out, true, "")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(f, "partial")
		f.Abort()
		if b, _ := os.ReadFile(out); string(b) != "old" {
			t.Fatalf("Abort changed the target: %q", b)
		}
		f, _ = Create(out, true, "")
		write(t, f, "new")
		if b, _ := os.ReadFile(out); string(b) != "new" {
			t.Fatalf("output %q", b)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".out*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})
}
