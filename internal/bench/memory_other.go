//go:build !linux

package bench

// available is not known outside Linux: runs are not checked.
func available() (int64, bool) { return 0, false }
