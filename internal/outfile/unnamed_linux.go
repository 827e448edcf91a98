package outfile

import (
	"crypto/rand"
	"errors"
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

// linkUnnamed gives the unnamed file f the name name. Like link(2), it
// fails (fs.ErrExist) if anything is at name, a symbolic link included,
// which it does not follow.
func linkUnnamed(f *os.File, name string) error {
	proc := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "naming the output file", Old: proc, New: name, Err: err}
	}
	return nil
}

// linkUnnamedTemp gives the unnamed file f a fresh temporary name beside
// target and returns it.
func linkUnnamedTemp(f *os.File, target string) (string, error) {
	name := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".tmp-"+rand.Text()[:12])
	return name, linkUnnamed(f, name)
}

// renameat2NoReplace renames from to to unless to exists (RENAME_NOREPLACE);
// errors.ErrUnsupported where the kernel or file system cannot.
func renameat2NoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return errors.ErrUnsupported
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}
