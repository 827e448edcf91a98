//go:build unix

package outfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a target that belongs to neither this user (the
// effective uid) nor root: a file another user planted at the path.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%s: %w (uid %d); hsmenv does not write to or replace another user's file, even with --force: remove it or choose another path", path, ErrNotOwner, uid)
	}
	return nil
}

// openSpecial opens the existing special file at path (a FIFO, a device)
// for writing, without following a symbolic link, and checks that it is
// still the file that was examined (lst).
func openSpecial(path string, lst fs.FileInfo) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !os.SameFile(lst, st) {
		err = fmt.Errorf("%s: the file changed while hsmenv opened it", path)
	}
	if err == nil {
		err = checkOwner(path, st)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{w: f, direct: f}, nil
}

// dupFD returns a copy of descriptor n, to write to and close.
func dupFD(n int) (*os.File, error) {
	d, err := syscall.Dup(n)
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(d)
	return os.NewFile(uintptr(d), fmt.Sprintf("/dev/fd/%d", n)), nil
}
