package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newDecryptCmd() *cobra.Command {
	var (
		keys, pairs   []string
		reproduced    []string
		rng, outTo    string
		metaOut       string
		force, legacy bool
		bf            batchFlags
	)
	cmd := &cobra.Command{
		Use:   "decrypt --key URI [--key URI]... [--context k=v]... [--require-context k=v]... [--range START:END] [--metadata-output FILE] {[-o OUT] IN | -o DIR IN.enc... | -r DIR -o DIR}",
		Short: "Decrypt a message (or - for stdin), or many, with any one of their keys",
		Long: `Decrypt a message. Every byte written has been authenticated; with -o, a
failure leaves no output file. Without -o, the plaintext goes to standard
output; on a terminal only text is written there (-o - writes anything).
--range START:END decrypts plaintext bytes [START, END) of a message file
by reading only the frames they fall in (either bound may be omitted).
--context gives the encryption context again (the pairs encrypted with
--required-context-key must be given).

With several inputs, or -o naming an existing directory, each NAME.enc
goes to DIR/NAME; with -r DIR, every file under DIR goes to the same path
under -o DIR without .enc. An input whose name does not end in .enc is
refused there (decrypt it alone with -o FILE). Keys are opened once; files
are decrypted several at a time; a file that fails is named on standard
error and leaves no output, the others are done, and the exit status is 1.`,
		Example: `  hsmenv decrypt --key 'raw-aes:namespace=demo;name=k1?key-file=aes.key' \
      --require-context purpose=backup -o report.pdf report.pdf.enc
  hsmenv decrypt --key "$URI" --range 1048576:1052672 big.enc | xxd | head
  hsmenv decrypt --key "$URI" -r backups.enc/ -o restored/`,
		Args: inputArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req, err := parsePairs("--require-context", pairs)
			if err != nil {
				return err
			}
			rep, err := parsePairs("--context", reproduced)
			if err != nil {
				return err
			}
			opts := envelope.DecryptOptions{RequiredContext: req, ReproducedContext: rep}
			if legacy {
				opts.Policy = envelope.RequireEncryptAllowDecrypt
			}
			jobs, batch, err := planFiles(args, outTo, bf.recursive, stripSuffix)
			if err != nil {
				return err
			}
			if rng != "" && batch {
				return usagef("--range decrypts one file")
			}
			if err := bothStdout(batch, outTo, metaOut); err != nil {
				return err
			}
			meta, err := openMeta(metaOut, force)
			if err != nil {
				return err
			}
			defer meta.abort()
			kr, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			d := &decryptRun{kr: kr, opts: opts, rng: rng, force: force, progress: !batch, terminal: !batch && unaskedTerminal(outTo)}
			err = runFiles(ctx, jobs, batch, meta, d.file)
			if errors.Is(err, errTerminal) {
				return errTerminal
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI that may open the message (repeat for several)")
	f.StringArrayVar(&reproduced, "context", nil, "the encryption context pair key=value the message was made with: a stored pair must match, an unstored one is authenticated (repeatable)")
	f.StringArrayVar(&pairs, "require-context", nil, "fail unless the message's context has key=value (repeatable)")
	f.StringVar(&rng, "range", "", "decrypt only plaintext bytes START:END (END exclusive)")
	f.StringVarP(&outTo, "output", "o", "", "output file (default standard output), or the directory of many outputs")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link), or write to an existing FIFO or device")
	f.BoolVar(&legacy, "allow-legacy", false, "also decrypt legacy (v1, non-committing) messages")
	f.StringVar(&metaOut, "metadata-output", "", "write one JSON line per file written (message id, suite, context, EDKs, sizes) to FILE, or - for standard output")
	bf.add(cmd)
	return cmd
}

// decryptRun is what decrypt does to each file.
type decryptRun struct {
	kr   *envelope.Keyring
	opts envelope.DecryptOptions
	rng  string
	// terminal: the output is a terminal nobody asked for with -o -, so
	// only text goes there.
	force, progress, terminal bool
}

// file decrypts j.in to j.out and describes what it wrote.
func (d *decryptRun) file(ctx context.Context, j fileJob) (fileRecord, error) {
	in, out, err := openFiles(j.in, j.out, d.force)
	if err != nil {
		return fileRecord{}, err
	}
	defer in.Close()
	defer out.Abort()
	w := &countWriter{w: out}
	if d.terminal {
		w.w = textOnly{out}
	}
	src, size, armored, err := openMessage(in)
	if err != nil {
		return fileRecord{}, err
	}
	var h *envelope.Header
	switch {
	case d.rng != "" && armored:
		return fileRecord{}, usagef("--range reads frames in place, which an armored message does not allow: decrypt it whole")
	case d.rng != "":
		h, err = d.decryptRange(ctx, in, size, w)
	case armored:
		h, size, err = d.decryptStream(ctx, src, size, true, w)
	default:
		h, size, err = d.decrypt(ctx, in, src, size, w)
	}
	if err != nil {
		return fileRecord{}, err
	}
	if err := out.Commit(); err != nil {
		return fileRecord{}, err
	}
	return newRecord("decrypt", j, h, w.n, size), nil
}

// decryptRange writes the --range of the message file in (size bytes) to w.
func (d *decryptRun) decryptRange(ctx context.Context, in *os.File, size int64, w io.Writer) (*envelope.Header, error) {
	if size < 0 {
		return nil, usagef("--range needs a message in a regular file, not a pipe")
	}
	ra, unmap := mapInput(in)
	defer unmap()
	rr, err := envelope.OpenRange(ctx, ra, size, d.kr, d.opts)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	start, end, err := parseRange(d.rng, rr.Size())
	if err != nil {
		return nil, err
	}
	if _, err := rr.WriteRange(ctx, w, start, end); err != nil {
		return nil, err
	}
	return rr.Header(), nil
}

// decrypt writes the plaintext of the binary message in (size bytes, -1
// for a stream read through src) to w, and returns its header and the bytes
// of the message read.
func (d *decryptRun) decrypt(ctx context.Context, in *os.File, src io.Reader, size int64, w io.Writer) (*envelope.Header, int64, error) {
	if size < 0 {
		return d.decryptStream(ctx, src, size, false, w)
	}
	var bar *progressbar.ProgressBar
	if d.progress {
		bar = newProgress(size, "decrypting")
	}
	defer finishProgress(bar)
	ra, unmap := mapInput(in)
	defer unmap()
	_, ra = withProgress(bar, nil, ra)
	// A file: the workers read their own frames in parallel.
	h, err := envelope.DecryptAt(ctx, ra, size, w, d.kr, d.opts)
	return h, size, err
}

// decryptStream writes the plaintext of the message read from src (size
// bytes if known, for the progress bar; armored or not) to w, and returns
// its header and the bytes read from src.
func (d *decryptRun) decryptStream(ctx context.Context, src io.Reader, size int64, armored bool, w io.Writer) (*envelope.Header, int64, error) {
	var bar *progressbar.ProgressBar
	if d.progress {
		bar = newProgress(size, "decrypting")
	}
	defer finishProgress(bar)
	r, _ := withProgress(bar, src, nil)
	cr := &countReader{r: r}
	dec, err := envelope.NewDecrypter(ctx, unarmored(cr, armored), d.kr, d.opts)
	if err != nil {
		return nil, 0, err
	}
	defer dec.Close()
	if _, err := io.Copy(w, dec); err != nil {
		return nil, 0, err
	}
	return dec.Header(), cr.n, nil
}

// parseRange parses START:END against the plaintext size.
func parseRange(s string, size int64) (int64, int64, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, usagef("--range %q: expected START:END", s)
	}
	start, end := int64(0), size
	var err error
	if a != "" {
		if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 {
			return 0, 0, usagef("--range %q: START is not a byte offset", s)
		}
	}
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < 0 {
			return 0, 0, usagef("--range %q: END is not a byte offset", s)
		}
	}
	if start > end {
		return 0, 0, usagef("--range %q: START is after END", s)
	}
	if end > size {
		return 0, 0, fmt.Errorf("%w: --range %s ends past the plaintext, which is %d bytes", envelope.ErrRange, s, size)
	}
	return start, end, nil
}
