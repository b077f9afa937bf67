package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// An Op is one kind of request of a scenario (a /flags POST, a gRPC
// Evaluate, a definitions poll with its ETag, a NATS person write).
type Op struct {
	Name string
	// Weight is the op's share of the requests, relative to the others'.
	Weight int
	// Do sends request number i of this op (per worker state, such as an
	// ETag, is the op's own business) and reports whether it succeeded.
	Do func(ctx context.Context, i uint64) error
}

// Scenario is a mix of ops run together, open or closed loop.
type Scenario struct {
	Ops []Op
	// Rate is the open-loop rate (requests per second over all ops); 0
	// runs closed loop.
	Rate float64
	// Connections bounds the requests in flight (closed loop: workers).
	// Default 16.
	Connections int
	// Warmup is run first and not measured. Duration is measured.
	Warmup, Duration time.Duration
	// Timeout bounds one request. Default 5s.
	Timeout time.Duration
}

// Bounds of a scenario.
const (
	maxOps         = 16
	maxOpWeight    = 1_000_000
	maxConnections = 10_000
	// hdrMax is the slowest latency the histograms hold (longer ones are
	// recorded as it); 3 significant digits.
	hdrMax = int64(time.Minute / time.Microsecond)
)

func (s *Scenario) validate() error {
	if s.Connections == 0 {
		s.Connections = 16
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Second
	}
	switch {
	case len(s.Ops) == 0 || len(s.Ops) > maxOps:
		return fmt.Errorf("loadtest: scenario: 1 to %d ops", maxOps)
	case s.Rate < 0 || s.Duration <= 0 || s.Warmup < 0:
		return errors.New("loadtest: scenario: rate and warmup must not be negative, duration must be positive")
	case s.Connections < 1 || s.Connections > maxConnections:
		return fmt.Errorf("loadtest: scenario: connections %d out of range 1..%d", s.Connections, maxConnections)
	}
	for _, op := range s.Ops {
		if op.Name == "" || op.Do == nil || op.Weight < 1 || op.Weight > maxOpWeight {
			return fmt.Errorf("loadtest: scenario: op %q needs a name, Do and a weight 1..%d", op.Name, maxOpWeight)
		}
	}
	return nil
}

// cycle is the ops' order: smooth weighted round robin, so any run of n
// requests has each op within its weight of n times its share.
func (s *Scenario) cycle() []int {
	total := 0
	for _, op := range s.Ops {
		total += op.Weight
	}
	cur := make([]int, len(s.Ops))
	out := make([]int, 0, total)
	for range total {
		best := 0
		for i, op := range s.Ops {
			cur[i] += op.Weight
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, best)
	}
	return out
}

// OpResult is one op's measured requests. Latencies come from an HDR
// histogram (microsecond resolution, 3 significant digits).
type OpResult struct {
	Name     string        `json:"name"`
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	P50      time.Duration `json:"p50_ns"`
	P90      time.Duration `json:"p90_ns"`
	P99      time.Duration `json:"p99_ns"`
	P999     time.Duration `json:"p999_ns"`
	Max      time.Duration `json:"max_ns"`
	// FirstError is one error's text, to say what failed.
	FirstError string `json:"first_error,omitempty"`
}

