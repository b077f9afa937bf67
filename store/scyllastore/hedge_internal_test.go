package scyllastore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vexil-dev/vexil/store"
)

// feed observes n latencies of d.
func feed(e *delayEstimator, n int, d time.Duration) {
	for range n {
		e.Observe(d)
	}
}

// within checks that got is d's bucket bound: in [d, d·2^(1/8)].
func within(t *testing.T, what string, got, d time.Duration) {
	t.Helper()
	if got < d || float64(got) > float64(d)*1.0906 {
		t.Fatalf("%s: delay %v, want %v's bucket (at most 9%% above)", what, got, d)
	}
}

func TestDelayEstimator(t *testing.T) {
	const ms = time.Millisecond
	t.Run("no samples: max", func(t *testing.T) {
		e := newDelayEstimator(0.95, ms, 50*ms)
		if got := e.Delay(); got != 50*ms {
			t.Fatalf("delay %v, want 50ms", got)
		}
		feed(e, estimatorMinSamples-1, 2*ms)
		if got := e.Delay(); got != 50*ms {
			t.Fatalf("delay after %d samples %v, want 50ms", estimatorMinSamples-1, got)
		}
		feed(e, 1, 2*ms)
		within(t, "64 samples", e.Delay(), 2*ms)
	})
	t.Run("percentile", func(t *testing.T) {
		e := newDelayEstimator(0.95, ms, time.Second)
		feed(e, 960, 3*ms)
		feed(e, 64, 100*ms) // 6.25% slow: the 95th percentile is slow
		within(t, "p95 of 6.25% slow", e.Delay(), 100*ms)

		e = newDelayEstimator(0.95, ms, time.Second)
		feed(e, 992, 3*ms)
		feed(e, 32, 100*ms) // 3.1% slow: it is not
		within(t, "p95 of 3.1% slow", e.Delay(), 3*ms)

		e = newDelayEstimator(0.5, ms, time.Second)
		feed(e, 400, 2*ms)
		feed(e, 400, 8*ms)
		feed(e, 224, 30*ms)
		within(t, "p50", e.Delay(), 8*ms)

		e = newDelayEstimator(1, ms, time.Second)
		feed(e, 1000, 2*ms)
		feed(e, 8, 700*ms)
		within(t, "p100", e.Delay(), 700*ms)
	})
	t.Run("clamped", func(t *testing.T) {
		e := newDelayEstimator(0.95, 5*ms, 20*ms)
		feed(e, 1024, 50*time.Microsecond)
		if got := e.Delay(); got != 5*ms {
			t.Fatalf("fast reads: delay %v, want the 5ms minimum", got)
		}
		feed(e, 2048, 3*time.Second)
		if got := e.Delay(); got != 20*ms {
			t.Fatalf("slow reads: delay %v, want the 20ms maximum", got)
		}
		feed(e, 2048, time.Hour) // beyond the last bound: the overflow bucket
		if got := e.Delay(); got != 20*ms {
			t.Fatalf("very slow reads: delay %v, want the 20ms maximum", got)
		}
	})
	t.Run("window forgets", func(t *testing.T) {
		e := newDelayEstimator(0.95, ms, time.Second)
		feed(e, 3000, 200*ms)
		within(t, "slow period", e.Delay(), 200*ms)
		// One window of fast reads: half of the histogram is still slow.
		feed(e, estimatorWindow, 2*ms)
		within(t, "one fast window", e.Delay(), 200*ms)
		// Two windows: the slow period is forgotten.
		feed(e, 2*estimatorWindow, 2*ms)
		within(t, "two fast windows", e.Delay(), 2*ms)
	})
}

