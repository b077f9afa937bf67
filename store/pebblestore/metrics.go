package pebblestore

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/store"
)

// metrics are the store's Prometheus collectors. They always exist, so
// the hot path needs no nil checks; they are registered only when
// Config.Registerer is set.
type metrics struct {
	applySeconds prometheus.Histogram
	applied      prometheus.Counter
	errors       *prometheus.CounterVec
	rows         *prometheus.CounterVec
	rowHits      prometheus.Counter
	rowMisses    prometheus.Counter
}

func newMetrics() *metrics {
	rows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vexil_pebblestore_get_row_total",
		Help: "GetRow calls by result: hit (a visible row) or miss (ErrNotFound).",
	}, []string{"result"})
	m := &metrics{
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vexil_pebblestore_apply_seconds",
			Help:    "Latency of Apply: building the batch (reads of stored rows included) and committing it with fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_pebblestore_applied_writes_total",
			Help: "Merged writes (persons, mappings, index entries, row operations, groups, group types) durably applied.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_pebblestore_op_errors_total",
			Help: "GetRow and Apply calls that failed (not-found and closed-store answers excluded), by operation (get_row, apply).",
		}, []string{"op"}),
		rows:      rows,
		rowHits:   rows.WithLabelValues("hit"),
		rowMisses: rows.WithLabelValues("miss"),
	}
	for _, op := range []string{"get_row", "apply"} {
		m.errors.WithLabelValues(op)
	}
	return m
}

// register registers the collectors, the Pebble gauges among them, on reg.
func (m *metrics) register(reg prometheus.Registerer, s *Store) error {
	for _, c := range []prometheus.Collector{m.applySeconds, m.applied, m.errors, m.rows, dbCollector{s}} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("pebblestore: register metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) observeApply(start time.Time, writes int, err error) {
	m.applySeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		m.errors.WithLabelValues("apply").Inc()
		return
	}
	m.applied.Add(float64(writes))
}

func (m *metrics) observeError(op string, err error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrClosed) {
		m.errors.WithLabelValues(op).Inc()
	}
}

// dbCollector exports Pebble's own metrics at scrape time (none once the
// store is closed).
type dbCollector struct{ s *Store }

var (
	descDiskBytes = prometheus.NewDesc("vexil_pebblestore_disk_bytes",
		"Bytes on disk used by the Pebble database (tables, WAL, manifests).", nil, nil)
	descMemtableBytes = prometheus.NewDesc("vexil_pebblestore_memtable_bytes",
		"Bytes allocated by memtables.", nil, nil)
	descReadAmp = prometheus.NewDesc("vexil_pebblestore_read_amplification",
		"Read amplification: sublevels of L0 plus non-empty lower levels, the tables a point read may consult.", nil, nil)
	descCompactionDebt = prometheus.NewDesc("vexil_pebblestore_compaction_debt_bytes",
		"Estimated bytes compactions must rewrite to bring the LSM back into shape.", nil, nil)
	descCacheHits = prometheus.NewDesc("vexil_pebblestore_block_cache_hits_total",
		"Block cache hits.", nil, nil)
	descCacheMisses = prometheus.NewDesc("vexil_pebblestore_block_cache_misses_total",
		"Block cache misses.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDiskBytes, descMemtableBytes, descReadAmp, descCompactionDebt, descCacheHits, descCacheMisses} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.enter("metrics") != nil {
		return
	}
	m := c.s.db.Metrics()
	c.s.leave()
	ch <- prometheus.MustNewConstMetric(descDiskBytes, prometheus.GaugeValue, float64(m.DiskSpaceUsage()))
	ch <- prometheus.MustNewConstMetric(descMemtableBytes, prometheus.GaugeValue, float64(m.MemTable.Size))
	ch <- prometheus.MustNewConstMetric(descReadAmp, prometheus.GaugeValue, float64(m.ReadAmp()))
	ch <- prometheus.MustNewConstMetric(descCompactionDebt, prometheus.GaugeValue, float64(m.Compact.EstimatedDebt))
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(m.BlockCache.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(m.BlockCache.Misses))
}
