package loadtest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestScenarioMix: the ops' counts follow their weights (within a weight
// of the exact share, whatever the run's length), errors are counted by
// op, and the total is the sum.
func TestScenarioMix(t *testing.T) {
	boom := errors.New("boom")
	ok := func(context.Context, uint64) error { return nil }
	s := Scenario{Connections: 4, Duration: 30 * time.Millisecond, Ops: []Op{
		{Name: "flags", Weight: 7, Do: ok},
		{Name: "poll", Weight: 2, Do: ok},
		{Name: "write", Weight: 1, Do: func(context.Context, uint64) error { return boom }},
	}}
	res, err := RunScenario(context.Background(), s)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	var sum int64
	for i, o := range res.Ops {
		sum += o.Requests
		w := float64(s.Ops[i].Weight)
		if want := float64(res.All.Requests) * w / 10; math.Abs(float64(o.Requests)-want) > w {
			t.Errorf("%s: %d requests of %d, want %v ± %v", o.Name, o.Requests, res.All.Requests, want, w)
		}
	}
	if sum != res.All.Requests || res.All.Requests == 0 {
		t.Fatalf("ops sum to %d, all %d", sum, res.All.Requests)
	}
	if w := res.Ops[2]; w.Errors != w.Requests || w.FirstError != "boom" || res.Ops[0].Errors != 0 || res.All.Errors != w.Errors {
		t.Errorf("errors: %+v / all %d", w, res.All.Errors)
	}
}

// TestCycle: smooth weighted round robin spreads each op over the cycle.
func TestCycle(t *testing.T) {
	s := Scenario{Ops: []Op{{Weight: 5}, {Weight: 1}, {Weight: 1}}}
	got := s.cycle()
	want := []int{0, 0, 1, 0, 2, 0, 0}
	if len(got) != len(want) {
		t.Fatalf("cycle %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("cycle %v, want %v", got, want)
		}
	}
}

// TestCapacity: on a synthetic server whose p99 is rate µs, the search
// finds the highest rate under a 5 ms p99 (5,000/s) within 1%; a floor
// that fails gives 0; a ceiling that passes is the answer.
func TestCapacity(t *testing.T) {
	probe := func(_ context.Context, rate float64) (ScenarioResult, error) {
		return ScenarioResult{Rate: rate, All: OpResult{P99: time.Duration(rate) * time.Microsecond}}, nil
	}
	best, steps, err := Capacity(context.Background(), CapacityConfig{Low: 100, High: 20000, P99: 5 * time.Millisecond, Steps: 30}, probe)
	if err != nil {
		t.Fatal(err)
	}
	if best > 5000 || best < 4950 {
		t.Errorf("capacity %v, want within 1%% under 5000 (steps %d)", best, len(steps))
	}
	if !steps[0].OK || steps[1].OK || steps[1].Why == "" {
		t.Errorf("first steps: %+v %+v", steps[0], steps[1])
	}
	if best, _, _ := Capacity(context.Background(), CapacityConfig{Low: 6000, High: 9000, P99: 5 * time.Millisecond, Steps: 10}, probe); best != 0 {
		t.Errorf("failing floor: %v, want 0", best)
	}
	if best, _, _ := Capacity(context.Background(), CapacityConfig{Low: 100, High: 4000, P99: 5 * time.Millisecond, Steps: 10}, probe); best != 4000 {
		t.Errorf("passing ceiling: %v, want 4000", best)
	}
	dropping := func(_ context.Context, rate float64) (ScenarioResult, error) {
		return ScenarioResult{Rate: min(rate, 3000), All: OpResult{P99: time.Millisecond}}, nil
	}
	if best, _, _ := Capacity(context.Background(), CapacityConfig{Low: 100, High: 20000, P99: 5 * time.Millisecond, Steps: 30}, dropping); best > 3000/0.95 || best < 3000 {
		t.Errorf("a generator or server that tops out at 3000/s: capacity %v", best)
	}
}
