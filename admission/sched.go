package admission

import (
	"math"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"time"
)

// schedDelay reads the Go scheduler's latency histogram (the time
// goroutines wait runnable before they run) and the runtime's CPU
// accounting, over the time since its previous call. It is how a
// CPU-bound node sees its own queue: requests wait to be scheduled before
// any handler runs, where an in-handler latency cannot see them. The busy
// fraction tells the node's own load from other processes': when the
// scheduler is late but the process used little of its CPU, the CPUs are
// taken by someone else, and refusing requests would not help. Not safe
// for concurrent use.
type schedDelay struct {
	q                   float64
	sample              []rtmetrics.Sample
	prev                []uint64
	prevIdle, prevTotal float64
	// The busy fraction from the process's CPU time (cpu.go): the time
	// and wall clock of the last read, and the cores the process may use,
	// read again every coresEvery.
	cpu      func() (time.Duration, bool)
	cores    func() float64
	prevCPU  time.Duration
	prevWall time.Time
	limit    float64
	limitAt  time.Time
}

// coresEvery is how often the CPU limit is read again (a process may be
// moved into a capped cgroup after it started).
const coresEvery = time.Second

func newSchedDelay(q float64) *schedDelay {
	return &schedDelay{q: q, sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"},
		{Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}},
		cpu: processCPU, cores: processCores}
}

// processCores is the CPU the process may use, in cores: GOMAXPROCS, or
// its cgroup's quota when lower.
func processCores() float64 {
	n := float64(runtime.GOMAXPROCS(0))
	if q := cgroupCPULimit(os.DirFS("/")); q > 0 && q < n {
		return q
	}
	return n
}

// busyCPU is the fraction of the CPU it may use that the process used
// since the last call; ok is false where the process's CPU time cannot be
// read, and on the first call.
func (s *schedDelay) busyCPU(now time.Time) (busy float64, ok bool) {
	cpu, ok := s.cpu()
	if !ok {
		return 0, false
	}
	if s.limit == 0 || now.Sub(s.limitAt) >= coresEvery {
		s.limit, s.limitAt = s.cores(), now
	}
	prevCPU, prevWall := s.prevCPU, s.prevWall
	s.prevCPU, s.prevWall = cpu, now
	wall := now.Sub(prevWall)
	if prevWall.IsZero() || wall <= 0 || s.limit <= 0 {
		return 0, false
	}
	return min(1, max(0, (cpu-prevCPU).Seconds()/(wall.Seconds()*s.limit))), true
}

// read returns the q-quantile of the scheduling delays since the last
// call (0 when there were none, or the runtime does not have the metric)
// and the busy fraction: of the CPU the process may use, by its CPU time
// (busyCPU), or where that cannot be read the fraction of the Ps' time
// that was not idle by the runtime's CPU classes (which change only at
// the end of a GC cycle).
func (s *schedDelay) read() (time.Duration, float64) {
	rtmetrics.Read(s.sample)
	busy, live := s.busyCPU(time.Now())
	if !live && s.sample[1].Value.Kind() == rtmetrics.KindFloat64 && s.sample[2].Value.Kind() == rtmetrics.KindFloat64 {
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
