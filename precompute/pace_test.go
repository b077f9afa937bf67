package precompute

import (
	"slices"
	"testing"
	"time"
)

// fakePace is a pacer on a fake clock. Its sleeps advance the clock, and
// the requests that arrive during a sleep are the next value of during
// (0 once it is used up): a closed loop of clients answered in the pause.
type fakePace struct {
	p        *pacer
	now      time.Time
	arrived  uint64
	during   []uint64
	sleeps   []time.Duration
	joinedAt func() // called at the first sleep (TestPacerJoin)
}

func newFakePace(arrivals bool) *fakePace {
	f := &fakePace{now: time.Unix(1_000, 0)}
	f.p = &pacer{slice: paceSlice, pause: pacePause, maxPause: paceMaxPause, window: paceWindow,
		now: func() time.Time { return f.now }}
	if arrivals {
		f.p.arrivals = func() uint64 { return f.arrived }
	}
	f.p.sleep = func(d time.Duration) {
		f.sleeps = append(f.sleeps, d)
		if f.joinedAt != nil {
			j := f.joinedAt
			f.joinedAt = nil
			j()
		}
		f.now = f.now.Add(d)
		if len(f.during) > 0 {
			f.arrived += f.during[0]
			f.during = f.during[1:]
		}
	}
	f.p.sliceStart.Store(f.now.UnixNano())
	return f
}

func TestPacer(t *testing.T) {
	p, ms := pacePause, time.Millisecond
	for _, tc := range []struct {
		name     string
		arrivals bool
		// Before each step: work done, requests arrived; during: arrivals
		// in each pause step.
		work   []time.Duration
		before []uint64
		during []uint64
		want   []time.Duration
	}{
		{"no Arrivals hook: never pauses", false,
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond, 2 * ms}, []uint64{1, 1, 1}, nil, nil},
		{"no requests: slices end without a pause", true,
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond, 2 * ms}, []uint64{0, 0, 0}, nil, nil},
		{"requests seen over a window ago: no more pauses", true,
			[]time.Duration{2 * ms, paceWindow, 2 * ms}, []uint64{1, 0, 0}, nil, []time.Duration{p}},
		{"a request in the slice: one step, nobody came in it", true,
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond}, []uint64{1, 0}, nil, []time.Duration{p}},
		{"none seen in the slice (unread in sockets), within the window: one step", true,
			[]time.Duration{2 * ms, 2 * ms}, []uint64{1, 0}, nil, []time.Duration{p, p}},
		{"requests keep coming in the pause: steps until they stop", true,
			[]time.Duration{2 * ms}, []uint64{1}, []uint64{1, 1, 0}, []time.Duration{p, p, p}},
		{"a closed loop that never stops: bounded by the longest pause", true,
			[]time.Duration{2 * ms}, []uint64{1}, slices.Repeat([]uint64{1}, 1000), slices.Repeat([]time.Duration{p}, int(paceMaxPause/p))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePace(tc.arrivals)
			f.during = tc.during
			for i, d := range tc.work {
				f.now = f.now.Add(d)
				f.arrived += tc.before[i]
				f.p.step()
			}
			if !slices.Equal(f.sleeps, tc.want) {
				t.Errorf("sleeps %v, want %v", f.sleeps, tc.want)
			}
		})
	}
}

// TestPacerJoin: a goroutine that steps while another pauses sleeps to
// the end of the pause's step, then in steps until the pause is over, so
// that nothing of the worker runs between two steps of the pause.
func TestPacerJoin(t *testing.T) {
	f := newFakePace(true)
	var joined []time.Duration
	f.joinedAt = func() {
		// 20µs into the first step, another goroutine steps; the pause
		// ends during its second sleep.
		f.now = f.now.Add(20 * time.Microsecond)
		outer := f.p.sleep
		f.p.sleep = func(d time.Duration) {
			joined = append(joined, d)
			f.now = f.now.Add(d)
			if len(joined) == 2 {
				f.p.pausing.Store(false)
			}
		}
		f.p.step()
		f.p.sleep = outer
		f.p.pausing.Store(true)
	}
	f.arrived = 1
	f.now = f.now.Add(2 * time.Millisecond)
	f.p.step()
	if want := []time.Duration{pacePause - 20*time.Microsecond, pacePause}; !slices.Equal(joined, want) {
		t.Errorf("the second goroutine slept %v, want %v", joined, want)
	}
	if f.p.pausing.Load() {
		t.Error("still pausing after the pause")
	}
}
