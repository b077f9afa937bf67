package scyllastore

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/store"
)

// Delay estimation: a histogram of the latencies of recent answered reads,
// in two generations of estimatorWindow samples (the current one and the
// previous, full one), so that the estimate follows the last 1,000 to 2,000
// reads. Buckets grow by 2^(1/8) (9%) from estimatorBase; a percentile
// reads as the upper bound of its bucket, at most 9% above the true value.
const (
	estimatorWindow     = 1024
	estimatorMinSamples = 64 // below this, the delay is the maximum
	estimatorRecompute  = 16 // samples between two recomputations
	estimatorBase       = 10 * time.Microsecond
	estimatorBuckets    = 8*20 + 1 // 10 µs · 2^20 ≈ 10.5 s, then one overflow bucket
)

// estimatorBounds are the buckets' upper bounds.
var estimatorBounds = func() []time.Duration {
	b := make([]time.Duration, estimatorBuckets)
	for i := range b {
		b[i] = time.Duration(float64(estimatorBase) * math.Exp2(float64(i)/8))
	}
	b[len(b)-1] = math.MaxInt64
	return b
}()

// delayEstimator turns observed read latencies into a hedging delay: the
// configured percentile of recent latencies, clamped to [min, max]. Safe
// for concurrent use; Delay is one atomic load.
type delayEstimator struct {
	q        float64
	min, max time.Duration
	delay    atomic.Int64 // the current delay in ns

	mu struct {
		sync.Mutex
		cur, prev [estimatorBuckets]uint32 // counts per bucket
		n         int                      // samples in cur
		prevN     int                      // samples in prev: 0 or estimatorWindow
		since     int                      // samples since the last recomputation
	}
}

func newDelayEstimator(q float64, min, max time.Duration) *delayEstimator {
	e := &delayEstimator{q: q, min: min, max: max}
	e.delay.Store(int64(max))
	return e
}

// Delay is how long a read waits before it is hedged.
func (e *delayEstimator) Delay() time.Duration { return time.Duration(e.delay.Load()) }

// Observe adds the latency of one answered read.
func (e *delayEstimator) Observe(d time.Duration) {
	i, _ := slices.BinarySearch(estimatorBounds, d)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.cur[i]++
	e.mu.n++
	e.mu.since++
	if e.mu.n == estimatorWindow {
		e.mu.prev, e.mu.prevN = e.mu.cur, e.mu.n
		e.mu.cur, e.mu.n = [estimatorBuckets]uint32{}, 0
	}
	if e.mu.since >= estimatorRecompute {
		e.mu.since = 0
		e.delay.Store(int64(e.estimateLocked()))
	}
}

// estimateLocked computes the delay from the histogram; e.mu is held.
func (e *delayEstimator) estimateLocked() time.Duration {
	total := e.mu.n + e.mu.prevN
	if total < estimatorMinSamples {
		return e.max
	}
	rank := uint32(math.Ceil(e.q * float64(total)))
	var seen uint32
	for i := range estimatorBuckets {
		seen += e.mu.cur[i] + e.mu.prev[i]
		if seen >= rank {
			return min(max(estimatorBounds[i], e.min), e.max)
		}
	}
	return e.max
}

// hedgeBudget caps hedges at a fraction of reads: every read earns rate
// tokens (up to budgetBurst), every hedge costs one. A cluster that is slow
// everywhere gets at most that much extra read load from hedging.
type hedgeBudget struct {
	rate float64

	mu struct {
		sync.Mutex
		tokens float64
	}
}

// budgetBurst is how many hedges may fire in a row after a quiet period.
const budgetBurst = 10

func newHedgeBudget(rate float64) *hedgeBudget {
	b := &hedgeBudget{rate: rate}
	b.mu.tokens = budgetBurst
	return b
}

// read credits one read.
func (b *hedgeBudget) read() {
	b.mu.Lock()
	b.mu.tokens = min(b.mu.tokens+b.rate, budgetBurst)
	b.mu.Unlock()
}

// take spends one hedge; false when the budget is exhausted.
func (b *hedgeBudget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.tokens < 1 {
		return false
	}
	b.mu.tokens--
	return true
}

// hedgePolicy wraps the driver's host selection: it counts the hosts that
// are up, and makes the attempts of one hedged read go to different hosts
// (each attempt's query context carries the read's hostClaims).
type hedgePolicy struct {
	gocql.HostSelectionPolicy

	mu struct {
		sync.Mutex
		up map[string]bool // host id → up
	}
	nUp atomic.Int32
}

func newHedgePolicy(inner gocql.HostSelectionPolicy) *hedgePolicy {
	p := &hedgePolicy{HostSelectionPolicy: inner}
	p.mu.up = map[string]bool{}
	return p
}

func (p *hedgePolicy) set(h *gocql.HostInfo, up bool) {
	p.mu.Lock()
	if up {
		p.mu.up[h.HostID()] = true
	} else {
		delete(p.mu.up, h.HostID())
	}
	p.nUp.Store(int32(len(p.mu.up)))
	p.mu.Unlock()
}

func (p *hedgePolicy) AddHost(h *gocql.HostInfo) {
	p.HostSelectionPolicy.AddHost(h)
	p.set(h, h.IsUp())
}

