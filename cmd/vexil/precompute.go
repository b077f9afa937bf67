package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute"
)

func init() {
	register(&command{
		name:    "precompute",
		summary: "run a precompute worker alone, against a NATS cluster and a ScyllaDB store (scale out: run several)",
		run:     runPrecompute,
	})
}

func runPrecompute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseConfig(newFlagSet("precompute", stderr), args, config.Default(), bindPrecomputeFlags)
	if err != nil {
		return err
	}
	if c.NATS.URL == "" || len(c.Scylla.Hosts) == 0 {
		return &usageError{msg: "-nats-url and -scylla-hosts are required (or nats.url and scylla.hosts in the --config file)"}
	}
	log := newLogger(c, stderr).With("role", "precompute")
	var metricsLn net.Listener // opened first: a taken port fails before any connection
	if c.Precompute.MetricsAddr != "" {
		ls, err := newListeners(c.TLS, log)
		if err != nil {
			return err
		}
		if metricsLn, err = ls.listenHTTP(c.Precompute.MetricsAddr, "metrics-addr", "precompute.metrics-addr"); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}
	nc, err := connectNATS(c.NATS.URL, "vexil precompute")
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := prometheus.NewRegistry()
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, cat, err := openScylla(openCtx, c, false, log, reg)
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	defer cat.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	ns, err := claimNamespace(c, js)
	if err != nil {
		return err
	}
	w, err := precompute.New(precompute.Config{Store: st, Catalog: cat, Conn: nc, Namespace: ns, Logger: log, Registry: reg, Concurrency: c.Precompute.Concurrency,
		RunRowsPerSecond: c.Precompute.RunRate})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	if metricsLn != nil {
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
	}
	log.Info("precompute worker running", "nats", c.NATS.URL, "scylla", strings.Join(c.Scylla.Hosts, ","), "keyspace", c.Scylla.Keyspace, "namespace", ns)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// bindPrecomputeFlags binds the worker's flags to the settings they
// override.
func bindPrecomputeFlags(b configFlags, c *config.Config) {
	b.str(&c.NATS.URL, "nats-url", "nats.url", "NATS server with JetStream (required): the workers share triggers and runs through it")
	bindNamespaceFlag(b, c)
	b.list(&c.Scylla.Hosts, "scylla-hosts", "scylla.hosts", "comma-separated ScyllaDB (or Cassandra) contact points (required; an embedded Pebble store belongs to one vexil serve)")
	b.str(&c.Scylla.Keyspace, "scylla-keyspace", "scylla.keyspace", "keyspace of the store and the catalog")
	bindHedgeFlags(b, c)
	b.int(&c.Precompute.Concurrency, "concurrency", "precompute.concurrency", "rows computed at once (0: the default)")
	b.int(&c.Precompute.RunRate, "run-rate", "precompute.run-rate", "rows per second this worker computes of runs (0: unbounded)")
	b.str(&c.Precompute.MetricsAddr, "metrics-addr", "precompute.metrics-addr", "address of /metrics (empty: none); the default sits beside serve's 8000 and 8001, off Prometheus's own 9090")
	bindTLSFlags(b, c)
	b.str(&c.LogLevel, "log-level", "log-level", "debug, info, warn or error")
}

// precomputeStatus reads the precompute worker's run states on js for the
// management API (admin.Config.Precompute), with their progress at now.
func precomputeStatus(js jetstream.JetStream, ns namespace.Name) func(ctx context.Context, team int64, now time.Time) (*admin.PrecomputeRun, error) {
	return func(ctx context.Context, team int64, now time.Time) (*admin.PrecomputeRun, error) {
		st, err := precompute.Status(ctx, js, ns, team)
		if err != nil || st == nil {
			return nil, err
		}
		p := st.Progress(now)
		return &admin.PrecomputeRun{ID: st.ID, Reason: st.Reason, Flags: st.Flags, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
			ScanDone: st.ScanDone, Pages: int64(st.Pages), PagesDone: int64(st.PagesDone),
			RowsDone: p.RowsDone, RowsTotal: p.RowsTotal, RowsPerSecond: p.RowsPerSecond, ETA: p.ETA}, nil
	}
}

// bindHedgeFlags binds the ScyllaDB hedged-read settings, shared by serve
// and precompute.
func bindHedgeFlags(b configFlags, c *config.Config) {
	b.int(&c.Scylla.HedgeAttempts, "scylla-hedge-attempts", "scylla.hedge-attempts", "extra attempts a slow row or group read sends to other replicas, first answer wins (up to 4; 0 or -1: no hedging)")
	b.duration(&c.Scylla.HedgeMaxDelay, "scylla-hedge-max-delay", "scylla.hedge-max-delay", "the longest a read waits before it hedges (its delay follows observed latency); keep it below -store-timeout")
}
