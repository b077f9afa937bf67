package pebblestore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	// Write stalls: Pebble holding writes back because flushes or L0
	// compactions are behind (memtables queued, too many L0 files).
	stalls       *prometheus.CounterVec
	stallSeconds prometheus.Counter
	stallMu      sync.Mutex
	stallStart   time.Time
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
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_pebblestore_write_stalls_total",
			Help: "Write stalls begun by Pebble, by reason (memtable: memtables waiting to flush; l0: too many L0 files).",
		}, []string{"reason"}),
		stallSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_pebblestore_write_stall_seconds_total",
			Help: "Time writes spent stalled by Pebble.",
		}),
	}
	for _, r := range []string{"memtable", "l0", "other"} {
		m.stalls.WithLabelValues(r)
	}
	for _, op := range []string{"get_row", "apply"} {
		m.errors.WithLabelValues(op)
	}
	return m
}

// register registers the collectors, the Pebble gauges among them, on reg.
func (m *metrics) register(reg prometheus.Registerer, s *Store) error {
	for _, c := range []prometheus.Collector{m.applySeconds, m.applied, m.errors, m.rows, m.stalls, m.stallSeconds, dbCollector{s}} {
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

// eventListener feeds the write-stall metrics and logs stalls.
func (m *metrics) eventListener(log *slog.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			reason := "other"
			switch {
			case strings.Contains(info.Reason, "memtable"):
				reason = "memtable"
			case strings.Contains(info.Reason, "L0"):
				reason = "l0"
			}
			m.stalls.WithLabelValues(reason).Inc()
			m.stallMu.Lock()
			m.stallStart = time.Now()
			m.stallMu.Unlock()
			log.Warn("pebble write stall", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			m.stallMu.Lock()
			if !m.stallStart.IsZero() {
				m.stallSeconds.Add(time.Since(m.stallStart).Seconds())
				m.stallStart = time.Time{}
			}
			m.stallMu.Unlock()
		},
	}
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
	descFlushes = prometheus.NewDesc("vexil_pebblestore_flushes_total",
		"Memtable flushes.", nil, nil)
	descCompactions = prometheus.NewDesc("vexil_pebblestore_compactions_total",
		"Compactions.", nil, nil)
	descL0Files = prometheus.NewDesc("vexil_pebblestore_l0_files",
		"Tables in L0 (writes stall at Pebble's L0StopWritesThreshold).", nil, nil)
	dbDescs = []*prometheus.Desc{descDiskBytes, descMemtableBytes, descReadAmp, descCompactionDebt, descCacheHits, descCacheMisses, descFlushes, descCompactions, descL0Files}
)

// Describe implements prometheus.Collector.
func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range dbDescs {
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
	ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(m.Flush.Count))
	ch <- prometheus.MustNewConstMetric(descCompactions, prometheus.CounterValue, float64(m.Compact.Count))
	ch <- prometheus.MustNewConstMetric(descL0Files, prometheus.GaugeValue, float64(m.Levels[0].TablesCount))
}
