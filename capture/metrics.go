package capture

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec
	events    prometheus.Counter
	published prometheus.Counter
	latency   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_capture_requests_total",
			Help: "Capture requests by HTTP status."}, []string{"status"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_capture_events_total",
			Help: "Events received by the capture endpoints (accepted or not)."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_capture_messages_published_total",
			Help: "Ingest messages the capture endpoints published and JetStream acknowledged."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vexil_capture_request_seconds",
			Help: "Capture request latency, JetStream ack included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.events, m.published, m.latency)
	}
	return m
}

func (m *metrics) observe(status, events int, d time.Duration) {
	m.requests.WithLabelValues(strconv.Itoa(status)).Inc()
	m.events.Add(float64(events))
	m.latency.Observe(d.Seconds())
}
