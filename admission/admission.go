package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Class is a request class; a lower value has a higher priority.
type Class int

// The classes, highest priority first.
const (
	// Evaluate is remote evaluation: /flags, /decide, gRPC Evaluate and
	// POST /api/evaluate.
	Evaluate Class = iota
	// Poll is local evaluation's definitions: GET /flags/definitions,
	// /api/feature_flag/local_evaluation, gRPC WatchDefinitions.
	Poll
	// Management is the management API (gRPC and REST).
	Management
	numClasses
)

var classNames = [numClasses]string{"evaluate", "poll", "management"}

// Classes returns every class, highest priority first.
func Classes() []Class { return []Class{Evaluate, Poll, Management} }

func (c Class) String() string {
	if c >= 0 && c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Errors of a refusal. A refusal is a *RejectedError that unwraps to one of
// them.
var (
	// ErrOverloaded: the node is at its concurrency limit for the class.
	ErrOverloaded = errors.New("admission: overloaded")
	// ErrQuotaExceeded: the team is over its request quota.
	ErrQuotaExceeded = errors.New("admission: quota exceeded")
	// ErrInvalidConfig is returned by Validate.
	ErrInvalidConfig = errors.New("admission: invalid config")
)

// RejectedError is a refusal: its class, and when to retry.
type RejectedError struct {
	// Err is ErrOverloaded or ErrQuotaExceeded.
	Err   error
	Class Class
	// RetryAfter is the delay a client should wait, whole seconds, at
	// least one.
	RetryAfter time.Duration
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%v (%s); retry after %s", e.Err, e.Class, e.RetryAfter)
}

// Unwrap returns ErrOverloaded or ErrQuotaExceeded.
func (e *RejectedError) Unwrap() error { return e.Err }

// RetryAfterSeconds is the value of a Retry-After header: whole seconds,
// at least 1.
func (e *RejectedError) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds()))))
}

// Quota is a team's request rate.
type Quota struct {
	// Rate is requests per second; 0 means unlimited.
	Rate float64
	// Burst is how many requests may come at once; 0 means
	// max(1, ceil(Rate)).
	Burst int
}

// Config configures a Controller. Zero values take the documented
// defaults.
type Config struct {
	// InitialLimit is the concurrency limit at start. Default 64.
	InitialLimit int
	// MinLimit and MaxLimit bound the limit, 1 to 1,000,000. Defaults 8
	// and 4096.
	MinLimit, MaxLimit int
	// Targets are the latency targets by class: a request slower than its
	// class's is slow. Defaults 5ms (evaluate), 25ms (poll), 250ms
	// (management).
	Targets [numClasses]time.Duration
	// Shares are the fractions of the limit each class may fill, in
	// (0, 1], not rising with the class. Defaults 1, 0.9, 0.75.
	Shares [numClasses]float64
	// Window is the period over which latencies are judged. Default 100ms.
	Window time.Duration
	// MinSamples is how many requests must finish in a window before it
	// is judged. Default 10.
	MinSamples int
	// SlowFraction is the fraction of slow requests in a window above which
	// the limit falls, in (0, 1). Default 0.05.
	SlowFraction float64
	// Backoff multiplies the limit when a window is too slow, in (0, 1).
	// Default 0.9.
	Backoff float64
	// RetryAfter is what refused clients are told to wait. Default 1s.
	RetryAfter time.Duration

	// SchedTarget turns on the rate gate: when the 99th percentile of the
	// Go scheduler's delays in a window (goroutines runnable but not
	// running: the node's CPUs are saturated) is over it, the window is
	// slow too, and the node admits at most the rate it just served times
	// Backoff. 0 (the default) leaves the gate off. See the package doc.
	SchedTarget time.Duration
	// MinRate is the least admission rate of the gate, in requests per
	// second. Default 100.
	MinRate float64
	// BusyFraction is the share of the CPU it may use (GOMAXPROCS cores,
	// or its cgroup's CPU quota when lower) the process must have used in
	// a window, by its CPU time, for the gate to act: below it the
	// scheduler's delays come from other processes. In (0, 1]; default
	// 0.8: a process saturating a CFS quota uses a little less than all of
	// it (0.38 of a 0.4 cap on average in the quiet-machine run, less in
	// some 100 ms windows).
	BusyFraction float64
	// MinQueue is how many requests must have been waiting in front of
	// the node on average over a window (the sum of their ages, see
	// AcquireAged, over the window's length) for late requests or the
	// scheduler's delays to close the rate gate: fewer are a pause or a
	// few clients, not a queue that refusing could shorten. Requests
	// without an age (gRPC) therefore never close it; the concurrency
	// limit, whose latencies include their wait for a CPU, sheds them.
	// Default 16.
	MinQueue int
	// SchedDelay, when set, replaces the runtime's figures for the window
	// that just ended: the delay quantile and the busy fraction (tests).
	SchedDelay func() (delay time.Duration, busy float64)

	// QuotaRate and QuotaBurst are every team's quota unless TeamQuotas
	// has the team. Default: unlimited.
	QuotaRate  float64
	QuotaBurst int
	// TeamQuotas are per-team quotas, by team id (at most 100,000).
	TeamQuotas map[int64]Quota

	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Now defaults to time.Now (tests inject a fake clock).
	Now func() time.Time
}

