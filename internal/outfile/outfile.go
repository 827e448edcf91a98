// Package outfile writes command output so that a failure leaves nothing
// behind, and so that a file someone else planted at the output path cannot
// receive it.
//
// A new or replaced output is written to a temporary file beside the target
// (an unnamed O_TMPFILE on Linux) and put in place only on success: by a
// link or rename that never follows a symbolic link at the target and, when
// overwriting was not allowed, never replaces anything that appeared there
// meanwhile. Standard output ("-", "/dev/stdout", "/dev/fd/N") and /dev/null
// are written directly. Any other existing target that is not a regular
// file (a FIFO, a device, a socket) is written directly only with force; a
// symbolic link is refused without force (with it, the link itself is
// replaced), and a target that belongs to another user (not root) is
// refused even with force.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

var (
	// ErrExists reports a target that exists when overwriting was not
	// allowed.
	ErrExists = errors.New("output file exists (use --force to overwrite)")
	// ErrNotRegular reports an existing target that is not a regular file
	// (a FIFO, a device, a socket, a directory) when writing to it was not
	// asked for with force.
	ErrNotRegular = errors.New("output exists and is not a regular file")
	// ErrSymlink reports a symbolic link at the target when force was not
	// given: hsmenv never writes through it.
	ErrSymlink = errors.New("output is a symbolic link")
	// ErrNotOwner reports a target that belongs to another user (not root):
	// refused even with force.
	ErrNotOwner = errors.New("output belongs to another user")
	// ErrIsInput reports a target that is the input file.
	ErrIsInput = errors.New("the output is the input file")
)

// File is an output in progress. Write to it, then Commit or Abort.
type File struct {
	w      io.Writer
	tmp    *os.File // nil when writing directly
	direct *os.File // a special file we opened and must close
	target string
	// replace: Commit may replace whatever is at target (force); else it
	// fails if anything appeared there.
	replace bool
	done    bool
	// unnamed: tmp has no name yet (O_TMPFILE): a process killed before
	// Commit leaves nothing behind, not even a temporary file.
	unnamed bool
}

// noUnnamed makes Create use a named temporary file (tests).
var noUnnamed bool

// Create prepares path for writing. "" and "-" mean standard output;
// "/dev/stdout", "/dev/stderr" and "/dev/fd/N" the process's own
// descriptors; "/dev/null" is written directly. An existing regular file
// or symbolic link is refused unless force is set (then replaced on
// Commit, never written through), any other existing file (FIFO, device,
// socket) is written directly only with force, and a target owned by
// another user (not root) is refused. in must not be the same file as
// path.
func Create(path string, force bool, in string) (*File, error) {
	if path == "" || path == "-" {
		return &File{w: os.Stdout}, nil
	}
	if f, ok, err := ownDescriptor(path); ok {
		return f, err
	}
	lst, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		lst = nil
	case err != nil:
		return nil, err
	}
	if lst != nil {
		if err := checkOwner(path, lst); err != nil {
			return nil, err
		}
		if in != "" && in != "-" {
			// Through a link too: the output is never the input.
			if st, err := os.Stat(path); err == nil {
				if ist, ierr := os.Stat(in); ierr == nil && os.SameFile(ist, st) {
					return nil, fmt.Errorf("%s: %w", path, ErrIsInput)
				}
			}
		}
		m := lst.Mode()
		switch {
		case m.IsDir():
			return nil, fmt.Errorf("%s: %w: it is a directory", path, ErrNotRegular)
		case m&fs.ModeSymlink != 0:
			if !force {
				return nil, fmt.Errorf("%s: %w; hsmenv does not write through links: give the real path, or --force to replace the link itself", path, ErrSymlink)
			}
		case m.IsRegular():
			if !force {
				return nil, fmt.Errorf("%s: %w", path, ErrExists)
			}
		default:
			if !force {
				return nil, fmt.Errorf("%s: %w: it is a %s; hsmenv writes to one only with --force (or use -o - and redirect)", path, ErrNotRegular, kind(m))
			}
			return openSpecial(path, lst)
		}
	}
	dir := filepath.Dir(path)
	if !noUnnamed {
		if tmp, ok := openUnnamed(dir); ok {
			return &File{w: tmp, tmp: tmp, target: path, replace: force, unnamed: true}, nil
		}
	}
	// O_EXCL with a random name: nothing planted is followed or reused.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, targetError("creating", path, err)
	}
	return &File{w: tmp, tmp: tmp, target: path, replace: force}, nil
}

