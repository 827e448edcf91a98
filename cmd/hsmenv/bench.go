package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hsmenv/hsmenv/envelope"

	"github.com/hsmenv/hsmenv/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var (
		keys            []string
		size, suite     string
		messages, procs int
		asJSON          bool
		cache           string
	)
	cmd := &cobra.Command{
		Use:   "bench --key URI [--size BYTES] [--messages N] [--concurrency C] [--suite 0478|0578] [--cache max-age=5m,max-messages=N,max-bytes=N] [--json]",
		Short: "Measure encrypt and decrypt ops/s and latency (p50/p99) for a key",
		Long: `Encrypt --messages messages of --size bytes under the keys, then decrypt each,
on --concurrency goroutines, and report operations per second and latency
percentiles: what an HSM or TPM sustains for a workload. Small messages
measure the device round trip; large ones the bulk AES-GCM. --cache puts a
data-key cache (the ESDK caching CMM's limits) in front of the keys, as an
application would use envelope.NewCachingKeyring.

Sizes are byte counts with an optional K, KiB, M, MiB, G or GiB suffix (all
binary: 64k = 65536). Every message is kept in memory for the decrypt
phase: a run that would need more memory than the system has available is
refused before it starts, saying how much it needs.`,
		Example: `  hsmenv bench --key "$URI" --size 1KiB --messages 2000 --concurrency 4
  hsmenv bench --key 'tpm:seal?device=/dev/tpmrm0' --messages 50 --json
  hsmenv bench --key "$URI" --cache max-age=5m,max-messages=1000 --concurrency 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			n, err := parseSize(size)
			if err != nil {
				return usagef("--size: %v", err)
			}
			if messages < 1 {
				return usagef("--messages %d: give at least 1", messages)
			}
			if procs < 1 {
				return usagef("--concurrency %d: give at least 1", procs)
			}
			s, err := parseSuite(suite)
			if err != nil {
				return err
			}
			bopts := bench.Options{Size: n, Messages: messages, Concurrency: procs, Suite: s}
			cached := cache != ""
			var co envelope.CacheOptions
			if cached {
				if co, err = parseCacheOptions(cache); err != nil {
					return err
				}
			}
			if err := bench.CheckMemory(bopts); err != nil {
				return err
			}
			keks, err := openKEKs(ctx, keys)
			if err != nil {
				return err
			}
			kr := envelope.NewKeyring(keks...)
			if cached {
				if kr, err = envelope.NewCachingKeyring(co, keks...); err != nil {
					return err
				}
			}
			res, err := bench.Run(ctx, kr, bopts)
			if err != nil {
				return err
			}
			if cached {
				res.DeviceCalls = kr.Stats().DeviceCalls
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			goroutines := fmt.Sprintf("%d goroutines", res.Concurrency)
			if res.Concurrency == 1 {
				goroutines = "1 goroutine"
			}
			fmt.Printf("%d messages of %d bytes, suite %s, %s", res.Messages, res.Size, res.Suite, goroutines)
			if cached {
				fmt.Printf(", cached: %d device calls", res.DeviceCalls)
			}
			fmt.Println()
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
	f.StringVar(&size, "size", "1KiB", "plaintext bytes per message (K, KiB, M, MiB, G, GiB suffixes)")
	f.IntVar(&messages, "messages", 1000, "number of messages (at least 1)")
	f.IntVar(&procs, "concurrency", 1, "goroutines (at least 1)")
	f.StringVar(&suite, "suite", "0478", "algorithm suite")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&cache, "cache", "", "data-key cache: max-age=DURATION[,max-messages=N][,max-bytes=N]")
	return cmd
}

// parseCacheOptions parses max-age=5m,max-messages=N,max-bytes=N.
func parseCacheOptions(s string) (envelope.CacheOptions, error) {
	var co envelope.CacheOptions
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return co, usagef("--cache %q: expected key=value pairs", kv)
		}
		var err error
		switch k {
		case "max-age":
			if co.MaxAge, err = time.ParseDuration(v); err != nil || co.MaxAge <= 0 {
				return co, usagef("--cache max-age=%s: give a duration above zero, such as 30s or 5m", v)
			}
		case "max-messages":
			if co.MaxMessages, err = strconv.ParseUint(v, 10, 64); err != nil || co.MaxMessages < 1 || co.MaxMessages > envelope.MaxCacheMessages {
				return co, usagef("--cache max-messages=%s: give a count from 1 to 2^32", v)
			}
		case "max-bytes":
			var n int
			if n, err = parseSize(v); err != nil {
				return co, usagef("--cache max-bytes: %v", err)
			}
			co.MaxBytes = int64(n)
		default:
			return co, usagef("--cache: unknown setting %q (max-age, max-messages, max-bytes)", k)
		}
	}
	if co.MaxAge == 0 {
		co.MaxAge = 5 * time.Minute
	}
	return co, nil
}
