//go:build !race

package mmapfile

const raceEnabled = false
