package scyllacatalog

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts what an operator must see: conditional writes that were
// not applied, flag key claims taken over after a crash, and activity
// entries lost after their change committed.
type metrics struct {
	notApplied     *prometheus.CounterVec
	claimTakeovers prometheus.Counter
	activityLost   prometheus.Counter
}

// newMetrics registers the metrics on reg (none when nil). Catalogs that
// share a registry share the counters.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vexil_catalog_cas_not_applied_total",
			Help: "Conditional writes of the ScyllaDB catalog that were not applied (a lost update or a taken name), by record kind.",
		}, []string{"kind"}),
		claimTakeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_catalog_claim_takeovers_total",
			Help: "Flag key claims left by a crashed writer and taken over after the grace period.",
		}),
		activityLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vexil_catalog_activity_lost_total",
			Help: "Activity entries that could not be written after their change committed.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.notApplied, err = register(reg, m.notApplied); err != nil {
		return nil, err
	}
	if m.claimTakeovers, err = register(reg, m.claimTakeovers); err != nil {
		return nil, err
	}
	if m.activityLost, err = register(reg, m.activityLost); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