func TestHedgeBudget(t *testing.T) {
	b := newHedgeBudget(0.25)
	for i := range budgetBurst {
		if !b.take() {
			t.Fatalf("hedge %d of the initial burst refused", i)
		}
	}
	if b.take() {
		t.Fatal("hedge past the burst allowed")
	}
	for i := range 12 { // 12 reads at 0.25: 3 hedges
		b.read()
		if i == 2 && b.take() {
			t.Fatal("hedge allowed after 3 reads at rate 0.25")
		}
	}
	for i := range 3 {
		if !b.take() {
			t.Fatalf("hedge %d of 3 earned refused", i)
		}
	}
	if b.take() {
		t.Fatal("a fourth hedge allowed after 12 reads at rate 0.25")
	}
	for range 1000 {
		b.read()
	}
	n := 0
	for b.take() {
		n++
	}
	if n != budgetBurst {
		t.Fatalf("after a quiet period %d hedges allowed, want the burst %d", n, budgetBurst)
	}
}

// fakeHost is a gocql.SelectedHost.
type fakeHost struct{ info *gocql.HostInfo }

func (h fakeHost) Info() *gocql.HostInfo { return h.info }
func (h fakeHost) Token() gocql.Token    { return nil }
func (h fakeHost) Mark(error)            {}

// listPolicy picks its hosts in order.
type listPolicy struct {
	gocql.HostSelectionPolicy
	hosts []*gocql.HostInfo
}

func (p listPolicy) Pick(gocql.ExecutableQuery) gocql.NextHost {
	i := 0
	return func() gocql.SelectedHost {
		if i == len(p.hosts) {
			return nil
		}
		i++
		return fakeHost{p.hosts[i-1]}
	}
}

func host(id string) *gocql.HostInfo {
	h := new(gocql.HostInfo)
	h.SetHostID(id)
	return h
}

// TestHedgePolicyPick checks that the attempts of one hedged read go to
// different hosts, and that other queries see the wrapped policy's order.
func TestHedgePolicyPick(t *testing.T) {
	p := newHedgePolicy(listPolicy{hosts: []*gocql.HostInfo{host("a"), host("b"), host("c")}})
	ids := func(ctx context.Context) string {
		next := p.Pick(new(gocql.Query).WithContext(ctx))
		var out string
		for h := next(); h != nil; h = next() {
			out += h.Info().HostID()
		}
		return out
	}
	if got := ids(context.Background()); got != "abc" {
		t.Fatalf("plain query picks %q, want abc", got)
	}
	claims := new(hostClaims)
	at := func(n int) context.Context {
		return context.WithValue(context.Background(), attemptKey{}, attempt{claims: claims, n: n})
	}
	first := p.Pick(new(gocql.Query).WithContext(at(0)))
	if h := first(); h.Info().HostID() != "a" {
		t.Fatalf("first attempt picks %s, want a", h.Info().HostID())
	}
	if got := ids(at(1)); got != "bc" {
		t.Fatalf("hedge picks %q, want bc (a is the first attempt's)", got)
	}
	if got := ids(at(2)); got != "" {
		t.Fatalf("second hedge picks %q, want nothing (every host claimed)", got)
	}
	if h := first(); h != nil { // b and c are the hedge's now
		t.Fatalf("first attempt's retry picks %s, want none", h.Info().HostID())
	}
	if got := ids(at(0)); got != "a" {
		t.Fatalf("first attempt again picks %q, want its own a", got)
	}
}

// testHedger hedges after delay on n hosts, budget unlimited in practice.
func testHedger(t *testing.T, delay time.Duration, hosts int) *hedger {
	t.Helper()
	m, err := newMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &hedger{
		attempts: 1,
		est:      newDelayEstimator(0.95, delay, delay),
		budget:   newHedgeBudget(1),
		policy:   newHedgePolicy(nil),
		m:        m,
	}
	h.policy.nUp.Store(int32(hosts))
	return h
}

func attemptOf(ctx context.Context) int { return ctx.Value(attemptKey{}).(attempt).n }

