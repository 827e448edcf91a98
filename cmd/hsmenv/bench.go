package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/hsmenv/hsmenv/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var (
		keys            []string
		size, suite     string
		messages, procs int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "bench --key URI [--size BYTES] [--messages N] [--concurrency C] [--json]",
		Short: "Measure encrypt and decrypt ops/s and latency (p50/p99) for a key",
		Long: `Encrypt --messages messages of --size bytes under the keys, then decrypt each,
on --concurrency goroutines, and report operations per second and latency
percentiles: what an HSM or TPM sustains for a workload. Small messages
measure the device round trip; large ones the bulk AES-GCM.`,
		Example: `  hsmenv bench --key "$URI" --size 1KiB --messages 2000 --concurrency 4
  hsmenv bench --key 'tpm:seal?device=/dev/tpmrm0' --messages 50 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			n, err := parseSize(size)
			if err != nil {
				return usagef("--size: %v", err)
			}
			s, err := parseSuite(suite)
			if err != nil {
				return err
			}
			kr, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			res, err := bench.Run(ctx, kr, bench.Options{Size: n, Messages: messages, Concurrency: procs, Suite: s})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Printf("%d messages of %d bytes, suite %s, %d goroutines\n", res.Messages, res.Size, res.Suite, res.Concurrency)
			for _, r := range []struct {
				name string
				s    bench.Stats
			}{{"encrypt", res.Encrypt}, {"decrypt", res.Decrypt}} {
				fmt.Printf("%-8s %10.0f ops/s %10.1f MB/s   p50 %8.1f us   p99 %8.1f us   max %8.1f us\n",
					r.name, r.s.OpsPerSec, r.s.MBPerSec, r.s.P50Micros, r.s.P99Micros, r.s.MaxMicros)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI (repeat for several)")
	f.StringVar(&size, "size", "1KiB", "plaintext bytes per message")
	f.IntVar(&messages, "messages", 1000, "number of messages")
	f.IntVar(&procs, "concurrency", 1, "goroutines")
	f.StringVar(&suite, "suite", "0478", "algorithm suite")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
