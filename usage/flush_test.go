package usage

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// fillFlush records n all-flags requests of one team with flags flags,
// distinct ids user-0 ... user-<n-1>.
func fillFlush(r *Recorder, flags, n int) {
	evals := make([]Eval, flags)
	for i := range evals {
		evals[i] = Eval{Flag: "flag-" + strconv.Itoa(i), Value: "true"}
	}
	for i := range n {
		r.Record(1, EndpointFlags, "user-"+strconv.Itoa(i), true, evals)
	}
}

// BenchmarkFlush54: one periodic flush of a team of 54 flags after
// 18,000 all-flags requests (10 s at 1,800/s).
func BenchmarkFlush54(b *testing.B) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r, err := NewRecorder(RecorderConfig{Store: memstore.New(), Node: "n", Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fillFlush(r, 54, 18_000)
		now = now.Add(10 * time.Second)
		b.StartTimer()
		if err := r.flush(ctx, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFlushYields: a flush gives the P back at least once every
// flushStep sketch merges or encodings, and yielding changes no count.
// A team of 54 flags written for the first time has 54 × 3 bucket merges
// and 54 × 3 rows to encode.
func TestFlushYields(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	st := memstore.New()
	yields := 0
	r, err := NewRecorder(RecorderConfig{Store: st, Node: "n", Now: func() time.Time { return now }, Yield: func() { yields++ }})
	if err != nil {
		t.Fatal(err)
	}
	const flags, requests = 54, 3000
	fillFlush(r, flags, requests)
	// Some requests evaluated a subset: those flags get sketches of their own.
	r.Record(1, EndpointFlags, "subset-user", false, []Eval{{Flag: "flag-0", Value: "true"}, {Flag: "flag-1", Value: "false"}})
	if err := r.flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if min := flags * 6 / flushStep; yields < min {
		t.Errorf("%d yields in a flush of %d flags, want at least %d (one every %d sketch steps)", yields, flags, min, flushStep)
	}
	hour := now.Truncate(time.Hour)
	for _, tc := range []struct {
		flag  string
		evals uint64
	}{{"flag-0", requests + 1}, {"flag-1", requests + 1}, {"flag-53", requests}} {
		var got uint64
		var uniques uint64
		err := st.ScanUsage(context.Background(), 1, tc.flag, store.UsageHour, hour.Unix(), hour.Unix()+1, func(row store.UsageRow) error {
			var c Counts
			if err := c.UnmarshalBinary(row.Value); err != nil {
				return err
			}
			got += c.Evaluations
			uniques += c.Uniques()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.evals {
			t.Errorf("%s: %d evaluations in the hour row, want %d", tc.flag, got, tc.evals)
		}
		// HyperLogLog at precision 14: within 2% of the distinct ids.
		if d := float64(uniques) - float64(tc.evals); d > 0.02*float64(tc.evals) || -d > 0.02*float64(tc.evals) {
			t.Errorf("%s: %d unique users, want about %d", tc.flag, uniques, tc.evals)
		}
	}
}