// ScenarioResult is a scenario run's measurements: by op and over all.
type ScenarioResult struct {
	Mode    string        `json:"mode"`
	Target  float64       `json:"target_rate,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Rate    float64       `json:"achieved_rate"`
	// Dropped are open-loop requests with no connection free at their
	// scheduled time (counted as errors of All).
	Dropped int64      `json:"dropped"`
	All     OpResult   `json:"all"`
	Ops     []OpResult `json:"ops"`
}

type opStats struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	errors   int64
	firstErr string
}

func newOpStats() *opStats { return &opStats{hist: hdrhistogram.New(1, hdrMax, 3)} }

func (o *opStats) record(d time.Duration, err error) {
	us := max(int64(d/time.Microsecond), 1)
	o.mu.Lock()
	_ = o.hist.RecordValue(min(us, hdrMax))
	if err != nil {
		o.errors++
		if o.firstErr == "" {
			o.firstErr = err.Error()
		}
	}
	o.mu.Unlock()
}

func (o *opStats) result(name string) OpResult {
	q := func(p float64) time.Duration { return time.Duration(o.hist.ValueAtQuantile(p)) * time.Microsecond }
	return OpResult{Name: name, Requests: o.hist.TotalCount(), Errors: o.errors, P50: q(50), P90: q(90), P99: q(99), P999: q(99.9),
		Max: time.Duration(o.hist.Max()) * time.Microsecond, FirstError: o.firstErr}
}

// RunScenario runs s: the warm-up, then the measured duration.
func RunScenario(ctx context.Context, s Scenario) (ScenarioResult, error) {
	if err := s.validate(); err != nil {
		return ScenarioResult{}, err
	}
	cyc := s.cycle()
	var seq atomic.Uint64
	counters := make([]atomic.Uint64, len(s.Ops))
	one := func(ctx context.Context, stats []*opStats, scheduled time.Time) {
		k := cyc[int(seq.Add(1)-1)%len(cyc)]
		i := counters[k].Add(1) - 1
		rctx, cancel := context.WithTimeout(ctx, s.Timeout)
		err := s.Ops[k].Do(rctx, i)
		cancel()
		if stats != nil {
			stats[k].record(time.Since(scheduled), err)
		}
	}
	run := func(d time.Duration, stats []*opStats) (time.Duration, int64) {
		if d <= 0 {
			return 0, 0
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		start := time.Now()
		var wg sync.WaitGroup
		var dropped int64
		if s.Rate == 0 {
			for range s.Connections {
				wg.Go(func() {
					for ctx.Err() == nil { // the end of the run stops the loop, not a request in flight
						one(context.WithoutCancel(ctx), stats, time.Now())
					}
				})
			}
		} else {
			slots := make(chan struct{}, s.Connections)
			interval := time.Duration(float64(time.Second) / s.Rate)
			for n := 0; ; n++ {
				at := start.Add(time.Duration(n) * interval)
				if wait := time.Until(at); wait > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
				}
				if ctx.Err() != nil {
					break
				}
				select {
				case slots <- struct{}{}:
					wg.Go(func() {
						defer func() { <-slots }()
						one(context.WithoutCancel(ctx), stats, at) // measured from the schedule
					})
				default:
					dropped++
				}
			}
		}
		wg.Wait()
		return time.Since(start), dropped
	}
	run(s.Warmup, nil)
	if ctx.Err() != nil {
		return ScenarioResult{}, ctx.Err()
	}
	stats := make([]*opStats, len(s.Ops))
	for i := range stats {
		stats[i] = newOpStats()
	}
	elapsed, dropped := run(s.Duration, stats)
	res := ScenarioResult{Mode: "closed", Elapsed: elapsed, Dropped: dropped}
	if s.Rate > 0 {
		res.Mode, res.Target = "open", s.Rate
	}
	all := newOpStats()
	for i, st := range stats {
		res.Ops = append(res.Ops, st.result(s.Ops[i].Name))
		all.hist.Merge(st.hist)
		all.errors += st.errors
		if all.firstErr == "" {
			all.firstErr = st.firstErr
		}
	}
	res.All = all.result("all")
	res.All.Errors += dropped
	if elapsed > 0 {
		res.Rate = float64(res.All.Requests) / elapsed.Seconds()
	}
	return res, ctx.Err()
}

// Step is one rate tried by a capacity search.
type Step struct {
	Rate   float64        `json:"rate"`
	Result ScenarioResult `json:"result"`
	OK     bool           `json:"ok"`
	Why    string         `json:"why,omitempty"`
}

// CapacityConfig bounds a capacity search: the highest open-loop rate in
// [Low, High] whose p99 stays at most P99 with no errors and at least
// 95% of the rate achieved, found by bisection in at most Steps runs.
type CapacityConfig struct {
	Low, High float64
	P99       time.Duration
	Steps     int
}

// Capacity searches for the highest rate that passes; probe runs the
// scenario at one rate (RunScenario with Rate set, in practice). It
// returns 0 when even Low fails, and the steps tried in order.
func Capacity(ctx context.Context, c CapacityConfig, probe func(ctx context.Context, rate float64) (ScenarioResult, error)) (float64, []Step, error) {
	if !(c.Low > 0 && c.High >= c.Low) || c.P99 <= 0 || c.Steps < 1 || c.Steps > 64 {
		return 0, nil, errors.New("loadtest: capacity: 0 < low <= high, p99 > 0, 1..64 steps")
	}
	var steps []Step
	try := func(rate float64) (bool, error) {
		r, err := probe(ctx, rate)
		if err != nil {
			return false, err
		}
		st := Step{Rate: rate, Result: r, OK: true}
		switch {
		case r.All.Errors > 0:
			st.OK, st.Why = false, fmt.Sprintf("%d errors", r.All.Errors)
		case r.All.P99 > c.P99:
			st.OK, st.Why = false, fmt.Sprintf("p99 %v over %v", r.All.P99, c.P99)
		case r.Rate < 0.95*rate:
			st.OK, st.Why = false, fmt.Sprintf("achieved %.0f/s of %.0f/s", r.Rate, rate)
		}
		steps = append(steps, st)
		return st.OK, nil
	}
	// The floor first (if it fails nothing passes), then the ceiling;
	// then bisection between a passing lo and a failing hi.
	lo, hi := c.Low, c.High
	if ok, err := try(lo); err != nil || !ok {
		return 0, steps, err
	}
	if c.Steps == 1 || hi == lo {
		return lo, steps, nil
	}
	if ok, err := try(hi); err != nil || ok {
		return map[bool]float64{true: hi, false: lo}[ok], steps, err
	}
	for n := 2; n < c.Steps && hi-lo > 0.01*hi; n++ {
		mid := (lo + hi) / 2
		ok, err := try(mid)
		if err != nil {
			return lo, steps, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, steps, nil
}

// WriteTable prints a result for people: one row per op and the total.
func (r ScenarioResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s loop, %v, %.0f req/s achieved", r.Mode, r.Elapsed.Round(time.Millisecond), r.Rate)
	if r.Target > 0 {
		fmt.Fprintf(w, " of %.0f (dropped %d)", r.Target, r.Dropped)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-12s %10s %8s %10s %10s %10s %10s %10s\n", "op", "requests", "errors", "p50", "p90", "p99", "p99.9", "max")
	rows := append(append([]OpResult(nil), r.Ops...), r.All)
	for _, o := range rows {
		fmt.Fprintf(w, "%-12s %10d %8d %10v %10v %10v %10v %10v\n", o.Name, o.Requests, o.Errors, o.P50, o.P90, o.P99, o.P999, o.Max)
	}
	var errs []string
	for _, o := range r.Ops {
		if o.FirstError != "" {
			errs = append(errs, o.Name+": "+o.FirstError)
		}
	}
	sort.Strings(errs)
	if len(errs) > 0 {
		fmt.Fprintf(w, "first errors: %s\n", strings.Join(errs, "; "))
	}
}
