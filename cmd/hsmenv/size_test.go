package main

import (
	"strings"
	"testing"
)

// parseSize keeps the forms it always took (bytes, K, KiB, M, MiB in any
// case) and adds G and GiB; all binary.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{
		"1": 1, "4096": 4096, "64k": 64 << 10, "64K": 64 << 10, "4KiB": 4 << 10, "4kib": 4 << 10,
		"1m": 1 << 20, "512MiB": 512 << 20, "1G": 1 << 30, "1GiB": 1 << 30, "2gib": 2 << 30,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0K", "-1", "-1K", "+5", "1.5G", "1KB", "1T", "K", "1 K i B", "0x10", "9223372036854775807K"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), in) {
			t.Errorf("parseSize(%q): error %q does not quote the input", in, err)
		}
	}
}
