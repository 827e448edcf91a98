// Package bench measures what a keyring costs per message: encrypt and
// decrypt operations per second and latency percentiles for messages of a
// given size, on any number of goroutines. `hsmenv bench` is a thin layer
// over it; it is the tool to size an HSM or a TPM for a workload.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
)

// Options configure a run.
type Options struct {
	// Size is the plaintext size of each message (0: 1024).
	Size int
	// Messages is how many messages are encrypted, and decrypted (0: 1000).
	Messages int
	// Concurrency is the number of goroutines (0: 1).
	Concurrency int
	// Suite is the algorithm suite (default 0x0478).
	Suite envelope.SuiteID
	// FrameSize is the frame size (default envelope.DefaultFrameSize).
	FrameSize int
}

// withDefaults returns opts with Run's default for each zero field.
func (opts Options) withDefaults() Options {
	if opts.Size == 0 {
		opts.Size = 1024
	}
	if opts.Messages == 0 {
		opts.Messages = 1000
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 1
	}
	if opts.Suite == 0 {
		opts.Suite = envelope.SuiteCommit
	}
	return opts
}

// Stats summarize one kind of operation.
type Stats struct {
	Ops       int     `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	P50Micros float64 `json:"p50_us"`
	P99Micros float64 `json:"p99_us"`
	MaxMicros float64 `json:"max_us"`
}

// Result is a whole run.
type Result struct {
	Size        int    `json:"size"`
	Messages    int    `json:"messages"`
	Concurrency int    `json:"concurrency"`
	Suite       string `json:"suite"`
	Encrypt     Stats  `json:"encrypt"`
	Decrypt     Stats  `json:"decrypt"`
	// DeviceCalls is filled in by callers that put a cache in front.
	DeviceCalls uint64 `json:"device_calls,omitempty"`
}

// Run encrypts Messages messages through kr, then decrypts each one through
// kr, checking every plaintext, and reports both. The messages are made
// before the decrypt clock starts; the clock of each phase covers all its
// goroutines from first start to last end. A negative size, message count
// or concurrency is refused, and so is a run whose buffers (Need) exceed
// the memory the system has available (ErrMemory; checked on Linux),
// before anything is allocated.
func Run(ctx context.Context, kr *envelope.Keyring, opts Options) (*Result, error) {
	if opts.Size < 0 || opts.Messages < 0 || opts.Concurrency < 0 {
		return nil, fmt.Errorf("bench: negative size (%d), message count (%d) or concurrency (%d)", opts.Size, opts.Messages, opts.Concurrency)
	}
	opts = opts.withDefaults()
	if err := CheckMemory(opts); err != nil {
		return nil, err
	}
	pt := make([]byte, opts.Size)
	rand.Read(pt)
	eopts := envelope.EncryptOptions{Suite: opts.Suite, FrameSize: opts.FrameSize, Context: envelope.EncryptionContext{"bench": "hsmenv"}}
	msgs := make([][]byte, opts.Messages)
	encLat, encWall, err := phase(ctx, opts, func(i int) error {
		o := eopts
		o.PlaintextSize = int64(len(pt)) // so caches can count bytes
		m, err := envelope.Encrypt(ctx, pt, kr, o)
		msgs[i] = m
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: encrypt: %w", err)
	}
	decLat, decWall, err := phase(ctx, opts, func(i int) error {
		got, _, err := envelope.Decrypt(ctx, msgs[i], kr, envelope.DecryptOptions{})
		if err == nil && !bytes.Equal(got, pt) {
			err = errors.New("decrypted different bytes")
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: decrypt: %w", err)
	}
	return &Result{
		Size: opts.Size, Messages: opts.Messages, Concurrency: opts.Concurrency, Suite: opts.Suite.String(),
		Encrypt: summarize(encLat, encWall, opts.Size), Decrypt: summarize(decLat, decWall, opts.Size),
	}, nil
}

// phase runs op for every message index on opts.Concurrency goroutines and
// returns each latency and the wall time.
func phase(ctx context.Context, opts Options, op func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, opts.Messages)
	next := make(chan int, opts.Messages)
	for i := range opts.Messages {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					once.Do(func() { firstErr = ctx.Err() })
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func summarize(lat []time.Duration, wall time.Duration, size int) Stats {
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(sorted)-1))
		return float64(sorted[i].Nanoseconds()) / 1e3
	}
	ops := float64(len(lat)) / wall.Seconds()
	return Stats{Ops: len(lat), OpsPerSec: ops, MBPerSec: ops * float64(size) / 1e6,
		P50Micros: pct(0.50), P99Micros: pct(0.99), MaxMicros: pct(1)}
}
