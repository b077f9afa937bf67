package admin

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/errcode"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published *prometheus.CounterVec
	blastRows prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_admin_requests_total",
			Help: "Management API calls by method and error code (\"ok\" for success).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vexil_admin_request_duration_seconds",
			Help:    "Management API call latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"method"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_admin_published_total",
			Help: "Change notices and rollout signals published, by result (ok, error, dropped).",
		}, []string{"result"}),
		blastRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_admin_blast_radius_rows_total",
			Help: "Rows evaluated by blast radius computations.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.published, m.blastRows} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// start counts a call; the returned func records its end.
func (m *metrics) start(method string) func(*errcode.Error) {
	t := time.Now()
	return func(e *errcode.Error) {
		code := "ok"
		if e != nil {
			code = string(e.Code)
		}
		m.requests.WithLabelValues(method, code).Inc()
		m.duration.WithLabelValues(method).Observe(time.Since(t).Seconds())
	}
}
