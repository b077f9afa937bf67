package evalsvc

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	evaluations    *prometheus.CounterVec
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	storeErrors    prometheus.Counter
	shed           prometheus.Counter
	reloads        prometheus.Counter
	noticesDropped prometheus.Counter
	watches        prometheus.Gauge
	flagSources    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_evalsvc_evaluations_total",
			Help: "Evaluation requests by read path: row, no-row (unknown person) or partial (store unavailable)."}, []string{"path"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_evalsvc_requests_total",
			Help: "Requests by endpoint and HTTP status class (gRPC calls by the HTTP status their error maps to)."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vexil_evalsvc_request_seconds",
			Help:    "Request latency by endpoint, from the body read to the response written.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .00075, .001, .0015, .002, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"endpoint"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_store_errors_total",
			Help: "Row or group reads that failed or timed out (answered in partial mode)."}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_shed_total",
			Help: "Requests refused with 503 because too many were in flight."}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_team_reloads_total",
			Help: "Team definitions (re)loaded into the HyperCache."}),
		noticesDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_notices_dropped_total",
			Help: "Change notices dropped because the reload queue was full (the periodic reload catches up)."}),
		flagSources: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_evalsvc_flag_answers_total",
			Help: "Flag answers by team, flag and source: stored (a current precomputed result) or live_<why> (the hit ratio is stored over all)."},
			[]string{"team", "flag", "source"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_evalsvc_definition_watches",
			Help: "Open gRPC WatchDefinitions streams."}),
	}
	if reg != nil {
		reg.MustRegister(m.evaluations, m.requests, m.latency, m.storeErrors, m.shed, m.reloads, m.noticesDropped, m.watches, m.flagSources)
	}
	return m
}
