package outfile

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openUnnamed opens an unnamed file in dir (O_TMPFILE), mode 0600. ok is
// false where the file system or kernel cannot, or /proc is missing (the
// file could not be linked in later); the caller then uses a named one.
func openUnnamed(dir string) (*os.File, bool) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		return nil, false
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), true
}

// linkUnnamed gives the unnamed file f a temporary name beside target and
// returns it.
func linkUnnamed(f *os.File, target string) (string, error) {
	name := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".tmp-"+rand.Text()[:12])
	proc := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		return "", fmt.Errorf("naming the output file: %w", err)
	}
	return name, nil
}
