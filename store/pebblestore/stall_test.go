package pebblestore

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Pebble's stall events are counted by reason and their time summed.
func TestWriteStallMetrics(t *testing.T) {
	m := newMetrics()
	l := m.eventListener(slog.New(slog.DiscardHandler))
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	time.Sleep(5 * time.Millisecond)
	l.WriteStallEnd()
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
	l.WriteStallEnd()
	l.WriteStallEnd() // an end without a begin adds nothing
	for reason, want := range map[string]float64{"memtable": 1, "l0": 1, "other": 0} {
		if got := testutil.ToFloat64(m.stalls.WithLabelValues(reason)); got != want {
			t.Errorf("stalls{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(m.stallSeconds); got < 0.005 {
		t.Errorf("stall seconds = %v, want at least the 5 ms slept", got)
	}
}