// ownDescriptor handles the paths that name this process's own output or
// the null device, which nobody can plant: ok is false for any other path.
func ownDescriptor(path string) (f *File, ok bool, err error) {
	switch p := filepath.Clean(path); p {
	case "/dev/stdout":
		return &File{w: os.Stdout}, true, nil
	case "/dev/stderr":
		return &File{w: os.Stderr}, true, nil
	case "/dev/null":
		null, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return nil, true, err
		}
		if st, err := null.Stat(); err != nil || st.Mode()&fs.ModeCharDevice == 0 {
			null.Close()
			return nil, true, fmt.Errorf("%s: %w: /dev/null is not the null device here", p, ErrNotRegular)
		}
		return &File{w: null, direct: null}, true, nil
	default:
		n, err := strconv.Atoi(strings.TrimPrefix(p, "/dev/fd/"))
		if !strings.HasPrefix(p, "/dev/fd/") || err != nil || n < 0 {
			return nil, false, nil
		}
		// A descriptor the caller set up, e.g. by a shell's process
		// substitution -o >(gzip > out.gz).
		d, err := dupFD(n)
		if err != nil {
			return nil, true, fmt.Errorf("%s: %w", p, err)
		}
		return &File{w: d, direct: d}, true, nil
	}
}

// kind names the type of a file that is not regular, for errors.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO (named pipe)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// Write writes to the temporary file (or directly to a special file).
func (f *File) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil && f.tmp != nil {
		err = targetError("writing", f.target, err)
	}
	return n, err
}

// targetError restates an error about the temporary file, whose name (or
// "(unnamed)") means nothing to the user, as one about target: "writing
// OUT: no space left on device". The cause (an errno) stays matchable with
// errors.Is. A nil err stays nil.
func targetError(op, target string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return fmt.Errorf("%s %s: %w", op, target, err)
}

// Commit syncs the temporary file and puts it at the target: linked there
// if overwriting was not allowed (failing with ErrExists if something
// appeared there meanwhile), else renamed over it. Neither follows a
// symbolic link at the target.
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
		return targetError("writing", f.target, err)
	}
	if f.unnamed && !f.replace {
		// Name the file at the target itself: link(2) fails if anything is
		// there, and does not follow a symbolic link.
		err := linkUnnamed(f.tmp, f.target)
		f.tmp.Close()
		return f.existsError(err)
	}
	name := f.tmp.Name()
	if f.unnamed {
		// Give the file a temporary name beside the target, then rename it
		// over the target: the replacement stays atomic.
		var err error
		if name, err = linkUnnamedTemp(f.tmp, f.target); err != nil {
			f.tmp.Close()
			return targetError("writing", f.target, err)
		}
	}
	if err := f.tmp.Close(); err != nil {
		os.Remove(name)
		return targetError("writing", f.target, err)
	}
	var err error
	if f.replace {
		err = targetError("writing", f.target, os.Rename(name, f.target))
	} else {
		err = f.existsError(renameNoReplace(name, f.target))
	}
	if err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// existsError turns "the target exists" from a link or no-replace rename
// into ErrExists, and any other error into one about the target.
func (f *File) existsError(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w (it appeared while hsmenv was writing)", f.target, ErrExists)
	}
	return targetError("writing", f.target, err)
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

// renameNoReplace renames from to to unless to exists (then an error
// matching fs.ErrExist). It never follows a symbolic link at to.
func renameNoReplace(from, to string) error {
	err := renameat2NoReplace(from, to)
	if !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	// link(2) fails if to exists; then drop the temporary name.
	err = os.Link(from, to)
	switch {
	case err == nil:
		return os.Remove(from)
	case errors.Is(err, fs.ErrExist):
		return err
	}
	// No hard links on this file system either: check, then rename (the
	// check and the rename are not atomic here).
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

// WriteFile writes data to path as Create and Commit do ("" and "-" are
// standard output): nothing is left behind on failure, and an existing
// file is replaced only with force.
func WriteFile(path string, force bool, data []byte) error {
	f, err := Create(path, force, "")
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
