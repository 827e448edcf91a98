//go:build race

package mmapfile

// raceEnabled: the race detector's shadow memory grows with the mapped
// addresses touched, so the resident-set check does not hold under it.
const raceEnabled = true
