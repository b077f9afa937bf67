package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/admin/outbox"
	"github.com/vexil-dev/vexil/canary"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/mcpsvc"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/backfill"
	"github.com/vexil-dev/vexil/snapshot"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/web"
	"github.com/vexil-dev/vexil/webhooks"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run every role in one process (embedded NATS JetStream and Pebble by default)",
		run:     runServe,
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseConfig(newFlagSet("serve", stderr), args, config.Default(), bindServeFlags)
	if err != nil {
		return err
	}
	applyGCPercent(c)
	applyMemoryLimit(c)
	return serve(ctx, c, newLogger(c, stderr), stdout)
}

// bindServeFlags binds serve's flags to the settings they override.
func bindServeFlags(b configFlags, c *config.Config) {
	b.str(&c.DataDir, "data-dir", "data-dir", "directory of the embedded store, catalog and NATS JetStream")
	b.str(&c.HTTPAddr, "http-addr", "http-addr", "HTTP address: /flags, /decide, local-evaluation definitions, the management API under /api, /metrics")
	b.str(&c.GRPCAddr, "grpc-addr", "grpc-addr", "gRPC address of the management API and the evaluation API (vexil.eval.v1.EvalService)")
	b.str(&c.NATS.URL, "nats-url", "nats.url", "an external NATS server with JetStream; empty runs one in process")
	b.str(&c.NATS.Listen, "nats-listen", "nats.listen", "address of the in-process NATS server (for vexil publish and producers)")
	bindNamespaceFlag(b, c)
	b.list(&c.Scylla.Hosts, "scylla-hosts", "scylla.hosts", "comma-separated ScyllaDB (or Cassandra) contact points; empty keeps the store and the catalog in Pebble under -data-dir")
	b.str(&c.Scylla.Keyspace, "scylla-keyspace", "scylla.keyspace", "keyspace of the ScyllaDB store and catalog (created and migrated on start)")
	b.int(&c.Scylla.Replication, "scylla-replication", "scylla.replication", "replication factor when the keyspace is created")
	bindHedgeFlags(b, c)
	bindTLSFlags(b, c)
	b.bool(&c.Demo.Enabled, "demo", "demo.enabled", "create a demo team with flags and persons, and print a token and a curl to try")
	b.int(&c.Demo.Persons, "demo-persons", "demo.persons", "persons the demo publishes through the ingest stream")
	b.int(&c.Demo.Flags, "demo-flags", "demo.flags", "extra demo flags in the peers' benchmark shape (half boolean at 50%, half multivariate gated on country US)")
	b.str(&c.LogLevel, "log-level", "log-level", "debug, info, warn or error")
	b.bool(&c.Precompute.Enabled, "precompute", "precompute.enabled", "run the precompute worker: flag results materialised into the store on every person, group, flag or cohort change")
	b.int(&c.Precompute.RunRate, "precompute-run-rate", "precompute.run-rate", "rows per second a precompute run may compute (0: unbounded); a budget makes a run after a flag change longer and serving steadier while it lasts")
	b.bool(&c.Eval.FastPath, "http-fast-path", "eval.fast-path", "serve plain HTTP/1.1 POST /flags and /decide below net/http, with the same handler and answers and less garbage per request; other requests and TLS connections go to net/http")
	b.bool(&c.Eval.LiveOnly, "live-only", "eval.live-only", "evaluate every flag live, ignoring stored results (the baseline for benchmarks and canary comparisons)")
	b.duration(&c.Eval.StoreTimeout, "store-timeout", "eval.store-timeout", "deadline of the row, group and static-cohort reads of one /flags request; past it /flags answers with what it could decide and errorsWhileComputingFlags (raise it for a remote ScyllaDB cluster)")
	b.int(&c.Store.CacheMB, "store-cache-mb", "store.cache-mb", "Pebble block cache of the store, in MiB (rows read by /flags stay in memory)")
	b.int(&c.Store.BlockKB, "store-block-kb", "store.block-kb", "Pebble data block size of the store, in KiB (0: Pebble's 4; smaller blocks make a cold row read cheaper)")
	b.str(&c.Store.Compression, "store-compression", "store.compression", "compression of the store's table blocks: snappy, minlz or none (none: a /flags read of a row not in the cache skips decompression; more disk and page cache)")
	b.int(&c.GCPercent, "gc-percent", "gc-percent", "Go GC target (GOGC) unless the GOGC environment variable is set: the heap is small (Pebble's cache is off-heap), so a higher target trades a little memory for less GC work per request")
	bindCORSFlag(b, c)
	b.float(&c.Canary.TapShare, "canary-tap-share", "canary.tap-share", "share of /flags, /decide and definitions requests published with their answers on NATS (<namespace>.canary.tap) for vexil canary -source nats; 0: no tap")
	b.int(&c.Canary.TapQueue, "canary-tap-queue", "canary.tap-queue", "sampled requests waiting to be published (1..65536); one finding the queue full is dropped, never waited for")
	b.int(&c.MemoryLimitMB, "memory-limit-mb", "memory-limit-mb", "Go memory limit (GOMEMLIMIT) in MiB unless the GOMEMLIMIT environment variable is set, which wins; /flags and Evaluate shed new requests (503 memory_pressure) while the live heap is near it; 0: none")
}

