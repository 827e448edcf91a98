//go:build !linux

package mmapfile

import (
	"os"
	"unsafe"
)

func pageSize() int { return os.Getpagesize() }

func dupFile(*os.File) (*os.File, error) { return nil, ErrUnsupported }

func mmapRead(*os.File, int64, int) ([]byte, error) { return nil, ErrUnsupported }

func munmap([]byte) {}

func sliceAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
