//go:build !unix

package outfile

import (
	"errors"
	"io/fs"
	"os"
)

// checkOwner has no owner to check here.
func checkOwner(string, fs.FileInfo) error { return nil }

// openSpecial opens the existing special file at path for writing.
func openSpecial(path string, _ fs.FileInfo) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &File{w: f, direct: f}, nil
}

// dupFD is not available here.
func dupFD(int) (*os.File, error) { return nil, errors.ErrUnsupported }