// node is every part of a running single-process Vexil.
type node struct {
	nats    *natsserver.Server // nil with an external NATS
	nc      *nats.Conn
	store   store.Store
	catalog catalog.Catalog
	events  *catalogEvents
	proj    *projector.Projector
	// backfills runs the cohort backfills on proj.
	backfills *backfill.Jobs
	pre       *precompute.Worker // nil with -precompute=false
	// hooks delivers the cohort signals to webhook endpoints; nil when NATS
	// was away at start (the webhook calls then answer unavailable).
	hooks    *webhooks.Dispatcher
	js       jetstream.JetStream
	ns       namespace.Name // every name on NATS derives from it
	eval     *evalsvc.Service
	tap      *canary.Tap // nil: canary.tap-share 0
	usage    *nodeUsage  // nil: usage statistics off
	adminSvc *admin.Service
	slo      *nodeSLO // nil: SLO rollups off
	// ui is the web UI, mounted at / beside the management API.
	ui       *web.Handler
	adminSrv *admin.Server
	// pebble is the store unwrapped when it is Pebble (checkpoints).
	pebble *pebblestore.Store
	// inboxStore is the store unwrapped, for the MCP signal inbox (test
	// hooks wrap only the evaluation data's interface).
	inboxStore store.InboxStore
	// snapshots serves /api/snapshots (cmd/vexil/snapshot.go).
	snapshots *snapshot.Service
	// outbox queues the management API's change notices and rollout
	// signals, written with each change and published by its Run.
	outbox *outbox.Outbox
	// mcp serves MCP at /mcp (package mcpsvc).
	mcp *mcpsvc.Server
	// evalConn is the evaluation gateway's (POST /api/evaluate) client
	// connection to the gRPC server.
	evalConn *grpc.ClientConn
	registry *prometheus.Registry
	// evalRegistry holds evalsvc's metrics alone (they are on registry
	// too): the SLO sampler reads them every 10 s, and gathering the whole
	// registry read /proc and asked NATS for the precompute backlog each
	// time, most of an idle node's remaining garbage.
	evalRegistry *prometheus.Registry
	log          *slog.Logger
	// httpURL is the base URL of the HTTP listener (https with TLS).
	httpURL string
	// localGRPC dials the gRPC server from inside the process.
	localGRPC func(context.Context, string) (net.Conn, error)
	// claim, when NATS was away at start, binds ns to the store once NATS
	// is there; ingest waits for it. Nil: claimed by startNode.
	claim func(context.Context) error
}

