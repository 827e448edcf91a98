package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/tpm"
	"github.com/spf13/cobra"
)

// encSuffix is what encrypt adds to a file name in a batch and decrypt
// strips.
const encSuffix = ".enc"

// fileJob is one input and where its output goes ("" or "-": standard
// output). err, when set, is why the file is not processed (found while
// planning: a directory, a name without .enc, a symbolic link).
type fileJob struct {
	in, out string
	err     error
}

// batchFlags are the flags of encrypt and decrypt for many files.
type batchFlags struct {
	recursive bool
}

func (b *batchFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&b.recursive, "recursive", "r", false, "process the files under the directory IN into the same tree under -o DIR")
}

// inputArgs checks the positional arguments of encrypt and decrypt: one
// input or more.
func inputArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("%s needs an input file (- for standard input), or several with -o DIR", cmd.Name())
	}
	return nil
}

// rename maps an input's base name to its output's base name.
type rename func(base string) (string, error)

// addSuffix is encrypt's rename.
func addSuffix(base string) (string, error) { return base + encSuffix, nil }

// stripSuffix is decrypt's rename.
func stripSuffix(base string) (string, error) {
	name, ok := strings.CutSuffix(base, encSuffix)
	if !ok || name == "" {
		return "", fmt.Errorf("the name does not end in %s, so there is no output name to give it (decrypt it alone with -o FILE)", encSuffix)
	}
	return name, nil
}

// planFiles turns the inputs and -o into jobs. batch is false for the one
// input of today's contract (`encrypt [-o OUT] IN`), which keeps its
// behaviour exactly; it is true when -o names an existing directory, for
// several inputs (-o must then be an existing directory) and for
// --recursive (which creates -o DIR like mkdir -p, and mirrors the tree).
func planFiles(args []string, outTo string, recursive bool, name rename) (jobs []fileJob, batch bool, err error) {
	if recursive {
		return planTree(args, outTo, name)
	}
	dir := isDir(outTo)
	if len(args) == 1 && !dir {
		return []fileJob{{in: args[0], out: outTo}}, false, nil
	}
	if !dir {
		return nil, false, usagef("%d inputs need -o DIR, an existing directory", len(args))
	}
	seen := map[string]string{}
	for _, in := range args {
		if in == "-" {
			return nil, false, usagef("standard input (-) needs -o FILE, and cannot be one of several inputs")
		}
		j := fileJob{in: in}
		if isDir(in) {
			j.err = errors.New("is a directory (use --recursive)")
		} else if base, err := name(filepath.Base(in)); err != nil {
			j.err = err
		} else {
			j.out = filepath.Join(outTo, base)
			j.err = claim(seen, j)
		}
		jobs = append(jobs, j)
	}
	return jobs, true, nil
}

