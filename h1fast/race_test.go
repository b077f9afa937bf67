//go:build race

package h1fast

// raceEnabled: the race detector makes sync.Pool drop items at random.
const raceEnabled = true
