package main

import (
	"context"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/spf13/cobra"
)

func newRewrapCmd() *cobra.Command {
	var (
		keys, to, pairs []string
		outTo, metaOut  string
		force           bool
	)
	cmd := &cobra.Command{
		Use:   "rewrap --key URI --to URI [--to URI]... [--context k=v]... [--metadata-output FILE] -o OUT IN",
		Short: "Rotate KEKs: new EDKs for the --to keys, body bytes untouched",
		Long: `Open the message's data key with --key, wrap it under every --to key, and write
a copy of the message whose header carries only the new EDKs; the body is
copied byte for byte, and every frame is authenticated first (a damaged
message is refused, nothing is written). Keys not among --to no longer open
the result. --context gives the encryption context again, as for decrypt
(needed for pairs encrypted with --required-context-key).
Signed messages (suite 0578) cannot be rewrapped: their signature covers the
header and the signing key no longer exists.`,
		Example: `  hsmenv rewrap --key "$OLD_KEK" --to "$NEW_KEK" --to "$RECOVERY_KEK" -o report.enc.new report.enc`,
		Args:    oneInput,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(to) == 0 {
				return usagef("rewrap needs at least one --to URI")
			}
			if outTo == "" {
				return usagef("rewrap needs -o OUT")
			}
			rep, err := parsePairs("--context", pairs)
			if err != nil {
				return err
			}
			dopts := envelope.DecryptOptions{ReproducedContext: rep}
			if err := bothStdout(false, outTo, metaOut); err != nil {
				return err
			}
			meta, err := openMeta(metaOut, force)
			if err != nil {
				return err
			}
			defer meta.abort()
			from, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			keks, err := resolver.OpenKEKs(ctx, keyOptions(), to...)
			if err != nil {
				return err
			}
			rw := &rewrapRun{from: from, to: envelope.NewKeyring(keks...), opts: dopts, force: force}
			return runFiles(ctx, []fileJob{{in: args[0], out: outTo}}, false, meta, rw.file)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI that opens the message now")
	f.StringArrayVar(&pairs, "context", nil, "the encryption context pair key=value the message was made with, as for decrypt (repeatable)")
	f.StringArrayVar(&to, "to", nil, "key URI to wrap the data key under (repeat for several)")
	f.StringVarP(&outTo, "output", "o", "", "output file")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link) and --metadata-output file, or write to an existing FIFO or device")
	f.StringVar(&metaOut, "metadata-output", "", "write one JSON line (message id, suite, context, new EDKs, size) to FILE, or - for standard output")
	return cmd
}

// rewrapRun is what rewrap does to a file.
type rewrapRun struct {
	from, to *envelope.Keyring
	opts     envelope.DecryptOptions
	force    bool
}

// file rewraps j.in to j.out and describes what it wrote (the new header).
func (rw *rewrapRun) file(ctx context.Context, j fileJob) (fileRecord, error) {
	in, out, err := openFiles(j.in, j.out, rw.force)
	if err != nil {
		return fileRecord{}, err
	}
	defer in.Close()
	defer out.Abort()
	w := &countWriter{w: out}
	src, size, armored, err := openMessage(in)
	if err != nil {
		return fileRecord{}, err
	}
	var h *envelope.Header
	if size >= 0 && !armored {
		// A file: the body is checked on all cores from its mapping
		// before anything is written.
		ra, unmap := mapInput(in)
		defer unmap()
		h, err = envelope.RewrapAt(ctx, ra, size, w, rw.from, rw.to, rw.opts)
		if err != nil {
			return fileRecord{}, err
		}
	} else {
		// A stream, or an armored message: rewrapped as it is read, and
		// armored again.
		dst, finishArmor := armoredWriter(w, armored)
		if h, err = envelope.Rewrap(ctx, unarmored(src, armored), dst, rw.from, rw.to, rw.opts); err != nil {
			return fileRecord{}, err
		}
		if err := finishArmor(); err != nil {
			return fileRecord{}, err
		}
	}
	if err := out.Commit(); err != nil {
		return fileRecord{}, err
	}
	return newRecord("rewrap", j, h, -1, w.n), nil
}