// planTree walks the directory args[0] for --recursive: each regular file
// becomes a job whose output has the same relative path under outTo;
// directories are mirrored (created as files are written into them, empty
// ones at the end); symbolic links and special files are not followed and
// count as failed. outTo is skipped when it lies inside the tree.
func planTree(args []string, outTo string, name rename) ([]fileJob, bool, error) {
	if len(args) != 1 || !isDir(args[0]) {
		return nil, false, usagef("--recursive takes one directory, got %s", strings.Join(args, " "))
	}
	if isStdout(outTo) {
		return nil, false, usagef("--recursive needs -o DIR")
	}
	if st, err := os.Stat(outTo); err == nil && !st.IsDir() {
		return nil, false, usagef("-o %s: not a directory", outTo)
	}
	root := args[0]
	outSt, _ := os.Stat(outTo)
	if rootSt, err := os.Stat(root); err == nil && outSt != nil && os.SameFile(rootSt, outSt) {
		return nil, false, usagef("-o %s is the directory --recursive reads: give another one", outTo)
	}
	var jobs []fileJob
	seen := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			jobs = append(jobs, fileJob{in: path, err: err})
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch t := d.Type(); {
		case t.IsDir():
			if st, err := os.Stat(path); err == nil && outSt != nil && os.SameFile(st, outSt) {
				return filepath.SkipDir
			}
			jobs = append(jobs, fileJob{in: path, out: filepath.Join(outTo, rel)})
		case t&fs.ModeSymlink != 0:
			jobs = append(jobs, fileJob{in: path, err: errors.New("symbolic link, not followed")})
		case !t.IsRegular():
			jobs = append(jobs, fileJob{in: path, err: errors.New("not a regular file")})
		default:
			j := fileJob{in: path}
			if base, err := name(d.Name()); err != nil {
				j.err = err
			} else {
				j.out = filepath.Join(outTo, filepath.Dir(rel), base)
				j.err = claim(seen, j)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, true, err
}

// claim records j's output, refusing one that an earlier input claimed.
func claim(seen map[string]string, j fileJob) error {
	if first, ok := seen[j.out]; ok {
		return fmt.Errorf("same output %s as %s", j.out, first)
	}
	seen[j.out] = j.in
	return nil
}

// isDir reports whether path is an existing directory (through links).
func isDir(path string) bool {
	if path == "" || path == "-" {
		return false
	}
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// isDirJob reports whether j mirrors a directory of the tree.
func isDirJob(j fileJob) bool { return j.err == nil && isDir(j.in) && j.out != "" }

// batchWorkers is how many files are processed at once. A small file is
// sealed in one goroutine and then waits for its fsync and the KEK (a
// PKCS#11 or TPM round trip), so several in flight use the cores and the
// disk; a big file already uses every core, and each in flight holds its
// own buffers, so the pool stays small. KEKs are safe for concurrent use
// (envelope.KEK); a TPM serializes the calls itself.
func batchWorkers() int {
	return min(2*runtime.GOMAXPROCS(0), 8)
}

// runBatch processes jobs on batchWorkers goroutines with do, reporting
// each failure on standard error as one line naming the file, and each
// committed file to meta. The other files are still done, except after an
// error that every further file would hit too (a PIN, the token or TPM,
// see stopsBatch). It returns the cause of ctx after a signal (the files
// in progress are aborted; those committed stay, with their metadata), and
// otherwise an error counting the failed files, if any.
func runBatch(ctx context.Context, jobs []fileJob, meta *metaWriter, do func(context.Context, fileJob) (fileRecord, error)) error {
	run, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		mu           sync.Mutex
		files, nfail int
		done         int
		dirs         []fileJob
	)
	fail := func(j fileJob, err error) {
		mu.Lock()
		defer mu.Unlock()
		nfail++
		fmt.Fprintf(os.Stderr, "hsmenv: %s: %s\n", j.in, fileError(j, err))
	}
	next := make(chan fileJob)
	var wg sync.WaitGroup
	for range batchWorkers() {
		wg.Go(func() {
			for j := range next {
				rec, err := doFile(run, j, do)
				if err == nil {
					err = meta.add(rec)
					if err != nil {
						stop(err)
					}
				}
				switch {
				case err == nil:
					mu.Lock()
					done++
					mu.Unlock()
				case run.Err() != nil && !errors.Is(err, context.Cause(run)):
					// Stopped by a signal or another file's error: not this
					// file's failure.
				default:
					fail(j, err)
					if stopsBatch(err) {
						stop(err)
					}
				}
			}
		})
	}
feed:
	for _, j := range jobs {
		switch {
		case j.err != nil:
			files++
			fail(j, j.err)
			continue
		case isDirJob(j):
			dirs = append(dirs, j)
			continue
		}
		files++
		select {
		case next <- j:
		case <-run.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		meta.finish()
		return context.Cause(ctx)
	}
	if run.Err() == nil {
		for _, d := range dirs {
			if err := os.MkdirAll(d.out, 0o700); err != nil {
				files++
				fail(d, err)
			}
		}
	}
	if err := meta.finish(); err != nil {
		return err
	}
	if nfail == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d files failed", nfail, files)
	if left := files - nfail - done; left > 0 {
		msg += fmt.Sprintf("; %d not attempted after that error", left)
	}
	return errors.New(msg)
}

// runFiles does the jobs of planFiles: the one file of today's contract
// with its error as it is, or a batch (runBatch). meta gets the line of
// each committed file and is finished at the end.
func runFiles(ctx context.Context, jobs []fileJob, batch bool, meta *metaWriter, do func(context.Context, fileJob) (fileRecord, error)) error {
	if batch {
		return runBatch(ctx, jobs, meta, do)
	}
	rec, err := do(ctx, jobs[0])
	if err == nil {
		err = meta.add(rec)
	}
	if err != nil {
		return err
	}
	return meta.finish()
}

// doFile makes j's output directory, then does j.
func doFile(ctx context.Context, j fileJob, do func(context.Context, fileJob) (fileRecord, error)) (fileRecord, error) {
	if err := os.MkdirAll(filepath.Dir(j.out), 0o700); err != nil {
		return fileRecord{}, err
	}
	return do(ctx, j)
}

// fileError is err without what the line already names: the input path
// of an error opening it.
func fileError(j fileJob, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == j.in {
		err = pe.Err
	}
	return errorLine(err)
}

// stopsBatch reports an error of the keys rather than of one file: every
// further file would fail the same way (and a wrong PIN must not be tried
// again and again), so the batch stops.
func stopsBatch(err error) bool {
	for _, s := range []error{hsm.ErrPIN, hsm.ErrModule, hsm.ErrTokenGone, hsm.ErrTokenNotFound, tpm.ErrPIN, tpm.ErrLockout, tpm.ErrDevice,
		pin.ErrNoTerminal, pin.ErrInterrupted, pin.ErrNoPIN, pin.ErrEmpty} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
