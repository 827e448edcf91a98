package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// available returns the memory a new allocation can get without swapping
// or being killed: /proc/meminfo's MemAvailable, less if the process's
// cgroup (v2) limit leaves less. ok is false when neither can be read.
func available() (n int64, ok bool) {
	n, ok = memAvailable("/proc/meminfo")
	if c, cok := cgroupAvailable("/proc/self/cgroup", "/sys/fs/cgroup"); cok && (!ok || c < n) {
		n, ok = c, true
	}
	return n, ok
}

// memAvailable reads the MemAvailable line (in kB) of a meminfo file.
func memAvailable(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, false
		}
		return mulSat(kb, 1024), true
	}
	return 0, false
}

// cgroupAvailable returns memory.max less memory.current of the process's
// cgroup (v2; self is /proc/self/cgroup, root where the hierarchy is
// mounted); false when there is no limit ("max"), the hierarchy is v1, or a
// file cannot be read.
func cgroupAvailable(self, root string) (int64, bool) {
	b, err := os.ReadFile(self)
	if err != nil {
		return 0, false
	}
	path, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "0::")
	if !ok || strings.Contains(path, "\n") {
		return 0, false // cgroup v1 or hybrid
	}
	dir := root + path
	max, ok1 := readInt(dir + "/memory.max")
	cur, ok2 := readInt(dir + "/memory.current")
	if !ok1 || !ok2 || cur > max {
		return 0, false
	}
	return max - cur, true
}

// readInt reads a file holding one decimal number ("max" is no number).
func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}
