package admission

import "github.com/prometheus/client_golang/prometheus"

// metrics are the controller's; the only label is the class.
type metrics struct {
	limit                            prometheus.Gauge
	inflight                         [numClasses]prometheus.Gauge
	admitted, rejected, quotaLimited [numClasses]prometheus.Counter
}

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
	m := &metrics{limit: limit}
	for cl := range numClasses {
		m.inflight[cl] = inflight.WithLabelValues(cl.String())
		m.admitted[cl] = admitted.WithLabelValues(cl.String())
		m.rejected[cl] = rejected.WithLabelValues(cl.String())
		m.quotaLimited[cl] = quota.WithLabelValues(cl.String())
	}
	if reg != nil {
		reg.MustRegister(limit, inflight, admitted, rejected, quota)
	}
	return m
}
