package evalsvc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/precompute/results"
)

// metrics are the service's Prometheus metrics. Every label has a bounded
// set of values (paths, endpoints, status classes, sources): per-team and
// per-flag figures are Service.FlagAnswers, not series.
type metrics struct {
	evaluations  *prometheus.CounterVec
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	storeErrors  prometheus.Counter
	cohortErrors prometheus.Counter
	reloads      prometheus.Counter
	// reloadsUnchanged counts reloads that found the state's snapshot.
	reloadsUnchanged prometheus.Counter
	noticesDropped   prometheus.Counter
	watches          prometheus.Gauge
	// answers counts flag answers by source, indexed by results.Source.
	answers []prometheus.Counter
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
		cohortErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_cohort_errors_total",
			Help: "Static cohort membership reads that failed or were past the store deadline (the flags that need them answer failed)."}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_team_reloads_total",
			Help: "Team definitions (re)loaded into the HyperCache: compiled (reloads that found them unchanged are counted apart)."}),
		reloadsUnchanged: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_team_reloads_unchanged_total",
			Help: "Reloads (periodic, or after a change notice) that read the team and definitions the HyperCache already held: kept, not compiled again."}),
		noticesDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_evalsvc_notices_dropped_total",
			Help: "Change notices dropped because the reload queue was full (the periodic reload catches up)."}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_evalsvc_definition_watches",
			Help: "Open gRPC WatchDefinitions streams."}),
	}
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_evalsvc_flag_answers_total",
		Help: "Flag answers by source: stored (a current precomputed result) or live_<why> (the hit ratio is stored over all). Per flag: Service.FlagAnswers."},
		[]string{"source"})
	for _, src := range results.Sources() {
		m.answers = append(m.answers, answers.WithLabelValues(src.String()))
	}
	if reg != nil {
		reg.MustRegister(m.evaluations, m.requests, m.latency, m.storeErrors, m.cohortErrors, m.reloads, m.reloadsUnchanged, m.noticesDropped, m.watches, answers)
	}
	return m
}
