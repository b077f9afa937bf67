package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/capture"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/mcpsvc"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
	"github.com/vexil-dev/vexil/web"
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
			// A remote path's evaluations were counted when the server
			// answered them.
			if c.Count <= 0 || c.Path != "local" {
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

// flagCalls adds the local evaluations PostHog's SDKs report through the
// capture endpoints ($feature_flag_called events) to the usage
// statistics; nil when usage statistics are off.
func (u *nodeUsage) flagCalls() func(team int64, calls []capture.FlagCall) {
	if u == nil {
		return nil
	}
	rec := u.rec
	return func(team int64, calls []capture.FlagCall) {
		for _, c := range calls {
			rec.Reported(team, c.Key, c.Value, c.Count)
		}
	}
}

// addRoutes serves the usage REST routes beside the management API, with
// its keys and scopes, and returns the OpenAPI document that describes
// both (nil: the management API's alone).
func (u *nodeUsage) addRoutes(routes map[string]http.Handler, a *admin.Service) ([]byte, error) {
	if u == nil {
		return nil, nil
	}
	maps.Copy(routes, u.svc.Routes(usage.HTTPConfig{Authorize: a.AuthorizeHTTP, WriteError: admin.WriteHTTPError}))
	return usage.AddOpenAPI(adminv1.OpenAPI)
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

// mcpSource gives the MCP server's usage tools and findings job the usage
// service; nil when usage is off.
func (u *nodeUsage) mcpSource() mcpsvc.UsageSource {
	if u == nil {
		return nil
	}
	return mcpUsage{u.svc}
}

// runFindings adds every team's stale flags and evaluation anomalies to
// the MCP signals inbox (mcpsvc.FindingsJob) until ctx is done; nothing
// without usage statistics or without an inbox that takes findings (no
// store, or NATS away at start).
func (u *nodeUsage) runFindings(ctx context.Context, m *mcpsvc.Server, cat catalog.Catalog, log *slog.Logger) error {
	if u == nil || m == nil || m.Inbox() == nil || m.Inbox().ReadOnly() {
		return nil
	}
	job := &mcpsvc.FindingsJob{Inbox: m.Inbox(), Source: mcpUsage{u.svc}, Logger: log.With("role", "findings"),
		Teams: func(ctx context.Context) ([]int64, error) { return teamIDs(ctx, cat) }}
	return job.Run(ctx)
}

func teamIDs(ctx context.Context, cat catalog.Catalog) ([]int64, error) {
	teams, err := cat.ListTeams(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(teams))
	for i, t := range teams {
		ids[i] = t.ID
	}
	return ids, nil
}

// mcpUsage adapts usage.Service to mcpsvc.UsageSource (mcpsvc depends on
// the management API only).
type mcpUsage struct{ svc *usage.Service }

func (a mcpUsage) FlagUsage(ctx context.Context, team int64, key, res, from, to string) (any, error) {
	return a.svc.FlagReport(ctx, team, key, res, from, to)
}

func (a mcpUsage) TeamUsage(ctx context.Context, team int64, days int) (any, error) {
	return a.svc.TeamReport(ctx, team, days)
}

func (a mcpUsage) Now() time.Time { return a.svc.Now() }

func (a mcpUsage) StaleAfterDays(ctx context.Context, team int64) (int, error) {
	return a.svc.StaleAfterDays(ctx, team)
}

func (a mcpUsage) SetStaleAfterDays(ctx context.Context, team int64, days int) error {
	return a.svc.SetStaleAfterDays(ctx, team, days)
}

func (a mcpUsage) Findings(ctx context.Context, team int64, now time.Time) ([]mcpsvc.Finding, error) {
	fs, err := a.svc.Findings(ctx, team, now)
	if err != nil {
		return nil, err
	}
	return mcpFindings(fs), nil
}

// mcpFindings turns usage findings into inbox findings: the summary is
// the finding's message, the data the finding itself.
func mcpFindings(fs []usage.Finding) []mcpsvc.Finding {
	out := make([]mcpsvc.Finding, 0, len(fs))
	for _, f := range fs {
		data, _ := json.Marshal(f)
		out = append(out, mcpsvc.Finding{Team: f.Team, Kind: f.Kind, FlagKey: f.Flag, Summary: f.Message,
			At: f.Since, Data: data, ID: f.ID()})
	}
	return out
}

// webSource gives the web UI's flag list and flag page their usage; nil
// (the UI's "no usage data yet") when usage is off.
func (u *nodeUsage) webSource() web.UsageSource {
	if u == nil {
		return nil
	}
	return webUsage{u.svc}
}

// webUsage adapts usage.Service to web.UsageSource through FlagReport,
// the REST route's answer: the last 24 hours by hour, every hour drawn
// (0 where nothing was evaluated).
type webUsage struct{ svc *usage.Service }

func (a webUsage) FlagUsage(ctx context.Context, team int64, key string) (*web.Usage, error) {
	rep, err := a.svc.FlagReport(ctx, team, key, string(usage.Hour), "-24h", "")
	if err != nil {
		return nil, err
	}
	return webUsageOf(rep), nil
}

func webUsageOf(rep *usage.FlagReport) *web.Usage {
	out := &web.Usage{Variants: map[string]int64{}, UniqueIDs: int64(rep.Total.UniqueUsers), Total: int64(rep.Total.Evaluations)}
	if rep.LastEvaluatedAt != nil {
		out.LastEvaluated = *rep.LastEvaluatedAt
	}
	for k, v := range rep.Total.Values {
		out.Variants[k] = int64(v)
	}
	byStart := map[int64]usage.Point{}
	for _, p := range rep.Points {
		byStart[p.Bucket.Unix()] = p
	}
	for t := rep.From; t.Before(rep.To); t = t.Add(time.Hour) {
		b := web.UsageBucket{Start: t, Variants: map[string]int64{}}
		if p, ok := byStart[t.Unix()]; ok {
			b.Count, b.Unique = int64(p.Evaluations), int64(p.UniqueUsers)
			for k, v := range p.Values {
				b.Variants[k] = int64(v)
			}
		}
		out.Buckets = append(out.Buckets, b)
	}
	return out
}
