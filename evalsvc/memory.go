package evalsvc

import (
	"errors"
	"math"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrMemoryPressure is a request shed because the heap is near the memory
// limit (Config.MemoryLimit).
var ErrMemoryPressure = errors.New("evalsvc: memory pressure")

// liveMetric is the live heap as of the last GC: what the in-flight
// requests and the caches really hold, where the heap in use would count
// garbage not yet collected (with a high GOGC, most of it). It is 0 until
// the first GC ends; until then objectsMetric, the heap in use, stands for
// it (nothing has been collected yet).
const (
	liveMetric    = "/gc/heap/live:bytes"
	objectsMetric = "/memory/classes/heap/objects:bytes"
)

// memoryGauge sheds requests under memory pressure: it reads the live heap
// at most once per interval, and says a request must be shed while the
// last reading is over the threshold.
type memoryGauge struct {
	// threshold is the heap above which requests are shed; 0: never.
	threshold uint64
	interval  int64 // nanoseconds between two readings
	epoch     time.Time
	// next is when (nanoseconds since epoch) the next reading is due, and
	// heap the last reading.
	next atomic.Int64
	heap atomic.Uint64
	// mu is held by the one request taking a reading.
	mu struct {
		sync.Mutex
		sample []rtmetrics.Sample // liveMetric, objectsMetric
	}
	shed prometheus.Counter
}

// newMemoryGauge sheds above fraction of limit (math.MaxInt64: no limit,
// nothing is shed), reading the heap at most every interval.
func newMemoryGauge(limit int64, fraction float64, interval time.Duration, reg prometheus.Registerer) *memoryGauge {
	g := &memoryGauge{interval: int64(interval), epoch: time.Now(),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_shed_memory_total",
			Help: "Requests refused with 503 because the live heap was over the shed fraction of the memory limit."})}
	if limit > 0 && limit < math.MaxInt64 {
		g.threshold = max(uint64(float64(limit)*fraction), 1)
	}
	g.mu.sample = []rtmetrics.Sample{{Name: liveMetric}, {Name: objectsMetric}}
	if reg != nil {
		reg.MustRegister(g.shed)
	}
	return g
}

// check returns ErrMemoryPressure when the last reading of the heap, taken
// at most interval ago, is over the threshold.
func (g *memoryGauge) check() error {
	if g.threshold == 0 {
		return nil
	}
	now := int64(time.Since(g.epoch))
	if now >= g.next.Load() && g.mu.TryLock() {
		g.heap.Store(g.read())
		g.next.Store(now + g.interval)
		g.mu.Unlock()
	}
	if g.heap.Load() > g.threshold {
		g.shed.Inc()
		return ErrMemoryPressure
	}
	return nil
}

// read reads the live heap; g.mu is held.
func (g *memoryGauge) read() uint64 {
	rtmetrics.Read(g.mu.sample)
	for _, sm := range g.mu.sample {
		if sm.Value.Kind() == rtmetrics.KindUint64 && sm.Value.Uint64() > 0 {
			return sm.Value.Uint64()
		}
	}
	return 0
}

// checkMemory is the memory-pressure step of every evaluation request, at
// its start, before its body is read: a request is refused with 503
// memory_pressure while the live heap is over Config.MemoryShedFraction of
// the memory limit.
func (s *Service) checkMemory() error { return s.memory.check() }