func serve(ctx context.Context, c config.Config, log *slog.Logger, stdout io.Writer) (err error) {
	n, err := startNode(c, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, n.close(log)) }()

	g, gctx := errgroup.WithContext(ctx)
	n.start(g, gctx)
	log.Info("vexil is serving", "http", n.adminSrv.HTTPAddr(), "tls", strings.HasPrefix(n.httpURL, "https:"), "grpc", n.adminSrv.GRPCAddr(), "nats", n.nc.ConnectedUrl(), "data_dir", c.DataDir)
	if !c.Demo.Enabled { // the demo prints its own key
		g.Go(func() error {
			// A failure leaves the node serving: keys can still be made
			// with vexil keys on the data directory once it stops.
			if _, err := bootstrapFirstKey(gctx, n.catalog, c.DataDir, n.httpURL, stdout, log); err != nil && gctx.Err() == nil {
				log.Error("creating the first key failed", "err", err)
			}
			return nil
		})
	}
	if c.Demo.Enabled {
		g.Go(func() error {
			info, err := seedDemo(gctx, n, c, log)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			printDemo(stdout, info, n.httpURL)
			printLoginLink(stdout, n.ui, info.PersonalKey, n.httpURL)
			return nil
		})
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	log.Info("vexil stopped")
	return err
}

// start runs every role of n in g until ctx ends.
func (n *node) start(g *errgroup.Group, ctx context.Context) {
	log := n.log
	claimed := make(chan struct{})
	if n.claim == nil {
		close(claimed)
	} else {
		g.Go(func() error {
			if err := n.claim(ctx); err != nil || ctx.Err() != nil {
				return err
			}
			close(claimed)
			return nil
		})
	}
	// The workers writing the store start once the namespace is its own.
	afterClaim := func(role string, run func(context.Context) error) func() error {
		return func() error {
			select {
			case <-claimed:
			case <-ctx.Done():
				return nil
			}
			return untilDone(ctx, log, role, run)
		}
	}
	g.Go(afterClaim("projector", n.proj.Run))
	g.Go(afterClaim("backfill", n.backfills.Run))
	g.Go(func() error { return n.events.Run(ctx, n.nc) })
	if n.pre != nil {
		g.Go(afterClaim("precompute", n.pre.Run))
	}
	if n.hooks != nil {
		g.Go(func() error { return untilDone(ctx, log, "webhooks", n.hooks.Run) })
	}
	g.Go(func() error { return n.eval.Run(ctx, n.nc) })
	if n.tap != nil {
		g.Go(func() error { return n.tap.Run(ctx) })
	}
	g.Go(func() error { return n.usage.run(ctx, log) })
	g.Go(func() error { return n.slo.run(ctx) })
	g.Go(func() error { return n.outbox.Run(ctx) })
	g.Go(func() error { return n.adminSvc.Run(ctx) })
	g.Go(func() error { return n.adminSrv.Run(ctx) })
	g.Go(func() error { return n.mcp.Run(ctx) })
	g.Go(afterClaim("findings", func(ctx context.Context) error { return n.usage.runFindings(ctx, n.mcp, n.catalog, log) }))
}

// startHooks change what startNode builds; tests inject faults with them.
type startHooks struct {
	// wrapStore, if set, wraps the store every role reads and writes.
	wrapStore func(store.Store) store.Store
}

