package admission

import (
	"runtime/debug"
	"testing"
)

// TestBusyIsLiveBetweenGCs: CPU used between two reads with no GC in
// between shows as busy. The runtime's /cpu/classes metrics, which the
// gate read before, change only at the end of a GC cycle: they gave 0
// here, and the gate's busy guard never let the age signal act.
func TestBusyIsLiveBetweenGCs(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	s := newSchedDelay(0.99)
	s.read()
	x := 1.0
	for i := range 20_000_000 {
		x = x*1.0000001 + float64(i&1)
	}
	_, busy := s.read()
	if busy <= 0 || x == 0 {
		t.Errorf("busy %v after spinning with GC off, want > 0", busy)
	}
}
