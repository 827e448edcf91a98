package main_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// bench refuses counts that make no run (exit 2, before opening any key),
// takes sizes with G/GiB suffixes, and refuses a run that would not fit in
// memory with one line instead of being killed.
func TestBenchRefusals(t *testing.T) {
	key := rawAESKey(t, t.TempDir(), "b")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--messages", "0"}, "--messages 0: give at least 1"},
		{[]string{"--messages", "-5"}, "--messages -5"},
		{[]string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--concurrency", "-2"}, "--concurrency -2"},
		{[]string{"--size", "0"}, "not a positive byte count"},
		{[]string{"--size", "-1K"}, "not a positive byte count"},
		{[]string{"--size", "1.5G"}, "not a positive byte count"},
		{[]string{"--cache", "max-age=-1s"}, "--cache max-age=-1s: give a duration above zero"},
		{[]string{"--cache", "max-age=5"}, "--cache max-age=5: give a duration above zero"},
		{[]string{"--cache", "max-messages=-3"}, "--cache max-messages=-3: give a count from 1 to 2^32"},
		{[]string{"--cache", "max-messages=0"}, "--cache max-messages=0: give a count"},
		{[]string{"--cache", "max-messages=4294967297"}, "give a count from 1 to 2^32"},
		{[]string{"--cache", "max-bytes=lots"}, "--cache max-bytes: \"lots\" is not a positive byte count"},
	} {
		// The key does not exist: refusing the flags comes first.
		r := run(t, nil, nil, append([]string{"bench", "--key", "raw-aes:namespace=n;name=k?key-file=/nonexistent"}, c.args...)...)
		fails(t, r, c.want)
		if r.code != 2 {
			t.Errorf("bench %v: exit %d, want 2", c.args, r.code)
		}
	}
	r := ok(t, run(t, nil, nil, "bench", "--key", key, "--size", "64k", "--messages", "3"))
	if !strings.HasPrefix(string(r.stdout), "3 messages of 65536 bytes") {
		t.Fatalf("bench --size 64k: %s", r.stdout)
	}

	avail := memAvailableKiB(t)
	r = run(t, nil, nil, "bench", "--key", key, "--size", strconv.FormatInt(avail, 10)+"KiB", "--messages", "2")
	fails(t, r, "not enough memory: 2 messages of ")
	if r.code != 1 || !strings.Contains(string(r.stderr), "is available") {
		t.Fatalf("bench larger than memory: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, nil, nil, "bench", "--key", key, "--size", "1GiB", "--messages", strconv.FormatInt(avail>>20+1, 10))
	fails(t, r, "not enough memory")
}

// memAvailableKiB reads MemAvailable, skipping the test where there is none.
func memAvailableKiB(t *testing.T) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Skip("no /proc/meminfo")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no MemAvailable in /proc/meminfo")
	return 0
}
