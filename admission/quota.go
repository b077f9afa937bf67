package admission

import (
	"math"
	"sync"
	"time"
)

// quotas are the token buckets of the teams.
type quotas struct {
	cfg *Config
	// mu guards buckets: one per team that sent a request and has a quota.
	mu      sync.Mutex
	buckets map[int64]*bucket
}

// bucket is a token bucket: tokens at the time last.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// quotaOf returns team's quota, with its burst filled in.
func (q *quotas) quotaOf(team int64) (rate, burst float64) {
	qt, ok := q.cfg.TeamQuotas[team]
	if !ok {
		qt = Quota{Rate: q.cfg.QuotaRate, Burst: q.cfg.QuotaBurst}
	}
	if qt.Burst == 0 {
		qt.Burst = max(1, int(math.Ceil(qt.Rate)))
	}
	return qt.Rate, float64(qt.Burst)
}

// take takes one token of team's bucket at now; when there is none it
// returns how long until there is one.
func (q *quotas) take(team int64, now time.Time) (bool, time.Duration) {
	rate, burst := q.quotaOf(team)
	if rate == 0 {
		return true, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.buckets[team]
	if b == nil {
		b = &bucket{rate: rate, burst: burst, tokens: burst, last: now}
		q.buckets[team] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
