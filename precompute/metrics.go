package precompute

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	computed     *prometheus.CounterVec
	coalesced    prometheus.Counter
	expired      prometheus.Counter
	runs         prometheus.Counter
	superseded   prometheus.Counter
	pagesSkipped prometheus.Counter
	runThrottled prometheus.Counter
	batchSeconds prometheus.Histogram
	signals      *prometheus.CounterVec
	pauses       prometheus.Counter
	// reloadsUnchanged counts definition reloads that kept the compiled set.
	reloadsUnchanged prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		computed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_precompute_computed_total",
			Help: "Rows and groups whose results were computed and written, by trigger (write, run)."}, []string{"trigger"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_coalesced_total",
			Help: "Row triggers answered by a recompute already due in the same window."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_expired_total",
			Help: "Stored results recomputed because they reached their valid_until."}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_runs_started_total",
			Help: "Runs started after a definitions change."}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_runs_superseded_total",
			Help: "Unfinished runs replaced by a newer change."}),
		pagesSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_pages_skipped_total",
			Help: "Pages of superseded runs skipped."}),
		runThrottled: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_pages_paced_total",
			Help: "Pages of runs that went through the RunRowsPerSecond budget."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vexil_precompute_trigger_batch_seconds",
			Help: "Time to recompute one gathered batch of row triggers.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_precompute_cohort_signals_total",
			Help: "Cohort membership transitions published, by direction (entered, left); a redone one counts again."}, []string{"direction"}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_pauses_total",
			Help: "Pauses the computations took between rows to let requests run (Config.Arrivals moved)."}),
		reloadsUnchanged: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_precompute_reloads_unchanged_total",
			Help: "Definition reloads (reconcile, ReloadInterval, change notices) that read the definitions already compiled: kept, not compiled again."}),
		// No series per team (a run's progress is the management API's
		// precompute status, Status): labels stay bounded.
	}
	for _, c := range []prometheus.Collector{m.computed, m.coalesced, m.expired, m.runs, m.superseded, m.pagesSkipped, m.runThrottled,
		m.batchSeconds, m.signals, m.pauses, m.reloadsUnchanged} {
		reg.MustRegister(c)
	}
	return m
}
