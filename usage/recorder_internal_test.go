package usage

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// hourEvaluations reads the evaluations of flag "f" in the hour row of h.
func hourEvaluations(t *testing.T, st store.UsageStore, h time.Time) uint64 {
	t.Helper()
	var n uint64
	err := st.ScanUsage(context.Background(), 1, "f", store.UsageHour, h.Unix(), h.Unix()+1, func(r store.UsageRow) error {
		var c Counts
		if err := c.UnmarshalBinary(r.Value); err != nil {
			return err
		}
		n += c.Evaluations
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPeriodicFlushHourRows: Run's flushes rewrite a changed hour row at
// most once a minute, and a closing hour's last counts are written when
// the next hour starts, with or without new traffic.
func TestPeriodicFlushHourRows(t *testing.T) {
	for _, traffic := range []bool{false, true} {
		st := memstore.New()
		now := time.Date(2026, 12, 6, 10, 59, 0, 0, time.UTC)
		r, err := NewRecorder(RecorderConfig{Store: st, Node: "n", Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		one := []Eval{{Flag: "f", Value: "true"}}
		hour := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		r.Record(1, EndpointFlags, "a", true, one)
		if err := r.flush(ctx, false); err != nil {
			t.Fatal(err)
		}
		now = now.Add(30 * time.Second)
		r.Record(1, EndpointFlags, "b", true, one)
		if err := r.flush(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := hourEvaluations(t, st, hour); got != 1 {
			t.Fatalf("hour row after 30 s: %d evaluations, want 1 (rewritten once a minute)", got)
		}
		now = now.Add(40 * time.Second) // 11:00:10
		if traffic {
			r.Record(1, EndpointFlags, "c", true, one)
		}
		if err := r.flush(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := hourEvaluations(t, st, hour); got != 2 {
			t.Errorf("traffic %v: closed hour row: %d evaluations, want 2", traffic, got)
		}
		if got, want := hourEvaluations(t, st, hour.Add(time.Hour)), map[bool]uint64{false: 0, true: 1}[traffic]; got != want {
			t.Errorf("traffic %v: new hour row: %d evaluations, want %d", traffic, got, want)
		}
	}
}
