package bench

import (
	"errors"
	"fmt"
)

// ErrMemory reports a run whose buffers would not fit in the memory the
// system has available.
var ErrMemory = errors.New("not enough memory")

// messageOverhead bounds what a message holds beyond its plaintext bytes
// and their 1/128 of frame overhead: header, EDKs, footer and slack.
const messageOverhead = 4 << 10

// Need returns an estimate, in bytes, of what a run with opts holds at its
// peak: the plaintext, every message's ciphertext (all are kept for the
// decrypt phase), and per goroutine the buffers of one decryption (up to
// three plaintexts while its output grows). opts are taken with Run's
// defaults. The result saturates at the largest int64 rather than
// overflowing.
func Need(opts Options) int64 {
	opts = opts.withDefaults()
	size := int64(opts.Size)
	ct := size + size/128 + messageOverhead
	return addSat(size, addSat(mulSat(int64(opts.Messages), ct), mulSat(int64(opts.Concurrency), mulSat(3, size))))
}

// CheckMemory refuses (ErrMemory) a run with opts that needs more than the
// memory the system has available: MemAvailable, or the process's cgroup
// v2 limit if that leaves less. It refuses nothing where neither is known
// (outside Linux). Run calls it; callers call it first to fail before
// opening keys.
func CheckMemory(opts Options) error {
	opts = opts.withDefaults()
	have, ok := available()
	if !ok {
		return nil
	}
	if need := Need(opts); need > have {
		return fmt.Errorf("%w: %d messages of %s need about %s, %s is available; use fewer messages or smaller ones",
			ErrMemory, opts.Messages, FormatBytes(int64(opts.Size)), FormatBytes(need), FormatBytes(have))
	}
	return nil
}

// FormatBytes formats n bytes for people: "512 B", "64.0 KiB", "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

const maxInt64 = 1<<63 - 1

func addSat(a, b int64) int64 {
	if a > maxInt64-b {
		return maxInt64
	}
	return a + b
}

func mulSat(a, b int64) int64 {
	if a != 0 && b > maxInt64/a {
		return maxInt64
	}
	return a * b
}
