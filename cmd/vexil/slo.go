package main

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/slo"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/web"
)

// nodeSLO is a node's service level objectives: the sampler that turns
// its evaluation histograms into stored per-minute rollups, and the
// public status page that reads every node's rollups.
type nodeSLO struct {
	sampler *slo.Sampler
	status  *slo.Handler // nil with slo.status-page off
}

// newNodeSLO builds the node's SLO rollups on its store; nil when the
// store keeps no SLO rows (a test's wrapped store) or there is no
// registry to read.
func newNodeSLO(n *node, c config.SLO, log *slog.Logger) (*nodeSLO, error) {
	st, ok := n.store.(store.SLOStore)
	if !ok || n.registry == nil {
		log.Warn("the store keeps no SLO rollups: SLOs and the status page are off")
		return nil, nil
	}
	s, err := slo.NewSampler(slo.SamplerConfig{Gatherer: n.evalRegistry, Store: st, FlushInterval: c.FlushInterval,
		Retention: max(slo.DefaultRetention, c.Window+24*time.Hour), Logger: log.With("role", "slo")})
	if err != nil {
		return nil, err
	}
	ns := &nodeSLO{sampler: s}
	if c.StatusPage {
		if ns.status, err = slo.NewHandler(slo.HandlerConfig{Store: st, Refresh: s.Flush, Vendor: web.Vendor(),
			Objective: slo.Objective{Target: c.Target, Latency: c.Latency, Window: c.Window},
			Logger:    log.With("role", "status")}); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// registerers registers each collector with every one of them, so each
// gathers it.
type registerers []prometheus.Registerer

func (rs registerers) Register(c prometheus.Collector) error {
	for i, r := range rs {
		if err := r.Register(c); err != nil {
			for _, done := range rs[:i] {
				done.Unregister(c)
			}
			return err
		}
	}
	return nil
}

func (rs registerers) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := rs.Register(c); err != nil {
			panic(err)
		}
	}
}

func (rs registerers) Unregister(c prometheus.Collector) bool {
	ok := true
	for _, r := range rs {
		ok = r.Unregister(c) && ok
	}
	return ok
}

// addRoutes serves the public status page beside the other routes.
func (s *nodeSLO) addRoutes(routes map[string]http.Handler) {
	if s == nil || s.status == nil {
		return
	}
	maps.Copy(routes, s.status.Routes())
}

// run flushes the rollups until ctx is done, then once more.
func (s *nodeSLO) run(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.sampler.Run(ctx)
}
