package main

import (
	"io"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/spf13/cobra"
)

func newEncryptCmd() *cobra.Command {
	var (
		keys, pairs, required   []string
		frameSize, suite, outTo string
		force                   bool
	)
	cmd := &cobra.Command{
		Use:   "encrypt --key URI [--key URI]... [--context k=v]... [--required-context-key KEY]... [--frame-size BYTES] [--suite 0478|0578] [-o OUT] IN",
		Short: "Encrypt a file (or - for stdin) under one or more keys",
		Example: `  head -c 32 /dev/urandom > aes.key
  hsmenv encrypt --key 'raw-aes:namespace=demo;name=k1?key-file=aes.key' \
      --context purpose=backup -o report.pdf.enc report.pdf`,
		Args: oneInput,
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
			regular := false
			if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
				opts.PlaintextSize, regular = st.Size(), true
			}
			enc, err := envelope.NewEncrypter(ctx, out, kr, opts)
			if err != nil {
				return err
			}
			size := int64(-1)
			if regular {
				size = opts.PlaintextSize
			}
			bar := newProgress(size, "encrypting")
			var ra io.ReaderAt = in
			if regular {
				var unmap func()
				ra, unmap = mapInput(in)
				defer unmap()
			}
			r, ra := withProgress(bar, in, ra)
			if regular { // the workers read the file in parallel
				_, err = enc.ReadFromAt(ra, opts.PlaintextSize)
			} else {
				_, err = io.Copy(enc, r)
			}
			finishProgress(bar)
			if err != nil {
				enc.Close()
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
			return out.Commit()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI to wrap the data key under (repeat for several)")
	f.StringArrayVar(&pairs, "context", nil, "encryption context pair key=value (repeatable)")
	f.StringArrayVar(&required, "required-context-key", nil, "authenticate the --context pair of KEY but do not store it: decrypt then needs it in --context (repeatable)")
	f.StringVar(&frameSize, "frame-size", "", "plaintext bytes per frame (default 64KiB)")
	f.StringVar(&suite, "suite", "0478", "algorithm suite: 0478, or 0578 for an ECDSA P-384 signature")
	f.StringVarP(&outTo, "output", "o", "", "output file (default standard output)")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link), or write to an existing FIFO or device")
	return cmd
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
