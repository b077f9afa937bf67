package admission

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// held marks a ticket as still in progress: its Done is never called
// (the test looks at the gate alone).
func (t Ticket) held() {}

// clock is a fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newController(t *testing.T, cfg Config) (*Controller, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg.Now = clk.now
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// window runs one window of requests of class cl, each taking lat: rounds
// of n in progress at once (so the window uses n of the limit) until
// MinSamples have finished; the window's time is up before the last round
// ends.
func window(t *testing.T, c *Controller, clk *clock, cl Class, n int, lat time.Duration) {
	t.Helper()
	for done := 0; done < c.cfg.MinSamples; {
		k := n
		if done > 0 {
			k = min(n, c.cfg.MinSamples-done) // the window ends with its last round
		}
		done += k
		tickets := make([]Ticket, 0, k)
		for range k {
			tk, err := c.Acquire(cl)
			if err != nil {
				t.Fatalf("acquire %d of %d (limit %d): %v", len(tickets)+1, n, c.Limit(), err)
			}
			tickets = append(tickets, tk)
		}
		if done >= c.cfg.MinSamples {
			clk.advance(max(lat, c.cfg.Window))
		}
		for _, tk := range tickets {
			tk.start = clk.t.Add(-lat)
			tk.Done()
		}
	}
}

func TestLimitFollowsLatency(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 40, MinLimit: 4, MaxLimit: 100})
	// Slow windows (10ms > the 5ms target): the limit falls by Backoff
	// each time, down to MinLimit.
	want := 40.0
	for range 5 {
		window(t, c, clk, Evaluate, 10, 10*time.Millisecond)
		want = max(4, want*0.9)
		if got := c.Limit(); got != int(want) {
			t.Fatalf("after a slow window: limit %d, want %d", got, int(want))
		}
	}
	for range 40 {
		window(t, c, clk, Evaluate, 4, 10*time.Millisecond)
	}
	if got := c.Limit(); got != 4 {
		t.Fatalf("after many slow windows: limit %d, want MinLimit 4", got)
	}
	// Fast windows that use the limit: it grows by one each.
	for i := range 10 {
		window(t, c, clk, Evaluate, c.Limit(), time.Millisecond)
		if got := c.Limit(); got != 5+i {
			t.Fatalf("after fast window %d: limit %d, want %d", i+1, got, 5+i)
		}
	}
	// A fast window that uses under half the limit leaves it.
	before := c.Limit()
	window(t, c, clk, Evaluate, 1, time.Millisecond)
	if got := c.Limit(); got != before {
		t.Errorf("an idle window changed the limit from %d to %d", before, got)
	}
}

func TestLimitBounds(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 10, MinLimit: 8, MaxLimit: 11, MinSamples: 1})
	for range 10 {
		window(t, c, clk, Evaluate, c.Room(Evaluate), time.Microsecond)
	}
	if got := c.Limit(); got != 11 {
		t.Errorf("limit %d, want MaxLimit 11", got)
	}
	for range 10 {
		window(t, c, clk, Evaluate, 8, time.Second)
	}
	if got := c.Limit(); got != 8 {
		t.Errorf("limit %d, want MinLimit 8", got)
	}
}

func TestWindowNeedsSamplesAndTime(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 50, MinSamples: 10})
	slow := func(n int) {
		for range n {
			tk, _ := c.Acquire(Evaluate)
			tk.start = clk.t.Add(-time.Second)
			tk.Done()
		}
	}
	// Nine slow requests over a whole window: too few to judge.
	clk.advance(time.Second)
	slow(9)
	if got := c.Limit(); got != 50 {
		t.Fatalf("limit %d after 9 samples, want 50", got)
	}
	slow(1) // the tenth judges the window
	if got := c.Limit(); got != 45 {
		t.Fatalf("limit %d after 10 slow samples, want 45", got)
	}
	slow(20) // no time passes: the new window stays open
	if got := c.Limit(); got != 45 {
		t.Errorf("limit %d within one window, want 45", got)
	}
	clk.advance(100 * time.Millisecond)
	slow(1)
	if got := c.Limit(); got != 40 {
		t.Errorf("limit %d once the window's time is up, want 40", got)
	}
}