// Bounds of the configuration.
const (
	maxLimit      = 1_000_000
	maxTeamQuotas = 100_000
	maxRate       = 1e9
)

// Validate checks the config (zero values are the defaults).
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"InitialLimit", c.InitialLimit}, {"MinLimit", c.MinLimit}, {"MaxLimit", c.MaxLimit}} {
		if v.n < 0 || v.n > maxLimit {
			return bad("%s %d is not in [0, %d]", v.name, v.n, maxLimit)
		}
	}
	d := c.withDefaults()
	if d.MinLimit > d.MaxLimit {
		return bad("MinLimit %d is over MaxLimit %d", d.MinLimit, d.MaxLimit)
	}
	if d.InitialLimit < d.MinLimit || d.InitialLimit > d.MaxLimit {
		return bad("InitialLimit %d is not in [MinLimit %d, MaxLimit %d]", d.InitialLimit, d.MinLimit, d.MaxLimit)
	}
	for cl := range numClasses {
		if c.Targets[cl] < 0 {
			return bad("the %s target is negative", cl)
		}
		if s := c.Shares[cl]; s < 0 || s > 1 || math.IsNaN(s) {
			return bad("the %s share %v is not in (0, 1]", cl, s)
		}
		if cl > 0 && d.Shares[cl] > d.Shares[cl-1] {
			return bad("the %s share %v is over the %s share %v: a lower class may not have more room", cl, d.Shares[cl], cl-1, d.Shares[cl-1])
		}
	}
	if c.Window < 0 || c.RetryAfter < 0 || c.MinSamples < 0 || c.SchedTarget < 0 || c.MinQueue < 0 {
		return bad("Window, RetryAfter, MinSamples, MinQueue and SchedTarget must not be negative")
	}
	if f := c.BusyFraction; f < 0 || f > 1 || math.IsNaN(f) {
		return bad("BusyFraction %v is not in (0, 1]", f)
	}
	if c.MinRate < 0 || c.MinRate > maxRate || math.IsNaN(c.MinRate) {
		return bad("MinRate %v is not in [0, %v]", c.MinRate, float64(maxRate))
	}
	if f := c.SlowFraction; f < 0 || f >= 1 || math.IsNaN(f) {
		return bad("SlowFraction %v is not in (0, 1)", f)
	}
	if b := c.Backoff; b < 0 || b >= 1 || math.IsNaN(b) {
		return bad("Backoff %v is not in (0, 1)", b)
	}
	if len(c.TeamQuotas) > maxTeamQuotas {
		return bad("%d team quotas: at most %d", len(c.TeamQuotas), maxTeamQuotas)
	}
	check := func(what string, q Quota) error {
		if q.Rate < 0 || q.Rate > maxRate || math.IsNaN(q.Rate) {
			return bad("%s rate %v is not in [0, %v]", what, q.Rate, float64(maxRate))
		}
		if q.Burst < 0 || q.Burst > maxLimit {
			return bad("%s burst %d is not in [0, %d]", what, q.Burst, maxLimit)
		}
		return nil
	}
	if err := check("the quota", Quota{c.QuotaRate, c.QuotaBurst}); err != nil {
		return err
	}
	for team, q := range c.TeamQuotas {
		if err := check(fmt.Sprintf("team %d's quota", team), q); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(v *int, n int) {
		if *v == 0 {
			*v = n
		}
	}
	def(&d.MinLimit, 8)
	def(&d.MaxLimit, 4096)
	def(&d.InitialLimit, min(max(64, d.MinLimit), d.MaxLimit))
	def(&d.MinSamples, 10)
	def(&d.MinQueue, 16)
	targets := [numClasses]time.Duration{5 * time.Millisecond, 25 * time.Millisecond, 250 * time.Millisecond}
	shares := [numClasses]float64{1, 0.9, 0.75}
	for cl := range numClasses {
		if d.Targets[cl] == 0 {
			d.Targets[cl] = targets[cl]
		}
		if d.Shares[cl] == 0 {
			d.Shares[cl] = shares[cl]
		}
	}
	if d.Window == 0 {
		d.Window = 100 * time.Millisecond
	}
	if d.SlowFraction == 0 {
		d.SlowFraction = 0.05
	}
	if d.Backoff == 0 {
		d.Backoff = 0.9
	}
	if d.RetryAfter == 0 {
		d.RetryAfter = time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MinRate == 0 {
		d.MinRate = 100
	}
	if d.BusyFraction == 0 {
		d.BusyFraction = 0.8
	}
	if d.SchedDelay == nil {
		d.SchedDelay = newSchedDelay(0.99).read
	}
	return d
}

// Controller admits requests. It is safe for concurrent use.
type Controller struct {
	cfg      Config
	m        *metrics
	refusals [numClasses]*RejectedError
	quotaErr [numClasses]*RejectedError
	// mu guards the limit and the current window.
	mu struct {
		sync.Mutex
		limit    float64
		inflight int
		// caps are the class's room: ceil(limit × share).
		caps [numClasses]int
		// The window: its start, finished and slow requests, and the most
		// requests in progress at once.
		start         time.Time
		samples, slow int
		peak          int
		// arrivals are the window's requests, late those older than
		// their class's age bound (AcquireAged).
		arrivals, late int
		// waited is the sum of the ages of the window's requests, all of
		// them: over the window's length, the mean number of requests
		// waiting in front of the node (Little's law).
		waited time.Duration
		// The rate gate: a token bucket of rate (requests per second,
		// +Inf: open) holding tokens at last; admitted counts the window's
		// admissions.
		rate, tokens float64
		last         time.Time
		admitted     int
	}
	quotas quotas
}

// New returns a Controller.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg.withDefaults()}
	c.m = newMetrics(c.cfg.Registry)
	for cl := range numClasses {
		c.refusals[cl] = &RejectedError{Err: ErrOverloaded, Class: cl, RetryAfter: c.cfg.RetryAfter}
		c.quotaErr[cl] = &RejectedError{Err: ErrQuotaExceeded, Class: cl, RetryAfter: c.cfg.RetryAfter}
	}
	c.mu.start = c.cfg.Now()
	c.mu.rate = math.Inf(1)
	c.setLimit(float64(c.cfg.InitialLimit))
	c.quotas = quotas{cfg: &c.cfg, buckets: map[int64]*bucket{}}
	return c, nil
}