// TestHedged checks which answer a hedged read returns, without timing
// assumptions: each case's attempts wait for each other, never for a clock.
func TestHedged(t *testing.T) {
	ctx := context.Background()
	count := func(h *hedger) (hedges, wins float64) {
		return testutil.ToFloat64(h.m.hedges.WithLabelValues(opGetRow)),
			testutil.ToFloat64(h.m.hedgeWins.WithLabelValues(opGetRow))
	}

	t.Run("first answers", func(t *testing.T) {
		h := testHedger(t, time.Minute, 3)
		v, err := hedged(ctx, h, opGetRow, func(ctx context.Context) (int, error) { return attemptOf(ctx), nil })
		if v != 0 || err != nil {
			t.Fatalf("got %d, %v; want the first attempt's 0", v, err)
		}
		if hg, w := count(h); hg != 0 || w != 0 {
			t.Fatalf("hedges %v, wins %v; want 0, 0", hg, w)
		}
	})

	t.Run("hedge answers, first cancelled", func(t *testing.T) {
		h := testHedger(t, time.Millisecond, 3)
		var cancelled atomic.Bool
		v, err := hedged(ctx, h, opGetRow, func(ctx context.Context) (int, error) {
			if n := attemptOf(ctx); n > 0 {
				return n, store.ErrNotFound // an answer
			}
			<-ctx.Done()
			cancelled.Store(true)
			return 0, ctx.Err()
		})
		if v != 1 || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("got %d, %v; want the hedge's 1, ErrNotFound", v, err)
		}
		if !cancelled.Load() {
			t.Fatal("returned before the first attempt was cancelled and returned")
		}
		if hg, w := count(h); hg != 1 || w != 1 {
			t.Fatalf("hedges %v, wins %v; want 1, 1", hg, w)
		}
	})

	t.Run("failed hedge does not fail the read", func(t *testing.T) {
		h := testHedger(t, time.Millisecond, 3)
		hedgeFailed := make(chan struct{})
		v, err := hedged(ctx, h, opGetRow, func(ctx context.Context) (int, error) {
			if attemptOf(ctx) > 0 {
				defer close(hedgeFailed)
				return -1, gocql.ErrNoConnections
			}
			<-hedgeFailed
			return 7, nil
		})
		if v != 7 || err != nil {
			t.Fatalf("got %d, %v; want the first attempt's 7", v, err)
		}
		if hg, w := count(h); hg != 1 || w != 0 {
			t.Fatalf("hedges %v, wins %v; want 1, 0", hg, w)
		}
	})

	t.Run("every attempt fails", func(t *testing.T) {
		h := testHedger(t, time.Millisecond, 3)
		firstFailed := make(chan struct{})
		errFirst := errors.New("first")
		_, err := hedged(ctx, h, opGetRow, func(ctx context.Context) (int, error) {
			if attemptOf(ctx) > 0 {
				<-firstFailed
				return 0, errors.New("hedge")
			}
			defer close(firstFailed)
			return 0, errFirst
		})
		// The first attempt may fail before the hedge is sent (then
		// nothing else runs) or after: either way its error is returned.
		if !errors.Is(err, errFirst) {
			t.Fatalf("got %v, want the first failure", err)
		}
	})

	t.Run("one host: read alone", func(t *testing.T) {
		h := testHedger(t, time.Millisecond, 1)
		v, err := hedged(ctx, h, opGetRow, func(ctx context.Context) (int, error) {
			time.Sleep(20 * time.Millisecond) // past the delay, most likely
			if ctx.Value(attemptKey{}) != nil {
				return 0, fmt.Errorf("attempt context with one host")
			}
			return 5, nil
		})
		if v != 5 || err != nil {
			t.Fatalf("got %d, %v; want 5", v, err)
		}
		if hg, _ := count(h); hg != 0 {
			t.Fatalf("hedges %v on one host, want 0", hg)
		}
	})

	t.Run("off", func(t *testing.T) {
		v, err := hedged(ctx, nil, opGetRow, func(ctx context.Context) (string, error) {
			if ctx.Value(attemptKey{}) != nil {
				return "", fmt.Errorf("attempt context without hedging")
			}
			return "x", nil
		})
		if v != "x" || err != nil {
			t.Fatalf("got %q, %v", v, err)
		}
	})
}
