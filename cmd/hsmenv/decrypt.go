package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/spf13/cobra"
)

func newDecryptCmd() *cobra.Command {
	var (
		keys, pairs   []string
		reproduced    []string
		rng, outTo    string
		force, legacy bool
	)
	cmd := &cobra.Command{
		Use:   "decrypt --key URI [--key URI]... [--context k=v]... [--require-context k=v]... [--range START:END] [-o OUT] IN",
		Short: "Decrypt a message (or - for stdin) with any one of its keys",
		Long: `Decrypt a message. Every byte written has been authenticated; with -o, a
failure leaves no output file. --range START:END decrypts plaintext bytes
[START, END) of a message file by reading only the frames they fall in
(either bound may be omitted). --context gives the encryption context
again (the pairs encrypted with --required-context-key must be given).`,
		Example: `  hsmenv decrypt --key 'raw-aes:namespace=demo;name=k1?key-file=aes.key' \
      --require-context purpose=backup -o report.pdf report.pdf.enc
  hsmenv decrypt --key "$URI" --range 1048576:1052672 big.enc | xxd | head`,
		Args: oneInput,
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
			kr, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			in, out, err := openFiles(args[0], outTo, force)
			if err != nil {
				return err
			}
			defer in.Close()
			defer out.Abort()
			if rng != "" {
				st, err := in.Stat()
				if err != nil || !st.Mode().IsRegular() {
					return usagef("--range needs a message in a regular file, not a pipe")
				}
				ra, unmap := mapInput(in)
				defer unmap()
				rr, err := envelope.OpenRange(ctx, ra, st.Size(), kr, opts)
				if err != nil {
					return err
				}
				defer rr.Close()
				start, end, err := parseRange(rng, rr.Size())
				if err != nil {
					return err
				}
				if _, err := rr.WriteRange(ctx, out, start, end); err != nil {
					return err
				}
				return out.Commit()
			}
			size := int64(-1)
			if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
			bar := newProgress(size, "decrypting")
			defer finishProgress(bar)
			var ra io.ReaderAt = in
			if size >= 0 {
				var unmap func()
				ra, unmap = mapInput(in)
				defer unmap()
			}
			r, ra := withProgress(bar, in, ra)
			if size >= 0 {
				// A file: the workers read their own frames in parallel.
				if _, err := envelope.DecryptAt(ctx, ra, size, out, kr, opts); err != nil {
					return err
				}
				return out.Commit()
			}
			dec, err := envelope.NewDecrypter(ctx, r, kr, opts)
			if err != nil {
				return err
			}
			defer dec.Close()
			if _, err := io.Copy(out, dec); err != nil {
				return err
			}
			return out.Commit()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI that may open the message (repeat for several)")
	f.StringArrayVar(&reproduced, "context", nil, "the encryption context pair key=value the message was made with: a stored pair must match, an unstored one is authenticated (repeatable)")
	f.StringArrayVar(&pairs, "require-context", nil, "fail unless the message's context has key=value (repeatable)")
	f.StringVar(&rng, "range", "", "decrypt only plaintext bytes START:END (END exclusive)")
	f.StringVarP(&outTo, "output", "o", "", "output file (default standard output)")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link), or write to an existing FIFO or device")
	f.BoolVar(&legacy, "allow-legacy", false, "also decrypt legacy (v1, non-committing) messages")
	return cmd
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
