package admission

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// schedDelay reads the Go scheduler's latency histogram (the time
// goroutines wait runnable before they run) and the runtime's CPU
// accounting, over the time since its previous call. It is how a
// CPU-bound node sees its own queue: requests wait to be scheduled before
// any handler runs, where an in-handler latency cannot see them. The busy
// fraction tells the node's own load from other processes': when the
// scheduler is late but the Ps are often idle, the CPUs are taken by
// someone else, and refusing requests would not help. Not safe for
// concurrent use.
type schedDelay struct {
	q                   float64
	sample              []rtmetrics.Sample
	prev                []uint64
	prevIdle, prevTotal float64
}

func newSchedDelay(q float64) *schedDelay {
	return &schedDelay{q: q, sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}}
}

// read returns the q-quantile of the scheduling delays since the last
// call (0 when there were none, or the runtime does not have the metric)
// and the fraction of the Ps' time that was not idle.
func (s *schedDelay) read() (time.Duration, float64) {
	rtmetrics.Read(s.sample)
	busy := 0.0
	if s.sample[1].Value.Kind() == rtmetrics.KindFloat64 && s.sample[2].Value.Kind() == rtmetrics.KindFloat64 {
		idle, total := s.sample[1].Value.Float64(), s.sample[2].Value.Float64()
		if dt := total - s.prevTotal; dt > 0 {
			busy = 1 - (idle-s.prevIdle)/dt
		}
		s.prevIdle, s.prevTotal = idle, total
	}
	if s.sample[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return 0, busy
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
	return d, busy
}
