package admission

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// schedDelay reads the Go scheduler's latency histogram (the time
// goroutines wait runnable before they run) and returns a quantile of the
// delays since its previous call. It is how a CPU-bound node sees its own
// queue: requests wait to be scheduled before any handler runs, where an
// in-handler latency cannot see them. Not safe for concurrent use.
type schedDelay struct {
	q      float64
	sample []rtmetrics.Sample
	prev   []uint64
}

func newSchedDelay(q float64) *schedDelay {
	return &schedDelay{q: q, sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

// read returns the q-quantile of the scheduling delays since the last
// call (0 when there were none, or the runtime does not have the metric).
func (s *schedDelay) read() time.Duration {
	rtmetrics.Read(s.sample)
	if s.sample[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return 0
	}
	h := s.sample[0].Value.Float64Histogram()
	if len(s.prev) != len(h.Counts) {
		s.prev = make([]uint64, len(h.Counts))
	}
	var total uint64
	for i, c := range h.Counts {
		total += c - s.prev[i]
	}
	var d time.Duration
	if total > 0 {
		rank := uint64(math.Ceil(s.q * float64(total)))
		var seen uint64
		for i, c := range h.Counts {
			seen += c - s.prev[i]
			if seen >= rank {
				// The bucket's upper bound (its lower one for the last,
				// unbounded bucket).
				b := h.Buckets[i+1]
				if math.IsInf(b, 1) {
					b = h.Buckets[i]
				}
				d = time.Duration(b * float64(time.Second))
				break
			}
		}
	}
	copy(s.prev, h.Counts)
	return d
}