// setLimit sets the limit and the classes' room; mu is held (or c is new).
func (c *Controller) setLimit(l float64) {
	l = min(max(l, float64(c.cfg.MinLimit)), float64(c.cfg.MaxLimit))
	c.mu.limit = l
	for cl := range numClasses {
		c.mu.caps[cl] = max(1, int(math.Ceil(l*c.cfg.Shares[cl])))
	}
	c.m.limit.Set(l)
}

// Ticket is an admitted request; call Done once when it has been answered.
type Ticket struct {
	c     *Controller
	class Class
	start time.Time
	// once, when set (Shared), makes Done take effect once over every
	// copy of the ticket.
	once *atomic.Bool
}

// Class is the class the ticket was admitted in.
func (t Ticket) Class() Class { return t.class }

// Shared returns t whose Done takes effect once, whichever of its copies
// calls it first: a ticket taken before a request was decoded (a gRPC
// server's tap handle) is ended by the handler that answers it or, if
// none does, by whatever sees the call end.
func (t Ticket) Shared() Ticket {
	if t.c != nil && t.once == nil {
		t.once = new(atomic.Bool)
	}
	return t
}

type ticketKey struct{}

// WithTicket returns ctx carrying t (for TicketFrom).
func WithTicket(ctx context.Context, t Ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// TicketFrom returns the ticket WithTicket put in ctx: the request was
// admitted already.
func TicketFrom(ctx context.Context) (Ticket, bool) {
	t, ok := ctx.Value(ticketKey{}).(Ticket)
	return t, ok
}

// Acquire admits a request of class cl now, or refuses it at once with a
// *RejectedError wrapping ErrOverloaded: it never waits.
func (c *Controller) Acquire(cl Class) (Ticket, error) { return c.AcquireAged(cl, 0) }

// ageShare is the share of its class's target a request may have spent
// before admission (its age, see Age) and still be admitted: an older one
// could not be answered within the target any more, and answering it
// would spend an answer's CPU on a late answer while the requests behind
// it age further.
const ageShare = 0.5

// AcquireAged is Acquire for a request that arrived age ago (see Age).
// When more than SlowFraction of a window's requests were older than half
// their class's target while the process kept its Ps busy (BusyFraction),
// the requests are queueing in front of the node (in its sockets, or for
// its CPU), and the window is slow for the rate gate: it
// closes, admitting at most the rate served times Backoff, so that the
// node keeps the CPU to read and refuse the rest. While the gate is
// closed, a request that old is refused at once, and the queue drains.
// (One pause that ages a few requests does not close the gate: late
// requests are refused only once it is.)
func (c *Controller) AcquireAged(cl Class, age time.Duration) (Ticket, error) {
	if cl < 0 || cl >= numClasses {
		return Ticket{}, fmt.Errorf("admission: unknown class %d", int(cl))
	}
	now := c.cfg.Now()
	late := float64(age) > ageShare*float64(c.cfg.Targets[cl])
	c.mu.Lock()
	c.mu.waited += age
	closed := !math.IsInf(c.mu.rate, 1)
	if c.mu.inflight >= c.mu.caps[cl] {
		c.mu.Unlock()
		return c.refuse(cl, reasonLimit)
	}
	if !c.takeToken(cl, now) {
		c.mu.Unlock()
		return c.refuse(cl, reasonRate)
	}
	// Lateness is judged on the requests the gate would admit, not on
	// every arrival: once it is closed, the arrivals it refuses for want
	// of a token are as late as the queue in front of the node, whatever
	// the rate, and judging them kept a closed loop of clients (each
	// resending a refusal at once) late for ever: the rate fell to
	// MinRate and stayed there, answering a twentieth of capacity.
	c.mu.arrivals++
	if late {
		c.mu.late++
		// Late requests are refused only while the gate is closed: a
		// queue that lasted a window, not one pause. The token goes back
		// to the bucket for a fresher request.
		if closed {
			c.mu.tokens++
			c.mu.Unlock()
			return c.refuse(cl, reasonLate)
		}
	}
	c.mu.admitted++
	c.mu.inflight++
	c.mu.peak = max(c.mu.peak, c.mu.inflight)
	c.mu.Unlock()
	c.m.admitted[cl].Inc()
	c.m.inflight[cl].Inc()
	return Ticket{c: c, class: cl, start: now}, nil
}

// refuse counts a refusal of class cl for reason and returns its error.
func (c *Controller) refuse(cl Class, reason int) (Ticket, error) {
	c.m.rejected[cl].Inc()
	c.m.refused[cl][reason].Inc()
	return Ticket{}, c.refusals[cl]
}

// gateBurst is how much of its rate the gate lets through at once.
const gateBurst = 10 * time.Millisecond

// burst is the gate's bucket size at rate r, in tokens: gateBurst of the
// rate, and at least enough that the lowest class's share of it holds a
// whole token. (At 100/s a bucket of 1 token with 75% of it for
// management never let a management call through: the call needs 1 token
// beyond the quarter kept for the classes above it.)
func (c *Controller) burst(r float64) float64 {
	return max(r*gateBurst.Seconds(), 1+1/c.cfg.Shares[numClasses-1])
}

// takeToken takes a token of the rate gate for class cl at now; mu is
// held. A class may not take the last (1 - share) of the bucket: those are
// kept for the classes above it.
func (c *Controller) takeToken(cl Class, now time.Time) bool {
	if math.IsInf(c.mu.rate, 1) {
		return true
	}
	burst := c.burst(c.mu.rate)
	if el := now.Sub(c.mu.last); el > 0 {
		c.mu.tokens = min(burst, c.mu.tokens+el.Seconds()*c.mu.rate)
		c.mu.last = now
	}
	if c.mu.tokens < 1+(1-c.cfg.Shares[cl])*burst {
		return false
	}
	c.mu.tokens--
	return true
}

// Done ends an admitted request; its latency feeds the limit. Done on the
// zero Ticket does nothing.
func (t Ticket) Done() {
	c := t.c
	if c == nil || t.once != nil && !t.once.CompareAndSwap(false, true) {
		return
	}
	now := c.cfg.Now()
	c.m.inflight[t.class].Dec()
	c.m.latency[t.class].Observe(now.Sub(t.start).Seconds())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.inflight--
	c.mu.samples++
	if now.Sub(t.start) > c.cfg.Targets[t.class] {
		c.mu.slow++
	}
	if now.Sub(c.mu.start) < c.cfg.Window || c.mu.samples < c.cfg.MinSamples {
		return
	}
	served := float64(c.mu.admitted) / now.Sub(c.mu.start).Seconds()
	// Requests arriving late, or a late scheduler (SchedTarget), are a
	// queue in front of the node if the process kept its Ps busy: when it
	// did not, the wait is other processes' doing (a shared host), and
	// refusing would not shorten it.
	late := float64(c.mu.late) > c.cfg.SlowFraction*float64(c.mu.arrivals)
	// A few requests late behind a pause (a collection, a background
	// goroutine holding the P, a CPU quota's throttling) are not a queue
	// that refusals could shorten: with two clients, at most two requests
	// wait, whatever the gate does; nor are a few clients that resend a
	// refusal at once. Either signal counts only when on average at
	// least MinQueue requests were waiting over the window.
	queued := float64(c.mu.waited) / float64(now.Sub(c.mu.start)) // Little's law: mean waiting
	delay, busy := c.cfg.SchedDelay()
	cpuBound := busy >= c.cfg.BusyFraction && queued >= float64(c.cfg.MinQueue) &&
		(late || c.cfg.SchedTarget > 0 && delay > c.cfg.SchedTarget)
	switch {
	case float64(c.mu.slow) > c.cfg.SlowFraction*float64(c.mu.samples) || cpuBound:
		c.setLimit(c.mu.limit * c.cfg.Backoff)
	case 2*c.mu.peak >= int(c.mu.limit):
		// Grow only a limit that is in use: an idle node must not
		// accumulate room it never measured.
		c.setLimit(c.mu.limit + 1)
	}
	// The gate answers to the queue alone: slow handlers lower the limit,
	// but they do not keep the gate shut (a closed gate once stayed at
	// MinRate under half the node's capacity because its handlers, on
	// one P behind hundreds of connections' goroutines, were slow).
	switch r := c.mu.rate * 1.1; {
	case cpuBound:
		c.setRate(min(c.mu.rate, served) * c.cfg.Backoff)
	case served*2 < r:
		// Wide open once the load is well under it.
		c.setRate(math.Inf(1))
	case c.mu.late == 0 && queued < float64(c.cfg.MinQueue):
		// No queue at all: what closed the gate is gone (a stall that
		// queued a burst, now drained), and the gate doubles each window
		// rather than taking seconds to climb back from the rate the
		// stall left it at (by a tenth a window it refused half of a 5 s
		// run on a real server after one stall).
		c.setRate(c.mu.rate * 2)
	default:
		// Open by a tenth each calm window.
		c.setRate(r)
	}
	c.mu.start, c.mu.samples, c.mu.slow, c.mu.peak, c.mu.admitted = now, 0, 0, c.mu.inflight, 0
	c.mu.arrivals, c.mu.late, c.mu.waited = 0, 0, 0
}

// setRate sets the gate's rate (+Inf: open); mu is held.
func (c *Controller) setRate(r float64) {
	if !math.IsInf(r, 1) {
		r = max(r, c.cfg.MinRate)
	}
	if math.IsInf(c.mu.rate, 1) && !math.IsInf(r, 1) {
		c.mu.tokens, c.mu.last = c.burst(r), c.cfg.Now()
	}
	c.mu.rate = r
	if math.IsInf(r, 1) {
		r = 0
	}
	c.m.rate.Set(r)
}

// Rate returns the rate gate's rate in requests per second (+Inf: open).
func (c *Controller) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.rate
}

