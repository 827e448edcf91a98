package main

import (
	"context"
	"io"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func newEncryptCmd() *cobra.Command {
	var (
		keys, pairs, required   []string
		frameSize, suite, outTo string
		metaOut                 string
		force, armored          bool
		bf                      batchFlags
	)
	cmd := &cobra.Command{
		Use:   "encrypt --key URI [--key URI]... [--context k=v]... [--required-context-key KEY]... [--frame-size BYTES] [--suite 0478|0578] [-a] [--metadata-output FILE] {[-o OUT] IN | -o DIR IN... | -r DIR -o DIR}",
		Short: "Encrypt a file (or - for stdin), or many, under one or more keys",
		Long: `Encrypt IN (- for standard input) to -o OUT, or to standard output when that
is not a terminal (-o - writes there anyway). With several inputs, or -o
naming an existing directory, each IN goes to DIR/NAME.enc; with -r DIR,
every file under DIR goes to the same path under -o DIR plus .enc (the
directory is created; symbolic links are not followed). Keys are opened
once; files are encrypted several at a time. A file that fails is named on
standard error and leaves no output; the others are done, and the exit
status is 1. --metadata-output writes one JSON line per file written.
-a writes the message as ASCII armor (base64 text between BEGIN and END
lines), which decrypt and inspect recognise.`,
		Example: `  head -c 32 /dev/urandom > aes.key
  hsmenv encrypt --key 'raw-aes:namespace=demo;name=k1?key-file=aes.key' \
      --context purpose=backup -o report.pdf.enc report.pdf
  hsmenv encrypt --key "$KEY" -o vault/ *.pdf
  hsmenv encrypt --key "$KEY" -r backups/ -o backups.enc/ --metadata-output catalog.jsonl`,
		Args: inputArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ec, err := parsePairs("--context", pairs)
			if err != nil {
				return err
			}
			for _, key := range required {
				if _, ok := ec[key]; !ok {
					return usagef("--required-context-key %q: no --context %s=VALUE to require", key, key)
				}
			}
			opts := envelope.EncryptOptions{Context: ec, RequiredContextKeys: required}
			if opts.Suite, err = parseSuite(suite); err != nil {
				return err
			}
			if frameSize != "" {
				if opts.FrameSize, err = parseSize(frameSize); err != nil {
					return usagef("--frame-size: %v", err)
				}
			}
			jobs, batch, err := planFiles(args, outTo, bf.recursive, addSuffix)
			if err != nil {
				return err
			}
			if !batch && !armored && unaskedTerminal(outTo) {
				return errTerminal
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
			e := &encryptRun{kr: kr, opts: opts, force: force, progress: !batch, armored: armored}
			return runFiles(ctx, jobs, batch, meta, e.file)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI to wrap the data key under (repeat for several)")
	f.StringArrayVar(&pairs, "context", nil, "encryption context pair key=value (repeatable)")
	f.StringArrayVar(&required, "required-context-key", nil, "authenticate the --context pair of KEY but do not store it: decrypt then needs it in --context (repeatable)")
	f.StringVar(&frameSize, "frame-size", "", "plaintext bytes per frame (default 64KiB)")
	f.StringVar(&suite, "suite", "0478", "algorithm suite: 0478, or 0578 for an ECDSA P-384 signature")
	f.StringVarP(&outTo, "output", "o", "", "output file (default standard output), or the directory of many outputs")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link) and --metadata-output file, or write to an existing FIFO or device")
	f.BoolVarP(&armored, "armor", "a", false, "write the message as ASCII armor (base64 text), which decrypt and inspect recognise")
	f.StringVar(&metaOut, "metadata-output", "", "write one JSON line per file written (message id, suite, context, EDKs, sizes) to FILE, or - for standard output")
	bf.add(cmd)
	return cmd
}

// encryptRun is what encrypt does to each file.
type encryptRun struct {
	kr              *envelope.Keyring
	opts            envelope.EncryptOptions
	force, progress bool
	armored         bool // ASCII armor around the message
}

// file encrypts j.in to j.out and describes what it wrote.
func (e *encryptRun) file(ctx context.Context, j fileJob) (fileRecord, error) {
	in, out, err := openFiles(j.in, j.out, e.force)
	if err != nil {
		return fileRecord{}, err
	}
	defer in.Close()
	defer out.Abort()
	opts := e.opts
	regular := false
	if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
		opts.PlaintextSize, regular = st.Size(), true
	}
	w := &countWriter{w: out}
	dst, finishArmor := armoredWriter(w, e.armored)
	enc, err := envelope.NewEncrypter(ctx, dst, e.kr, opts)
	if err != nil {
		return fileRecord{}, err
	}
	size := int64(-1)
	if regular {
		size = opts.PlaintextSize
	}
	var bar *progressbar.ProgressBar
	if e.progress {
		bar = newProgress(size, "encrypting")
	}
	var ra io.ReaderAt = in
	if regular {
		var unmap func()
		ra, unmap = mapInput(in)
		defer unmap()
	}
	r, ra := withProgress(bar, in, ra)
	var n int64
	if regular { // the workers read the file in parallel
		n, err = enc.ReadFromAt(ra, opts.PlaintextSize)
	} else {
		n, err = io.Copy(enc, r)
	}
	finishProgress(bar)
	if err != nil {
		enc.Close()
		return fileRecord{}, err
	}
	if err := enc.Close(); err != nil {
		return fileRecord{}, err
	}
	if err := finishArmor(); err != nil {
		return fileRecord{}, err
	}
	if err := out.Commit(); err != nil {
		return fileRecord{}, err
	}
	return newRecord("encrypt", j, enc.Header(), n, w.n), nil
}

func parseSuite(s string) (envelope.SuiteID, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "0x") {
	case "0478":
		return envelope.SuiteCommit, nil
	case "0578":
		return envelope.SuiteCommitECDSA, nil
	}
	return 0, usagef("--suite %q: hsmenv encrypts with 0478 or 0578", s)
}
