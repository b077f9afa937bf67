package scyllastore

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/store"
)

// Operation labels of the metrics.
const (
	opGetRow    = "get_row"
	opGetGroup  = "get_group"
	opGetPerson = "get_persons"
	opGetMap    = "get_mappings"
	opScan      = "scan_rows"
	opScanGroup = "scan_groups"
	opDue       = "due_expiries"
	opApply     = "apply"
)

var allOps = []string{opGetRow, opGetGroup, opGetPerson, opGetMap, opScan, opScanGroup, opDue, opApply}

// metrics are the store's Prometheus collectors; nil fields when no
// Registerer was configured.
type metrics struct {
	seconds *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	writes  prometheus.Counter

	// Hedged reads (get_row, get_group).
	hedges          *prometheus.CounterVec
	hedgeWins       *prometheus.CounterVec
	hedgesThrottled *prometheus.CounterVec
}

// hedgedOps are the operations that may be hedged.
var hedgedOps = []string{opGetRow, opGetGroup}

// newMetrics makes the collectors and registers them on reg when it is not
// nil; delay is the hedging delay (nil when hedging is off).
func newMetrics(reg prometheus.Registerer, delay func() time.Duration) (*metrics, error) {
	m := &metrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vexil_scyllastore_op_seconds",
			Help:    "Latency of store operations against ScyllaDB, by operation (get_row, get_group, get_persons, get_mappings, scan_rows, apply).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_scyllastore_op_errors_total",
			Help: "Store operations that failed (not-found answers excluded), by operation.",
		}, []string{"op"}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_scyllastore_applied_writes_total",
			Help: "Merged writes (persons, mappings, index entries, row operations, groups, group types) durably applied.",
		}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_scyllastore_hedges_total",
			Help: "Hedged attempts sent: extra attempts of a slow read (get_row, get_group) to another host.",
		}, []string{"op"}),
		hedgeWins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_scyllastore_hedge_wins_total",
			Help: "Reads (get_row, get_group) answered by a hedged attempt rather than the first one.",
		}, []string{"op"}),
		hedgesThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_scyllastore_hedges_throttled_total",
			Help: "Hedged attempts not sent because the hedge budget (Config.HedgeBudget) was spent.",
		}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.seconds, m.errors, m.writes, m.hedges, m.hedgeWins, m.hedgesThrottled}
	if delay != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vexil_scyllastore_hedge_delay_seconds",
			Help: "How long a read waits for its answer before it is hedged: a percentile of recent read latencies, clamped (Config.HedgePercentile, HedgeMinDelay, HedgeMaxDelay).",
		}, func() float64 { return delay().Seconds() }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("%w: metrics: %w", ErrInvalidConfig, err)
		}
	}
	for _, op := range allOps {
		m.errors.WithLabelValues(op)
	}
	for _, op := range hedgedOps {
		m.hedges.WithLabelValues(op)
		m.hedgeWins.WithLabelValues(op)
		m.hedgesThrottled.WithLabelValues(op)
	}
	return m, nil
}

// observe records one operation that started at start and ended with err.
func (m *metrics) observe(op string, start time.Time, err error) {
	m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.errors.WithLabelValues(op).Inc()
	}
}
