// Package outfile writes command output so that a failure leaves nothing
// behind: a regular file is written to a temporary file beside the target
// and renamed over it only on success. Standard output, /dev/null, FIFOs and
// devices are written directly (renaming over /dev/null as root would
// replace the device).
package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists reports a target that exists when overwriting was not allowed.
var ErrExists = errors.New("output file exists (use --force to overwrite)")

// File is an output in progress. Write to it, then Commit or Abort.
type File struct {
	w      io.Writer
	tmp    *os.File // nil when writing directly
	direct *os.File // a special file we opened and must close
	target string
	done   bool
	// unnamed: tmp has no name yet (O_TMPFILE): a process killed before
	// Commit leaves nothing behind, not even a temporary file.
	unnamed bool
}

// Create prepares path for writing. "" and "-" mean standard output. An
// existing regular file is refused unless force is set; in must not be the
// same file as path.
func Create(path string, force bool, in string) (*File, error) {
	if path == "" || path == "-" {
		return &File{w: os.Stdout}, nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &File{w: f, direct: f}, nil
	case err == nil && !force:
		return nil, fmt.Errorf("%s: %w", path, ErrExists)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if in != "" && in != "-" && err == nil {
		if ist, ierr := os.Stat(in); ierr == nil && os.SameFile(ist, st) {
			return nil, fmt.Errorf("%s: the output is the input file", path)
		}
	}
	if tmp, ok := openUnnamed(filepath.Dir(path)); ok {
		return &File{w: tmp, tmp: tmp, target: path, unnamed: true}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{w: tmp, tmp: tmp, target: path}, nil
}

// Write writes to the temporary file (or directly to a special file).
func (f *File) Write(p []byte) (int, error) { return f.w.Write(p) }

// Commit syncs the temporary file and renames it over the target.
func (f *File) Commit() error {
	if f.done {
		return errors.New("outfile: already finished")
	}
	f.done = true
	if f.direct != nil {
		return f.direct.Close()
	}
	if f.tmp == nil {
		return nil
	}
	if err := f.tmp.Sync(); err != nil {
		f.abortTmp()
		return err
	}
	name := f.tmp.Name()
	if f.unnamed {
		// Give the file a temporary name beside the target, then rename it
		// over the target: the replacement stays atomic.
		var err error
		if name, err = linkUnnamed(f.tmp, f.target); err != nil {
			f.tmp.Close()
			return err
		}
	}
	if err := f.tmp.Close(); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, f.target); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// Abort removes the temporary file; the target is left as it was. It is a
// no-op after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	if f.direct != nil {
		f.direct.Close()
	}
	if f.tmp != nil {
		f.abortTmp()
	}
}

func (f *File) abortTmp() {
	f.tmp.Close()
	if !f.unnamed {
		os.Remove(f.tmp.Name())
	}
}