// Limit returns the current concurrency limit.
func (c *Controller) Limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.mu.limit)
}

// Room returns how many requests of class cl may be in progress at once
// now (the limit times the class's share).
func (c *Controller) Room(cl Class) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.caps[cl]
}

// Inflight returns the admitted requests not yet done.
func (c *Controller) Inflight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.inflight
}

// AllowTeam takes one request of class cl from team's quota, or refuses it
// with a *RejectedError wrapping ErrQuotaExceeded.
func (c *Controller) AllowTeam(cl Class, team int64) error {
	if cl < 0 || cl >= numClasses {
		return fmt.Errorf("admission: unknown class %d", int(cl))
	}
	ok, wait := c.quotas.take(team, c.cfg.Now())
	if ok {
		return nil
	}
	c.m.quotaLimited[cl].Inc()
	if wait <= c.cfg.RetryAfter {
		return c.quotaErr[cl]
	}
	return &RejectedError{Err: ErrQuotaExceeded, Class: cl, RetryAfter: wait}
}

// Refusal returns the error Acquire refuses class cl with when the node is
// overloaded: always the same value, so that a transport can answer it
// from bytes built once.
func (c *Controller) Refusal(cl Class) *RejectedError {
	if cl < 0 || cl >= numClasses {
		return nil
	}
	return c.refusals[cl]
}
