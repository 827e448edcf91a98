//go:build linux

package mmapfile

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var page = os.Getpagesize()

func pageSize() int { return page }

// dupFile duplicates f's descriptor (close-on-exec), without f.Fd()'s side
// effect of putting f in blocking mode.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("mmapfile: duplicating the descriptor of %s: %w", f.Name(), derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// mmapRead maps n bytes of f at off (a multiple of the page size),
// read-only and shared.
func mmapRead(f *os.File, off int64, n int) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var data []byte
	var merr error
	if err := rc.Control(func(fd uintptr) {
		data, merr = unix.Mmap(int(fd), off, n, unix.PROT_READ, unix.MAP_SHARED)
	}); err != nil {
		return nil, err
	}
	return data, merr
}

func munmap(b []byte) { _ = unix.Munmap(b) }

func sliceAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