// AddHosts keeps the wrapped policy's bulk add (the token-aware policy
// builds its ring once), which the driver looks for at session start.
func (p *hedgePolicy) AddHosts(hs []*gocql.HostInfo) {
	if bulk, ok := p.HostSelectionPolicy.(interface{ AddHosts([]*gocql.HostInfo) }); ok {
		bulk.AddHosts(hs)
	} else {
		for _, h := range hs {
			p.HostSelectionPolicy.AddHost(h)
		}
	}
	for _, h := range hs {
		p.set(h, h.IsUp())
	}
}

func (p *hedgePolicy) RemoveHost(h *gocql.HostInfo) {
	p.HostSelectionPolicy.RemoveHost(h)
	p.set(h, false)
}

func (p *hedgePolicy) HostUp(h *gocql.HostInfo) {
	p.HostSelectionPolicy.HostUp(h)
	p.set(h, true)
}

func (p *hedgePolicy) HostDown(h *gocql.HostInfo) {
	p.HostSelectionPolicy.HostDown(h)
	p.set(h, false)
}

// hostsUp is the number of hosts the driver considers up.
func (p *hedgePolicy) hostsUp() int { return int(p.nUp.Load()) }

// Pick is the wrapped policy's order, without the hosts that another
// attempt of the same hedged read has already used.
func (p *hedgePolicy) Pick(q gocql.ExecutableQuery) gocql.NextHost {
	next := p.HostSelectionPolicy.Pick(q)
	a, ok := q.Context().Value(attemptKey{}).(attempt)
	if !ok {
		return next
	}
	return func() gocql.SelectedHost {
		for {
			h := next()
			if h == nil || a.claims.claim(h.Info().HostID(), a.n) {
				return h
			}
		}
	}
}

// hostClaims records which attempt of a hedged read used which host.
type hostClaims struct {
	mu struct {
		sync.Mutex
		use map[string]int // host id → attempt; nil until the first claim
	}
}

// claim reports whether attempt n may use host: no other attempt has.
func (c *hostClaims) claim(host string, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if owner, ok := c.mu.use[host]; ok {
		return owner == n
	}
	if c.mu.use == nil {
		c.mu.use = make(map[string]int, 2)
	}
	c.mu.use[host] = n
	return true
}

// attempt is attempt n (0 the first) of a hedged read, in its context.
type attempt struct {
	claims *hostClaims
	n      int
}

type attemptKey struct{}

// hedger hedges single-partition reads; nil when hedging is off.
type hedger struct {
	attempts int // extra attempts
	est      *delayEstimator
	budget   *hedgeBudget
	policy   *hedgePolicy
	m        *metrics
}

// answer is what one attempt of a hedged read returned.
type answer[T any] struct {
	v    T
	err  error
	n    int           // attempt
	took time.Duration // the attempt's own latency
}

// answered reports whether err is an answer (found or not found), as
// opposed to a failure another host might not have.
func answered(err error) bool { return err == nil || errors.Is(err, store.ErrNotFound) }

// hedged runs read (which must be idempotent and must put its result only
// in what it returns: attempts run concurrently). When read has not
// answered after the estimated delay, and another host is up and the
// budget allows, it runs read again, with the hosts the earlier attempts
// used excluded, up to h.attempts more times at that interval. The first
// answer wins and the others are cancelled; a failed attempt does not end
// the read while another is in flight. It returns after every attempt's
// goroutine has returned (cancelled attempts return at once).
//
// With one host up there is nowhere to hedge to: read runs alone, with no
// goroutine.
func hedged[T any](ctx context.Context, h *hedger, op string, read func(context.Context) (T, error)) (T, error) {
	if h == nil || h.policy.hostsUp() < 2 {
		return read(ctx)
	}
	h.budget.read()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	claims := new(hostClaims)
	results := make(chan answer[T], 1+h.attempts)
	launched, pending := 0, 0
	launch := func() {
		actx := context.WithValue(ctx, attemptKey{}, attempt{claims: claims, n: launched})
		n := launched
		launched++
		pending++
		go func() {
			start := time.Now()
			v, err := read(actx)
			results <- answer[T]{v: v, err: err, n: n, took: time.Since(start)}
		}()
	}
	// drain waits for the attempts still in flight, cancelled.
	drain := func() {
		cancel()
		for ; pending > 0; pending-- {
			<-results
		}
	}
	launch()
	timer := time.NewTimer(h.est.Delay())
	defer timer.Stop()
	var failed answer[T] // the first failure, returned when nothing answers
	for {
		select {
		case a := <-results:
			pending--
			if answered(a.err) {
				h.est.Observe(a.took)
				if a.n > 0 {
					h.m.hedgeWins.WithLabelValues(op).Inc()
				}
				drain()
				return a.v, a.err
			}
			if failed.err == nil {
				failed = a
			}
			if pending == 0 {
				return failed.v, failed.err
			}
		case <-timer.C:
			if launched > h.attempts || launched >= h.policy.hostsUp() {
				continue
			}
			if !h.budget.take() {
				h.m.hedgesThrottled.WithLabelValues(op).Inc()
				continue
			}
			h.m.hedges.WithLabelValues(op).Inc()
			launch()
			timer.Reset(h.est.Delay())
		}
	}
}
