package precompute_test

import (
	"testing"
	"time"

	"github.com/vexil-dev/vexil/precompute"
)

// TestRunStateProgress: the progress the management API shows of a run.
func TestRunStateProgress(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	left, rate := 2500.0, 150.0 // computing: 16.67 s, not a whole number of nanoseconds as a constant
	cases := []struct {
		name string
		st   precompute.RunState
		want precompute.Progress
	}{
		// Scanning for 100 s: 5000 rows done of 8000 published so far; the
		// previous run had 20000, the estimate while scanning. 50 rows/s,
		// 15000 rows left: 300 s.
		{"scanning", precompute.RunState{StartedAt: now.Add(-100 * time.Second),
			Pages: 8, PagesDone: 5, RowsTotal: 8000, RowsDone: 5000, RowsExpected: 20000},
			precompute.Progress{RowsDone: 5000, RowsTotal: 20000, RowsPerSecond: 50, ETA: 300 * time.Second}},
		// Scanning past the estimate: the rows published so far count.
		{"scanning past the estimate", precompute.RunState{StartedAt: now.Add(-10 * time.Second),
			RowsTotal: 3000, RowsDone: 1000, RowsExpected: 2000},
			precompute.Progress{RowsDone: 1000, RowsTotal: 3000, RowsPerSecond: 100, ETA: 20 * time.Second}},
		// Scan done, computing for 50 s: 7500 of 10000 rows, 150 rows/s,
		// 2500 rows left. The stale estimate no longer counts.
		{"computing", precompute.RunState{StartedAt: now.Add(-50 * time.Second), ScanDone: true,
			Pages: 10, PagesDone: 7, RowsTotal: 10000, RowsDone: 7500, RowsExpected: 30000},
			precompute.Progress{RowsDone: 7500, RowsTotal: 10000, RowsPerSecond: 150,
				ETA: time.Duration(left / rate * float64(time.Second))}},
		// Finished an hour ago in 40 s: the rate is over the run's time,
		// not until now; no ETA.
		{"finished", precompute.RunState{StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour + 40*time.Second),
			ScanDone: true, Pages: 8, PagesDone: 8, RowsTotal: 8000, RowsDone: 8000},
			precompute.Progress{RowsDone: 8000, RowsTotal: 8000, RowsPerSecond: 200}},
		// Nothing done yet: no rate, so no ETA.
		{"just started", precompute.RunState{StartedAt: now, RowsExpected: 500},
			precompute.Progress{RowsTotal: 500}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.st.Progress(now); got != c.want {
				t.Errorf("Progress\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
