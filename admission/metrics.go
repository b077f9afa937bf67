package admission

import "github.com/prometheus/client_golang/prometheus"

// metrics are the controller's; the only label is the class.
type metrics struct {
	limit, rate                      prometheus.Gauge
	inflight                         [numClasses]prometheus.Gauge
	admitted, rejected, quotaLimited [numClasses]prometheus.Counter
	// refused splits rejected by what refused: the concurrency limit,
	// the rate gate's tokens, or the request's age while it was closed.
	refused [numClasses][numReasons]prometheus.Counter
	latency [numClasses]prometheus.Observer
}

// The reasons of a refusal (vexil_admission_refused_total).
const (
	reasonLimit = iota
	reasonRate
	reasonLate
	numReasons
)

var reasonNames = [numReasons]string{"limit", "rate", "late"}

func newMetrics(reg prometheus.Registerer) *metrics {
	limit := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_admission_limit",
		Help: "The adaptive concurrency limit of the node (each class may fill its share of it)."})
	inflight := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_admission_inflight",
		Help: "Admitted requests in progress, by class."}, []string{"class"})
	admitted := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_admission_admitted_total",
		Help: "Requests admitted, by class."}, []string{"class"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_admission_rejected_total",
		Help: "Requests refused at once because the node was at its limit for the class (503, RESOURCE_EXHAUSTED)."}, []string{"class"})
	quota := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_admission_quota_limited_total",
		Help: "Requests refused because their team was over its quota, by class."}, []string{"class"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vexil_admission_admitted_seconds",
		Help:    "Latency of admitted requests from admission to Done, by class (what the limit follows).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .002, .003, .005, .01, .025, .05, .1, .25, 1}}, []string{"class"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_admission_refused_total",
		Help: "Requests refused at once, by class and by what refused them: limit (the concurrency limit), rate (the rate gate had no token), late (older than half the class's target while the gate was closed)."}, []string{"class", "reason"})
	rate := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_admission_rate",
		Help: "The rate gate's admission rate in requests per second while the node is CPU-bound (0: open)."})
	m := &metrics{limit: limit, rate: rate}
	for cl := range numClasses {
		m.inflight[cl] = inflight.WithLabelValues(cl.String())
		m.admitted[cl] = admitted.WithLabelValues(cl.String())
		m.rejected[cl] = rejected.WithLabelValues(cl.String())
		m.quotaLimited[cl] = quota.WithLabelValues(cl.String())
		m.latency[cl] = latency.WithLabelValues(cl.String())
		for r := range numReasons {
			m.refused[cl][r] = refused.WithLabelValues(cl.String(), reasonNames[r])
		}
	}
	if reg != nil {
		reg.MustRegister(limit, rate, inflight, admitted, rejected, refused, quota, latency)
	}
	return m
}
