package main

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
)

// usageSweepInterval is how often a node deletes usage rows past their
// retention (Pebble; ScyllaDB's TTL needs nothing).
const usageSweepInterval = time.Hour

// nodeUsage is a node's usage statistics: the recorder its evaluation
// service counts into, and the service its REST routes read.
type nodeUsage struct {
	rec *usage.Recorder
	svc *usage.Service
}

// newNodeUsage builds the node's usage statistics on its store; nil when
// the store keeps no usage rows (a test's wrapped store).
func newNodeUsage(n *node, log *slog.Logger) (*nodeUsage, error) {
	us, ok := n.store.(store.UsageStore)
	if !ok {
		log.Warn("the store keeps no usage rows: usage statistics are off")
		return nil, nil
	}
	rec, err := usage.NewRecorder(usage.RecorderConfig{Store: us, Logger: log.With("role", "usage")})
	if err != nil {
		return nil, err
	}
	svc, err := usage.New(usage.Config{Store: us, Flags: n.catalog})
	if err != nil {
		return nil, err
	}
	if n.registry != nil {
		if err := n.registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vexil_usage_dropped_total",
			Help: "Flag evaluations or usage rows not counted: past the recorder's bound of (team, flag) pairs per flush, or refused by the store's bounds."},
			func() float64 { return float64(rec.Dropped()) })); err != nil {
			return nil, err
		}
	}
	return &nodeUsage{rec: rec, svc: svc}, nil
}

// recorder is nil when usage is off (evalsvc then counts nothing).
func (u *nodeUsage) recorder() *usage.Recorder {
	if u == nil {
		return nil
	}
	return u.rec
}

// reported adds the evaluation counts clients report (flags they
// evaluated in process, gRPC ReportEvaluations) to the usage statistics;
// nil when usage statistics are off.
func (u *nodeUsage) reported() func(team int64, counts []evalsvc.EvaluationCount) {
	if u == nil {
		return nil
	}
	rec := u.rec
	return func(team int64, counts []evalsvc.EvaluationCount) {
		for _, c := range counts {
			if c.Count <= 0 {
				continue
			}
			value := c.Variant
			if value == "" {
				value = strconv.FormatBool(c.Enabled)
			}
			rec.Reported(team, c.Key, value, uint64(c.Count))
		}
	}
}

// addRoutes serves the usage REST routes beside the management API, with
// its keys and scopes.
func (u *nodeUsage) addRoutes(routes map[string]http.Handler, a *admin.Service) {
	if u == nil {
		return
	}
	maps.Copy(routes, u.svc.Routes(usage.HTTPConfig{Authorize: a.AuthorizeHTTP, WriteError: admin.WriteHTTPError}))
}

// run flushes the recorder until ctx is done (then once more) and sweeps
// expired rows every usageSweepInterval.
func (u *nodeUsage) run(ctx context.Context, log *slog.Logger) error {
	if u == nil {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait() // the store closes after run returns
	wg.Go(func() {
		t := time.NewTicker(usageSweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n, err := u.svc.Sweep(ctx); err != nil && ctx.Err() == nil {
					log.Warn("usage: sweep failed", "err", err)
				} else if n > 0 {
					log.Debug("usage: swept expired rows", "rows", n)
				}
			}
		}
	})
	return u.rec.Run(ctx)
}

// flagUsage gives the management API's flag reads their status and last
// evaluation; nil when usage is off.
func (u *nodeUsage) flagUsage() admin.FlagUsage {
	if u == nil {
		return nil
	}
	return flagUsageAdapter{u.svc}
}

type flagUsageAdapter struct{ svc *usage.Service }

func (a flagUsageAdapter) FlagStates(ctx context.Context, team int64, recs []catalog.FlagRecord) (map[string]admin.FlagUsageState, error) {
	st, err := a.svc.FlagStates(ctx, team, recs, a.svc.Now())
	if err != nil {
		return nil, err
	}
	out := make(map[string]admin.FlagUsageState, len(st))
	for k, s := range st {
		u := admin.FlagUsageState{Status: string(s.Status)}
		if s.LastEvaluatedAt != nil {
			u.LastEvaluatedAt = *s.LastEvaluatedAt
		}
		out[k] = u
	}
	return out, nil
}
