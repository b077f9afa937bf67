package admission

import (
	"errors"
	"sort"
	"testing"
	"time"
)

// overloadSim is a node of one CPU in front of which requests queue: an
// answer costs answerCost of CPU, a refusal refuseCost, and a request's
// age at admission is the CPU work queued before it (the wait in the
// socket buffers and run queue). The controller sees the ages and the
// busy fraction the work left it, with a fake clock: no timing.
type overloadSim struct {
	c                      *Controller
	clk                    *clock
	answerCost, refuseCost time.Duration
	backlog                time.Duration // CPU work queued, not done
	worked                 time.Duration // CPU work done since the last window
	windowStart            time.Time
}

func newOverloadSim(t *testing.T, capacity float64) *overloadSim {
	s := &overloadSim{answerCost: time.Duration(float64(time.Second) / capacity)}
	s.refuseCost = s.answerCost / 10
	s.c, s.clk = newController(t, Config{InitialLimit: 4096, MaxLimit: 4096, SchedDelay: func() (time.Duration, float64) {
		now := s.clk.now()
		busy := 0.0
		if el := now.Sub(s.windowStart); el > 0 {
			busy = min(1, float64(s.worked)/float64(el))
		}
		s.worked, s.windowStart = 0, now
		return 0, busy
	}})
	s.windowStart = s.clk.now()
	return s
}

// offer sends rate requests a second for d; it returns the admitted and
// refused counts and the ages of the admitted requests.
func (s *overloadSim) offer(t *testing.T, rate float64, d time.Duration) (admitted, refused int, ages []time.Duration) {
	step := time.Duration(float64(time.Second) / rate)
	for el := time.Duration(0); el < d; el += step {
		s.clk.advance(step)
		done := min(step, s.backlog)
		s.backlog -= done
		s.worked += done
		age := s.backlog
		tk, err := s.c.AcquireAged(Evaluate, age)
		if err != nil {
			if !errors.Is(err, ErrOverloaded) {
				t.Fatal(err)
			}
			refused++
			s.backlog += s.refuseCost
			continue
		}
		admitted++
		ages = append(ages, age)
		s.backlog += s.answerCost
		tk.Done()
	}
	return admitted, refused, ages
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// TestGateHoldsUnderCapacity: offered twice what the node can answer, the
// gate admits under its capacity while requests arrive late, so the
// queue in front of the node stays short (the ages of admitted requests
// under the evaluate class's target) and refusals keep the rest; when
// the load falls to half of capacity the gate opens and refuses nothing.
func TestGateHoldsUnderCapacity(t *testing.T) {
	const capacity = 3600.0
	s := newOverloadSim(t, capacity)
	if a, r, _ := s.offer(t, capacity/2, 2*time.Second); r != 0 || a == 0 {
		t.Fatalf("half of capacity: %d admitted, %d refused; want none refused", a, r)
	}
	s.offer(t, 2*capacity, 2*time.Second) // the gate finds the capacity
	a, r, ages := s.offer(t, 2*capacity, 10*time.Second)
	rate := float64(a) / 10
	t.Logf("2x for 10 s: admitted %.0f/s, refused %.0f/s, age p50 %v p99 %v max %v", rate, float64(r)/10,
		quantile(ages, 0.5), quantile(ages, 0.99), quantile(ages, 1))
	if rate > capacity || rate < 0.7*capacity {
		t.Errorf("2x: admitted %.0f/s, want under the capacity %.0f/s and over 70%% of it", rate, capacity)
	}
	if p99 := quantile(ages, 0.99); p99 > 5*time.Millisecond {
		t.Errorf("2x: admitted requests' age p99 %v, want under the 5ms target", p99)
	}
	s.offer(t, capacity/2, time.Second) // recovery
	if a, r, ages := s.offer(t, capacity/2, 2*time.Second); r != 0 || quantile(ages, 0.99) > time.Millisecond {
		t.Errorf("half of capacity after the overload: %d admitted, %d refused, age p99 %v; want none refused", a, r, quantile(ages, 0.99))
	}
}

// TestGateAtMinRateAdmitsEveryClass: with the gate closed down to
// MinRate, a full bucket still lets a call of each class through (its
// bucket once held one token, of which management could never take the
// last quarter: seeding a demo through a closed gate failed).
func TestGateAtMinRateAdmitsEveryClass(t *testing.T) {
	c, clk := newController(t, Config{MinRate: 100})
	c.mu.Lock()
	c.setRate(100)
	c.mu.Unlock()
	for _, cl := range []Class{Management, Poll, Evaluate} {
		clk.advance(time.Second) // a full bucket
		tk, err := c.Acquire(cl)
		if err != nil {
			t.Errorf("%s at the gate's least rate with a full bucket: %v, want admitted", cl, err)
			continue
		}
		tk.Done()
	}
	// The reserve still holds: with the bucket drained to its reserve,
	// management is refused and evaluate admitted.
	clk.advance(time.Second)
	refusedMgmt := false
	for range 10 {
		tk, err := c.Acquire(Management)
		if err != nil {
			refusedMgmt = true
			break
		}
		tk.Done()
	}
	if !refusedMgmt {
		t.Fatal("management drained the whole bucket, want its reserve kept for evaluate")
	}
	if tk, err := c.Acquire(Evaluate); err != nil {
		t.Errorf("evaluate after management was refused: %v, want the reserve", err)
	} else {
		tk.Done()
	}
}
