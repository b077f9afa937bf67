package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/store/scyllastore"
)

func init() {
	register(&command{
		name:    "precompute",
		summary: "run a precompute worker alone, against a NATS cluster and a ScyllaDB store (scale out: run several)",
		run:     runPrecompute,
	})
}

func runPrecompute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("precompute", stderr)
	natsURL := fs.String("nats-url", "", "NATS server with JetStream (required): the workers share triggers and runs through it")
	hosts := fs.String("scylla-hosts", "", "comma-separated ScyllaDB (or Cassandra) contact points (required; an embedded Pebble store belongs to one vexil serve)")
	keyspace := fs.String("scylla-keyspace", "vexil", "keyspace of the store and the catalog")
	concurrency := fs.Int("concurrency", 0, "rows computed at once (0: the default)")
	runRate := fs.Int("run-rate", 0, "rows per second this worker computes of runs (0: unbounded)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9090", "address of /metrics (empty: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *natsURL == "" || *hosts == "" {
		return &usageError{msg: "-nats-url and -scylla-hosts are required"}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("role", "precompute")
	nc, err := nats.Connect(*natsURL, nats.Name("vexil precompute"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("nats: connect %s: %w", *natsURL, err)
	}
	defer nc.Close()
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := scyllastore.Open(openCtx, scyllastore.Config{Hosts: strings.Split(*hosts, ","), Keyspace: *keyspace, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	cat, err := scyllacatalog.New(scyllacatalog.Config{Session: st.Session(), Keyspace: *keyspace, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	defer cat.Close()
	w, err := precompute.New(precompute.Config{Store: st, Catalog: cat, Conn: nc, Logger: log, Registry: reg, Concurrency: *concurrency,
		RunRowsPerSecond: *runRate})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	if *metricsAddr != "" {
		srv := &http.Server{Addr: *metricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
	}
	log.Info("precompute worker running", "nats", *natsURL, "scylla", *hosts, "keyspace", *keyspace)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// precomputeStatus reads the precompute worker's run states on js for the
// management API (admin.Config.Precompute), with their progress at now.
func precomputeStatus(js jetstream.JetStream) func(ctx context.Context, team int64, now time.Time) (*admin.PrecomputeRun, error) {
	return func(ctx context.Context, team int64, now time.Time) (*admin.PrecomputeRun, error) {
		st, err := precompute.Status(ctx, js, team)
		if err != nil || st == nil {
			return nil, err
		}
		p := st.Progress(now)
		return &admin.PrecomputeRun{ID: st.ID, Reason: st.Reason, Flags: st.Flags, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
			ScanDone: st.ScanDone, Pages: int64(st.Pages), PagesDone: int64(st.PagesDone),
			RowsDone: p.RowsDone, RowsTotal: p.RowsTotal, RowsPerSecond: p.RowsPerSecond, ETA: p.ETA}, nil
	}
}
