package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes parseSize accepts, binary multiples whatever
// the spelling (64k = 64KiB = 65536), matched case-insensitively, longest
// first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
}

// parseSize parses a positive byte count: a decimal number with an optional
// K, KiB, M, MiB, G or GiB suffix (any case; all binary: 1K = 1024). It
// refuses zero, negative numbers, fractions and counts that overflow an int.
func parseSize(s string) (int, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, unit := range sizeUnits {
		if strings.HasSuffix(u, unit.suffix) {
			u, mult = strings.TrimSuffix(u, unit.suffix), unit.mult
			break
		}
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n <= 0 || strings.HasPrefix(u, "+") {
		return 0, fmt.Errorf("%q is not a positive byte count (a number, optionally with K, KiB, M, MiB, G or GiB)", s)
	}
	if n > math.MaxInt/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int(n * mult), nil
}