func TestPriorities(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, _ := newController(t, Config{InitialLimit: 20, MinLimit: 4, Registry: reg})
	// Room: evaluate 20, poll 18, management 15.
	for cl, want := range map[Class]int{Evaluate: 20, Poll: 18, Management: 15} {
		if got := c.Room(cl); got != want {
			t.Errorf("%s room %d, want %d", cl, got, want)
		}
	}
	var held []Ticket
	acquire := func(cl Class, n int) {
		for range n {
			tk, err := c.Acquire(cl)
			if err != nil {
				t.Fatalf("%s at %d in flight: %v", cl, c.Inflight(), err)
			}
			held = append(held, tk)
		}
	}
	acquire(Management, 15)
	if _, err := c.Acquire(Management); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("management past its share: %v, want ErrOverloaded", err)
	}
	acquire(Poll, 3)
	if _, err := c.Acquire(Poll); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("poll past its share: %v", err)
	}
	acquire(Evaluate, 2) // evaluation keeps the top of the limit
	_, err := c.Acquire(Evaluate)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Class != Evaluate || rej.RetryAfterSeconds() != "1" {
		t.Fatalf("evaluate at the limit: %v, want a refusal with Retry-After 1", err)
	}
	if got := testutil.ToFloat64(c.m.rejected[Management]); got != 1 {
		t.Errorf("management refusals %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.m.refused[Evaluate][reasonLimit]); got != 1 {
		t.Errorf("evaluate refusals by the limit %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.m.inflight[Evaluate]); got != 2 {
		t.Errorf("evaluate in flight gauge %v, want 2", got)
	}
	for _, tk := range held {
		tk.Done()
	}
	if got := c.Inflight(); got != 0 {
		t.Errorf("in flight %d after every Done, want 0", got)
	}
}

// TestLowerClassesShedFirst: as latency rises and the limit falls, the
// room of management, then polls, shrinks first; evaluation keeps the
// most.
func TestLowerClassesShedFirst(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 100, MinLimit: 8})
	// burst holds n requests of class cl at once and says how many were
	// admitted (the clock stands still: no window closes).
	burst := func(cl Class, n int) int {
		var ts []Ticket
		for range n {
			if tk, err := c.Acquire(cl); err == nil {
				ts = append(ts, tk)
			}
		}
		for _, tk := range ts {
			tk.start = clk.t
			tk.Done()
		}
		return len(ts)
	}
	for _, cl := range Classes() {
		if got := burst(cl, 60); got != 60 {
			t.Fatalf("fast node: %s admitted %d of 60", cl, got)
		}
	}
	for range 10 {
		window(t, c, clk, Evaluate, 10, 50*time.Millisecond)
	}
	ev, poll, mgmt := burst(Evaluate, 60), burst(Poll, 60), burst(Management, 60)
	if c.Limit() >= 40 || ev != c.Room(Evaluate) || poll != c.Room(Poll) || mgmt != c.Room(Management) {
		t.Fatalf("slow node, limit %d: admitted %d, %d, %d of 60, want the rooms %d, %d, %d", c.Limit(), ev, poll, mgmt,
			c.Room(Evaluate), c.Room(Poll), c.Room(Management))
	}
	if ev-mgmt < 5 || ev <= poll || poll <= mgmt {
		t.Errorf("slow node: evaluate %d, poll %d, management %d admitted: lower classes must lose more", ev, poll, mgmt)
	}
}

