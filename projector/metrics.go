package projector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/projector/ingest"
)

// metrics are the projector's Prometheus collectors.
type metrics struct {
	applied      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	batchSeconds prometheus.Histogram
	batchSize    prometheus.Histogram
	storeErrors  prometheus.Counter
	progressAcks prometheus.Counter
	lagMessages  prometheus.Gauge
	lagSeconds   prometheus.GaugeFunc
}

// newMetrics registers the collectors on reg; lagSeconds computes
// vexil_projector_lag_seconds at scrape time.
func newMetrics(reg prometheus.Registerer, lagSeconds func() float64) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_projector_applied_total",
			Help: "Ingest messages applied to the store (durably written and acknowledged), by kind.",
		}, []string{"kind"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_projector_dead_lettered_total",
			Help: "Ingest messages published to the dead-letter subject, by reason code.",
		}, []string{"reason"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vexil_projector_batch_seconds",
			Help:    "Time to apply one batch: dead letters, store read, convergence, durable store write and ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vexil_projector_batch_messages",
			Help:    "Messages per applied batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_projector_retries_total",
			Help: "Failed store writes or dead-letter publishes that were retried.",
		}),
		progressAcks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_projector_progress_acks_total",
			Help: "In-progress acks sent for messages held longer than a quarter of the ack wait (a slow batch, or messages queued behind one).",
		}),
		lagMessages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vexil_projector_lag_messages",
			Help: "Messages of the ingest stream not yet applied: the consumer's pending plus delivered but unacknowledged messages.",
		}),
		lagSeconds: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vexil_projector_lag_seconds",
			Help: "Age of the oldest delivered message not yet applied (0 when none is waiting).",
		}, lagSeconds),
	}
	for _, c := range []prometheus.Collector{m.applied, m.deadLettered, m.batchSeconds, m.batchSize, m.storeErrors, m.progressAcks, m.lagMessages, m.lagSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range ingest.Reasons {
		m.deadLettered.WithLabelValues(string(r))
	}
	return m, nil
}