func startNode(c config.Config, log *slog.Logger, hooks ...startHooks) (n *node, err error) {
	n = &node{registry: prometheus.NewRegistry(), evalRegistry: prometheus.NewRegistry(), log: log}
	started := n // "return nil, err" clears n before this runs
	defer func() {
		if err != nil {
			err = errors.Join(err, started.close(log))
			n = nil
		}
	}()
	ls, err := openListeners(c, log) // refuses plaintext on a reachable address before anything starts
	if err != nil {
		return nil, err
	}
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, err
	}
	url := c.NATS.URL
	if url == "" {
		host, port, err := splitHostPort(c.NATS.Listen)
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("-nats-listen: %v", err)}
		}
		if err := checkListenFlag(c.NATS.Listen, "nats-listen", "nats.listen"); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		ns, err := natsserver.NewServer(&natsserver.Options{
			ServerName: "vexil", Host: host, Port: port, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: filepath.Join(c.DataDir, "nats"),
		})
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			ns.Shutdown()
			return nil, fmt.Errorf("nats: not ready on %s (is the port taken? see -nats-listen)", c.NATS.Listen)
		}
		n.nats = ns
		url = ns.ClientURL()
	}
	if n.nc, err = connectServeNATS(url, log); err != nil {
		return nil, err
	}
	atomic := true
	if len(c.Scylla.Hosts) == 0 {
		ps, err := openPebbleStore(c, log, n.registry)
		if err != nil {
			return nil, err
		}
		n.store = ps // not a nil *pebblestore.Store in the interface
		n.pebble = ps
		n.inboxStore = ps
		n.catalog, err = pebblecatalog.Open(pebblecatalog.Config{Dir: catalogDir(c.DataDir)})
		if err != nil {
			return nil, err
		}
	} else {
		// The store applies the schema (store and catalog tables); the
		// catalog shares its session. scyllastore writes partitions
		// independently, so the projector writes derived state first.
		atomic = false
		ss, cat, err := openScylla(context.Background(), c, true, log, n.registry)
		if err != nil {
			return nil, err
		}
		n.store, n.catalog = ss, cat
		n.inboxStore = ss
	}
	for _, h := range hooks {
		if h.wrapStore != nil {
			n.store = h.wrapStore(n.store)
		}
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if n.nc.IsConnected() {
		if n.ns, err = claimNamespace(c, n.js); err != nil {
			return nil, err
		}
	} else if n.ns, n.claim, err = claimLater(c, n.js, log); err != nil {
		return nil, err
	}
	n.events = newCatalogEvents(n.catalog, n.ns, log.With("role", "projector"))
	pcfg := projector.Config{Conn: n.nc, Store: n.store, Namespace: n.ns, AtomicStore: atomic, Teams: newCatalogTeams(n.catalog),
		Logger: log.With("role", "projector"), Registerer: n.registry, Events: n.events.Set,
		PairStarts: projector.NewPairStarts(n.js, n.ns)}
	ac, err := newAdmission(c.Admission, n.registry) // one limit for every surface of the node
	if err != nil {
		return nil, err
	}
	ecfg := evalsvc.Config{Store: n.store, Catalog: n.catalog, Namespace: n.ns, Logger: log.With("role", "evalsvc"),
		Registry: registerers{n.registry, n.evalRegistry}, LiveOnly: c.Eval.LiveOnly, StoreTimeout: c.Eval.StoreTimeout, Admission: ac}
	if c.Precompute.Enabled {
		// With NATS away the worker's Run makes the streams when it is
		// back; the management API's precompute status waits for them.
		if n.nc.Status() == nats.CONNECTED {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = precompute.EnsureStreams(ctx, n.js, n.ns, log)
			cancel()
			if err != nil {
				return nil, err
			}
		}
		// n.eval is made below, before any worker runs.
		arrivals := func() uint64 { return n.eval.Arrivals() }
		n.pre, err = precompute.New(precompute.Config{Store: n.store, Catalog: n.catalog, Conn: n.nc, Namespace: n.ns,
			Logger: log.With("role", "precompute"), Registry: n.registry, RunRowsPerSecond: c.Precompute.RunRate, Arrivals: arrivals})
		if err != nil {
			return nil, err
		}
		pub := n.pre.Publisher()
		pcfg.OnCommit = func(ctx context.Context, c projector.Committed) error { return pub.Publish(ctx, c.Rows, c.Groups) }
		ecfg.Repair = pub.Repair
	}
	if n.proj, err = projector.New(pcfg); err != nil {
		return nil, err
	}
	if n.usage, err = newNodeUsage(n, log); err != nil {
		return nil, err
	}
	ecfg.Usage = n.usage.recorder()
	ecfg.EvaluationCounts = n.usage.reported()
	n.backfills = newBackfills(n)
	if n.eval, err = evalsvc.New(ecfg); err != nil {
		return nil, err
	}
	acfg := admin.Config{Catalog: n.catalog, Persons: n.store, Logger: log.With("role", "admin"), Registry: n.registry,
		Admission: ac}
	acfg.FlagUsage = n.usage.flagUsage()
	withNATS(&acfg, n.nc, n.js, n.ns)
	acfg.Backfills = backfills{n.backfills}
	if n.nc.Status() == nats.CONNECTED {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		wh, err := webhooks.Open(ctx, n.js, n.ns, nil, log)
		cancel()
		if err != nil {
			return nil, err
		}
		acfg.Webhooks = wh
		if n.hooks, err = webhooks.NewDispatcher(webhooks.Config{Webhooks: wh, JetStream: n.js, Namespace: n.ns,
			Logger: log.With("role", "webhooks"), Registry: n.registry}); err != nil {
			return nil, err
		}
	} else {
		log.Warn("NATS is away at start: webhooks are off until the next start")
	}
	if n.outbox, err = openOutbox(c.DataDir, n.nc, log, n.registry); err != nil {
		return nil, err
	}
	acfg.Publisher = n.outbox
	if n.adminSvc, err = admin.New(acfg); err != nil {
		return nil, err
	}
	stID, err := storeIdentity(c)
	if err != nil {
		return nil, err
	}
	if n.mcp, err = newMCP(n.adminSvc, n.nc, n.js, n.ns, log, n.usage.mcpSource(), n.inboxStore, stID); err != nil {
		return nil, err
	}
	evalHandler := n.eval.Handler()
	if c.Canary.TapShare > 0 {
		subject := n.ns.Subject("canary", "tap")
		maxMsg := int(n.nc.MaxPayload()) // 0 when NATS is away at start: the tap's default
		if maxMsg < 1<<10 {
			maxMsg = 0
		}
		if n.tap, err = canary.NewTap(canary.TapConfig{Share: c.Canary.TapShare, Queue: c.Canary.TapQueue, MaxMessageBytes: min(maxMsg, 64<<20),
			Publish: func(b []byte) error { return n.nc.Publish(subject, b) }, Registry: n.registry}); err != nil {
			return nil, err
		}
		evalHandler = n.tap.Wrap(evalHandler)
		log.Info("canary tap on", "subject", subject, "share", c.Canary.TapShare, "queue", c.Canary.TapQueue)
	}
	routes := map[string]http.Handler{
		"/mcp":   n.mcp.Handler(),
		"/flags": evalHandler, "/flags/": evalHandler, "/decide": evalHandler, "/decide/": evalHandler,
		"/api/feature_flag/local_evaluation":  evalHandler,
		"/api/feature_flag/local_evaluation/": evalHandler,
		"/ofrep/":                             evalHandler,
		"/metrics":                            promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}),
	}
	captureH, err := captureRoutes(n, log)
	if err != nil {
		return nil, err
	}
	maps.Copy(routes, captureH)
	if n.slo, err = newNodeSLO(n, c.SLO, log); err != nil {
		return nil, err
	}
	n.slo.addRoutes(routes)
	h := &health{nc: n.nc, store: n.store, catalog: n.catalog, outbox: n.outbox, timeout: probeTimeout(c), log: log}
	maps.Copy(routes, h.routes())
	openAPI, err := n.usage.addRoutes(routes, n.adminSvc)
	if err != nil {
		return nil, err
	}
	n.snapshots = newSnapshotService(c, n, log)
	// Reading snapshots (list, inspect, a verification's result) needs
	// team:read like the gRPC API's reads; taking or verifying one, which
	// reads the whole store or snapshot, team:admin.
	snapRead := n.adminSvc.Guard(admin.ScopeTeamRead, n.snapshots.Handler())
	snapWrite := n.adminSvc.Guard(admin.ScopeTeamAdmin, n.snapshots.Handler())
	routes["/api/snapshots"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			snapRead.ServeHTTP(w, r)
			return
		}
		snapWrite.ServeHTTP(w, r)
	})
	routes["/api/snapshots/"] = routes["/api/snapshots"]
	// The evaluation API shares the management API's gRPC server; its HTTP
	// gateway goes through a client connection to that server, so the
	// listener is opened here to know the address first.
	grpcLn, err := ls.listenGRPC(c.GRPCAddr, "grpc-addr", "grpc-addr")
	if err != nil {
		return nil, fmt.Errorf("gRPC: %w", err)
	}
	httpLn, err := ls.listenHTTP(c.HTTPAddr, "http-addr", "http-addr")
	if err != nil {
		_ = grpcLn.Close()
		return nil, fmt.Errorf("HTTP: %w", err)
	}
	closeListeners := func() { _, _ = grpcLn.Close(), httpLn.Close() }
	n.httpURL, n.localGRPC = ls.scheme()+"://"+httpLn.Addr().String(), grpcLn.DialContext
	n.evalConn, err = grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(grpcLn.DialContext)) // in process: no TLS to its own port
	if err != nil {
		closeListeners()
		return nil, fmt.Errorf("evaluation gateway: %w", err)
	}
	if routes["/api/evaluate"], err = n.eval.Gateway(n.evalConn); err != nil {
		closeListeners()
		return nil, err
	}
	if n.ui, err = newUI(n.adminSvc, n.evalConn, log, n.usage.webSource()); err != nil {
		closeListeners()
		return nil, err
	}
	maps.Copy(routes, n.ui.Routes())
	if isLoopback(c.HTTPAddr) { // profiles only where nobody else can reach them
		routes["/debug/pprof/"] = http.HandlerFunc(pprof.Index)
		routes["/debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
		routes["/debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
	}
	n.adminSrv, err = admin.NewServer(admin.ServerConfig{Service: n.adminSvc, HTTPListener: httpLn, GRPCListener: grpcLn,
		Routes: routes, Register: func(s *grpc.Server) { n.eval.RegisterGRPC(s) }, Classes: evalsvc.GRPCClass, Logger: log.With("role", "admin"),
		GatewayDialer: grpcLn.DialContext, CORSOrigins: c.Admin.CORSOrigins, OpenAPI: openAPI, FastPaths: fastPaths(c)})
	if err != nil {
		closeListeners()
		return nil, err
	}
	return n, nil
}

// fastPaths are the routes served below net/http (admin.ServerConfig.FastPaths).
func fastPaths(c config.Config) []string {
	if !c.Eval.FastPath {
		return nil
	}
	return []string{"/flags", "/flags/", "/decide", "/decide/"}
}

// close releases what startNode opened, in reverse order: the servers have
// stopped (Run returned), so the store and catalog see no more writes.
func (n *node) close(log *slog.Logger) error {
	var errs []error
	if n.evalConn != nil {
		errs = append(errs, n.evalConn.Close())
	}
	if n.outbox != nil {
		errs = append(errs, n.outbox.Close())
	}
	if n.snapshots != nil {
		n.snapshots.Close() // before the store it reads
	}
	if n.catalog != nil {
		errs = append(errs, n.catalog.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.nc != nil {
		if err := n.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	if n.nats != nil {
		n.nats.Shutdown()
		n.nats.WaitForShutdown()
	}
	err := errors.Join(errs...)
	if err != nil {
		log.Warn("closing", "err", err)
	}
	return err
}

func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	return host, port, nil
}

// isLoopback reports whether a listen address is on the loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
