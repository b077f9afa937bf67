package precompute

import (
	"testing"
	"time"
)

// fakePacer is a pacer on a fake clock whose sleeps advance it.
func fakePacer(busy func() bool) (*pacer, *time.Time, *[]time.Duration) {
	now := time.Unix(1_000, 0)
	var sleeps []time.Duration
	p := &pacer{slice: paceSlice, pause: pacePause, busy: busy, now: func() time.Time { return now }}
	p.sleep = func(d time.Duration) { sleeps = append(sleeps, d); now = now.Add(d) }
	p.sliceStart.Store(now.UnixNano())
	return p, &now, &sleeps
}

func TestPacer(t *testing.T) {
	for _, tc := range []struct {
		name string
		busy func() bool
		// work is the time each step follows; want is the sleeps taken.
		work []time.Duration
		want []time.Duration
	}{
		{"no Busy hook: never pauses", nil,
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond, 2 * time.Millisecond}, nil},
		{"idle node: slices end without a pause", func() bool { return false },
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond, 2 * time.Millisecond}, nil},
		{"busy node: one pause after each slice", func() bool { return true },
			[]time.Duration{600 * time.Microsecond, 600 * time.Microsecond, 300 * time.Microsecond, 800 * time.Microsecond, 300 * time.Microsecond},
			[]time.Duration{pacePause, pacePause}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, now, sleeps := fakePacer(tc.busy)
			for _, d := range tc.work {
				*now = now.Add(d)
				p.step()
			}
			if len(*sleeps) != len(tc.want) {
				t.Fatalf("sleeps %v, want %v", *sleeps, tc.want)
			}
			for i := range tc.want {
				if (*sleeps)[i] != tc.want[i] {
					t.Errorf("sleeps %v, want %v", *sleeps, tc.want)
				}
			}
		})
	}
}

// TestPacerJoin: a goroutine that steps while another's pause runs sleeps
// until that pause ends, so that none of the worker stays runnable.
func TestPacerJoin(t *testing.T) {
	p, now, sleeps := fakePacer(func() bool { return true })
	var joined []time.Duration
	p.sleep = func(d time.Duration) {
		*sleeps = append(*sleeps, d)
		if len(*sleeps) == 1 {
			// Mid-pause, another goroutine steps 20µs into it.
			*now = now.Add(20 * time.Microsecond)
			inner := p.sleep
			p.sleep = func(d time.Duration) { joined = append(joined, d); *now = now.Add(d) }
			p.step()
			p.sleep = inner
			return
		}
		*now = now.Add(d)
	}
	*now = now.Add(2 * time.Millisecond)
	p.step()
	if len(joined) != 1 || joined[0] != pacePause-20*time.Microsecond {
		t.Errorf("the second goroutine slept %v, want the %v left of the pause", joined, pacePause-20*time.Microsecond)
	}
}
