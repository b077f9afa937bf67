//go:build !race

package h1fast

const raceEnabled = false