func TestRefusalIsImmediate(t *testing.T) {
	c, clk := newController(t, Config{InitialLimit: 8, MinLimit: 8})
	for range 8 {
		if _, err := c.Acquire(Evaluate); err != nil {
			t.Fatal(err)
		}
	}
	// The refusal happens without the clock moving and without any other
	// goroutine: Acquire returns, it does not wait for a slot.
	before := clk.t
	done := make(chan error, 1)
	go func() { _, err := c.Acquire(Evaluate); done <- err }()
	if err := <-done; !errors.Is(err, ErrOverloaded) {
		t.Fatalf("got %v, want ErrOverloaded", err)
	}
	if !clk.t.Equal(before) {
		t.Error("the clock moved")
	}
	if _, err := c.Acquire(Class(7)); err == nil || !strings.Contains(err.Error(), "unknown class") {
		t.Errorf("unknown class: %v", err)
	}
	Ticket{}.Done() // the zero ticket is harmless
}

func TestQuota(t *testing.T) {
	c, clk := newController(t, Config{QuotaRate: 2, QuotaBurst: 3, TeamQuotas: map[int64]Quota{7: {Rate: 0.5}, 8: {Rate: 0}}})
	take := func(team int64, n int) (ok int, last error) {
		for range n {
			if err := c.AllowTeam(Evaluate, team); err != nil {
				last = err
			} else {
				ok++
			}
		}
		return ok, last
	}
	if ok, err := take(1, 5); ok != 3 || !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("team 1, 5 at once: %d allowed (%v), want the burst of 3 then ErrQuotaExceeded", ok, err)
	}
	if ok, _ := take(2, 3); ok != 3 {
		t.Errorf("team 2 has its own bucket: %d of 3", ok)
	}
	clk.advance(time.Second) // two tokens back at 2/s
	if ok, _ := take(1, 3); ok != 2 {
		t.Errorf("team 1 a second later: %d allowed, want 2", ok)
	}
	// Team 7: 0.5/s, burst 1; it waits 2s for the next token.
	if ok, _ := take(7, 1); ok != 1 {
		t.Fatal("team 7's first request refused")
	}
	_, err := take(7, 1)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.RetryAfter != 2*time.Second || rej.RetryAfterSeconds() != "2" {
		t.Errorf("team 7: %v, want Retry-After 2s", err)
	}
	if ok, _ := take(8, 1000); ok != 1000 {
		t.Errorf("team 8 is unlimited: %d of 1000", ok)
	}
	if got := len(c.quotas.buckets); got != 3 {
		t.Errorf("%d buckets, want 3 (unlimited teams keep none)", got)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"min over max", Config{MinLimit: 50, MaxLimit: 10}, "MinLimit 50 is over MaxLimit 10"},
		{"initial out", Config{InitialLimit: 5000}, "InitialLimit 5000"},
		{"negative limit", Config{MaxLimit: -1}, "MaxLimit -1"},
		{"huge limit", Config{MaxLimit: 2_000_000}, "MaxLimit 2000000"},
		{"share over one", Config{Shares: [numClasses]float64{1, 1.5, 0}}, "poll share 1.5"},
		{"lower class more room", Config{Shares: [numClasses]float64{0.5, 0.9, 0.4}}, "poll share 0.9 is over the evaluate share 0.5"},
		{"negative target", Config{Targets: [numClasses]time.Duration{-1}}, "evaluate target is negative"},
		{"slow fraction", Config{SlowFraction: 1}, "SlowFraction 1"},
		{"backoff", Config{Backoff: 1.5}, "Backoff 1.5"},
		{"negative window", Config{Window: -time.Second}, "must not be negative"},
		{"negative rate", Config{QuotaRate: -1}, "the quota rate -1"},
		{"team burst", Config{TeamQuotas: map[int64]Quota{3: {Rate: 1, Burst: -2}}}, "team 3's quota burst -2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// TestRateGate: when the scheduler's delays say the node is CPU-bound, the
// gate admits at most the rate just served times Backoff, keeps the top of
// its bucket for the higher classes, and opens again once the delays fall.
func TestRateGate(t *testing.T) {
	delay, busy := 5*time.Millisecond, 0.5
	c, clk := newController(t, Config{InitialLimit: 4096, MinLimit: 8, MaxLimit: 4096, SchedTarget: time.Millisecond,
		SchedDelay: func() (time.Duration, float64) { return delay, busy }})
	if !math.IsInf(c.Rate(), 1) {
		t.Fatalf("the gate starts open: %v", c.Rate())
	}
	// A window of 1000 fast requests in 100ms (10,000/s) with the
	// scheduler 5ms behind: the gate closes to 9,000/s. Each request
	// waited age (not late: under half the 5ms target): 2ms keeps 20
	// waiting on average, a queue (MinQueue 16).
	age := 2 * time.Millisecond
	serve := func(n int, over time.Duration) {
		step := over / time.Duration(n)
		for range n {
			clk.advance(step)
			tk, err := c.AcquireAged(Evaluate, age)
			if err != nil {
				t.Fatalf("acquire at rate %v: %v", c.Rate(), err)
			}
			tk.Done()
		}
	}
	// The scheduler is late but the process's Ps are half idle: the CPUs
	// are busy with another process's work, and the gate stays open.
	serve(1000, 100*time.Millisecond)
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Fatalf("rate %v while other processes take the CPUs, want the gate open", got)
	}
	busy = 0.97
	// Nor with a few requests waiting (1.2 on average): a pause, or a
	// few clients, which refusing would not shorten.
	age = 120 * time.Microsecond
	serve(1000, 100*time.Millisecond)
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Fatalf("rate %v with 1.2 requests waiting, want the gate open", got)
	}
	age = 2 * time.Millisecond
	serve(1000, 100*time.Millisecond)
	if got := c.Rate(); math.Abs(got-9000) > 1 {
		t.Fatalf("rate %v after a CPU-bound window at 10,000/s, want 9,000", got)
	}
	// Its bucket holds 10ms of the rate (90): evaluation may take it all,
	// management stops at the last quarter, all at one instant.
	burst := func(cl Class) (n int) {
		for {
			tk, err := c.Acquire(cl)
			if err != nil {
				if !errors.Is(err, ErrOverloaded) {
					t.Fatal(err)
				}
				return n
			}
			n++
			tk.held()
		}
	}
	clk.advance(time.Second) // a full bucket
	if m := burst(Management); m < 60 || m > 70 {
		t.Errorf("management took %d of a bucket of 90, want about 67 (the top quarter is kept)", m)
	}
	if got := testutil.ToFloat64(c.m.refused[Management][reasonRate]); got != 1 {
		t.Errorf("management refusals for want of a token %v, want 1", got)
	}
	if e := burst(Evaluate); e < 20 || e > 25 {
		t.Errorf("evaluate took the %d left, want about 23", e)
	}
	clk.advance(time.Millisecond) // 9 more tokens
	if e := burst(Evaluate); e != 9 {
		t.Errorf("evaluate took %d after 1ms at 9,000/s, want 9", e)
	}
	// The delays fall: the gate opens by a tenth per calm window, and
	// wide open once the load is under half of it.
	delay = 0
	c.mu.Lock()
	c.mu.start, c.mu.admitted, c.mu.samples = clk.t, 0, 0
	c.mu.Unlock()
	serve(800, 100*time.Millisecond) // 8,000/s
	if got := c.Rate(); math.Abs(got-9900) > 1 {
		t.Errorf("rate %v after a calm window, want 9,900", got)
	}
	serve(400, 100*time.Millisecond) // 4,000/s: under half of 10,890
	if got := c.Rate(); !math.IsInf(got, 1) {
		t.Errorf("rate %v once the load fell, want the gate open", got)
	}
}

// TestSchedDelayReadsTheRuntime: the runtime's figures are there and in
// range (their values depend on the machine).
func TestSchedDelayReadsTheRuntime(t *testing.T) {
	s := newSchedDelay(0.99)
	s.read()
	done := make(chan struct{})
	for range 4 {
		go func() {
			for i := 0; i < 1e6; i++ {
				_ = math.Sqrt(float64(i))
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	d, busy := s.read()
	if d < 0 || d > time.Minute || busy < 0 || busy > 1 || len(s.prev) == 0 {
		t.Errorf("delay %v, busy %v, %d buckets", d, busy, len(s.prev))
	}
}
