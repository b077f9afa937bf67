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
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
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
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.seconds, m.errors, m.writes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("%w: metrics: %w", ErrInvalidConfig, err)
		}
	}
	for _, op := range allOps {
		m.errors.WithLabelValues(op)
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
