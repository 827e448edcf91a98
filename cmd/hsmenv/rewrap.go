package main

import (
	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/spf13/cobra"
)

func newRewrapCmd() *cobra.Command {
	var (
		keys, to, pairs []string
		outTo           string
		force           bool
	)
	cmd := &cobra.Command{
		Use:   "rewrap --key URI --to URI [--to URI]... [--context k=v]... -o OUT IN",
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
			from, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			keks, err := resolver.OpenKEKs(ctx, keyOptions(), to...)
			if err != nil {
				return err
			}
			in, out, err := openFiles(args[0], outTo, force)
			if err != nil {
				return err
			}
			defer in.Close()
			defer out.Abort()
			newKeys := envelope.NewKeyring(keks...)
			if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
				// A file: the body is checked on all cores from its
				// mapping before anything is written.
				ra, unmap := mapInput(in)
				defer unmap()
				_, err = envelope.RewrapAt(ctx, ra, st.Size(), out, from, newKeys, dopts)
				if err != nil {
					return err
				}
			} else if _, err := envelope.Rewrap(ctx, in, out, from, newKeys, dopts); err != nil {
				return err
			}
			return out.Commit()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI that opens the message now")
	f.StringArrayVar(&pairs, "context", nil, "the encryption context pair key=value the message was made with, as for decrypt (repeatable)")
	f.StringArrayVar(&to, "to", nil, "key URI to wrap the data key under (repeat for several)")
	f.StringVarP(&outTo, "output", "o", "", "output file")
	f.BoolVar(&force, "force", false, "replace an existing output file (or link), or write to an existing FIFO or device")
	return cmd
}
