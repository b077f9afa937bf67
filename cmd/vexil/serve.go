package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
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
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run every role in one process (embedded NATS JetStream and Pebble by default)",
		run:     runServe,
	})
}

// serveConfig is what the serve flags say.
type serveConfig struct {
	dataDir    string
	httpAddr   string
	grpcAddr   string
	natsURL    string
	natsListen string
	scylla     string // comma-separated hosts; empty: Pebble
	keyspace   string
	replicas   int
	demo       bool
	demoPeople int
	demoFlags  int
	cacheMB    int
	gcPercent  int
	logLevel   string
	// precompute runs the precompute worker; liveOnly makes /flags ignore
	// stored results (the baseline of benchmarks).
	precompute bool
	liveOnly   bool
	runRate    int
	// storeTimeout bounds the store reads of one /flags request (0: the
	// evaluation service's default).
	storeTimeout time.Duration
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.dataDir, "data-dir", ".data", "directory of the embedded store, catalog and NATS JetStream")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8000", "HTTP address: /flags, /decide, local-evaluation definitions, the management API under /api, /metrics")
	fs.StringVar(&c.grpcAddr, "grpc-addr", "127.0.0.1:8001", "gRPC address of the management API and the evaluation API (vexil.eval.v1.EvalService)")
	fs.StringVar(&c.natsURL, "nats-url", "", "an external NATS server with JetStream; empty runs one in process")
	fs.StringVar(&c.natsListen, "nats-listen", "127.0.0.1:4222", "address of the in-process NATS server (for vexil publish and producers)")
	fs.StringVar(&c.scylla, "scylla-hosts", "", "comma-separated ScyllaDB (or Cassandra) contact points; empty keeps the store and the catalog in Pebble under -data-dir")
	fs.StringVar(&c.keyspace, "scylla-keyspace", "vexil", "keyspace of the ScyllaDB store and catalog (created and migrated on start)")
	fs.IntVar(&c.replicas, "scylla-replication", 1, "replication factor when the keyspace is created")
	fs.BoolVar(&c.demo, "demo", false, "create a demo team with flags and persons, and print a token and a curl to try")
	fs.IntVar(&c.demoPeople, "demo-persons", 10000, "persons the demo publishes through the ingest stream")
	fs.IntVar(&c.demoFlags, "demo-flags", 0, "extra demo flags in the peers' benchmark shape (half boolean at 50%, half multivariate gated on country US)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.precompute, "precompute", true, "run the precompute worker: flag results materialised into the store on every person, group, flag or cohort change")
	fs.IntVar(&c.runRate, "precompute-run-rate", 0, "rows per second a precompute run may compute (0: unbounded); a budget makes a run after a flag change longer and serving steadier while it lasts")
	fs.BoolVar(&c.liveOnly, "live-only", false, "evaluate every flag live, ignoring stored results (the baseline for benchmarks and canary comparisons)")
	fs.DurationVar(&c.storeTimeout, "store-timeout", 50*time.Millisecond, "deadline of the row and group reads of one /flags request; past it /flags answers with what it could decide and errorsWhileComputingFlags (raise it for a remote ScyllaDB cluster)")
	fs.IntVar(&c.cacheMB, "store-cache-mb", 256, "Pebble block cache of the store, in MiB (rows read by /flags stay in memory)")
	fs.IntVar(&c.gcPercent, "gc-percent", 400, "Go GC target (GOGC) unless the GOGC environment variable is set: the heap is small (Pebble's cache is off-heap), so a higher target trades a little memory for less GC work per request")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return &usageError{msg: fmt.Sprintf("-log-level: %v", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if os.Getenv("GOGC") == "" && c.gcPercent > 0 {
		debug.SetGCPercent(c.gcPercent)
	}
	return serve(ctx, c, log, stdout)
}

// node is every part of a running single-process Vexil.
type node struct {
	nats     *natsserver.Server // nil with an external NATS
	nc       *nats.Conn
	store    store.Store
	catalog  catalog.Catalog
	proj     *projector.Projector
	pre      *precompute.Worker // nil with -precompute=false
	js       jetstream.JetStream
	eval     *evalsvc.Service
	adminSvc *admin.Service
	adminSrv *admin.Server
	// evalConn is the evaluation gateway's (POST /api/evaluate) client
	// connection to the gRPC server.
	evalConn *grpc.ClientConn
	registry *prometheus.Registry
}

func serve(ctx context.Context, c serveConfig, log *slog.Logger, stdout io.Writer) (err error) {
	n, err := startNode(c, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, n.close(log)) }()

	g, gctx := errgroup.WithContext(ctx)
	n.start(g, gctx)
	log.Info("vexil is serving", "http", n.adminSrv.HTTPAddr(), "grpc", n.adminSrv.GRPCAddr(), "nats", n.nc.ConnectedUrl(), "data_dir", c.dataDir)
	if c.demo {
		g.Go(func() error {
			info, err := seedDemo(gctx, n, c, log)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			printDemo(stdout, info, n.adminSrv.HTTPAddr())
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
	g.Go(func() error { return n.proj.Run(ctx) })
	if n.pre != nil {
		g.Go(func() error { return n.pre.Run(ctx) })
	}
	g.Go(func() error { return n.eval.Run(ctx, n.nc) })
	g.Go(func() error { return n.adminSvc.Run(ctx) })
	g.Go(func() error { return n.adminSrv.Run(ctx) })
}

func startNode(c serveConfig, log *slog.Logger) (n *node, err error) {
	n = &node{registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.close(log))
			n = nil
		}
	}()
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(c.dataDir, 0o755); err != nil {
		return nil, err
	}
	url := c.natsURL
	if url == "" {
		host, port, err := splitHostPort(c.natsListen)
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("-nats-listen: %v", err)}
		}
		ns, err := natsserver.NewServer(&natsserver.Options{
			ServerName: "vexil", Host: host, Port: port, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: filepath.Join(c.dataDir, "nats"),
		})
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			ns.Shutdown()
			return nil, fmt.Errorf("nats: not ready on %s (is the port taken? see -nats-listen)", c.natsListen)
		}
		n.nats = ns
		url = ns.ClientURL()
	}
	n.nc, err = nats.Connect(url, nats.Name("vexil serve"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	atomic := true
	if c.scylla == "" {
		n.store, err = pebblestore.Open(pebblestore.Config{Dir: filepath.Join(c.dataDir, "store"), CacheSize: int64(c.cacheMB) << 20,
			Logger: log.With("role", "store"), Registerer: n.registry})
		if err != nil {
			return nil, err
		}
		n.catalog, err = pebblecatalog.Open(pebblecatalog.Config{Dir: filepath.Join(c.dataDir, "catalog")})
		if err != nil {
			return nil, err
		}
	} else {
		// The store applies the schema (store and catalog tables); the
		// catalog shares its session. scyllastore writes partitions
		// independently, so the projector writes derived state first.
		atomic = false
		ss, err := scyllastore.Open(context.Background(), scyllastore.Config{Hosts: strings.Split(c.scylla, ","), Keyspace: c.keyspace,
			ApplySchema: true, ReplicationFactor: c.replicas, Logger: log.With("role", "scyllastore"), Registerer: n.registry})
		if err != nil {
			return nil, err
		}
		n.store = ss
		n.catalog, err = scyllacatalog.New(scyllacatalog.Config{Session: ss.Session(), Keyspace: c.keyspace,
			Logger: log.With("role", "catalog"), Registerer: n.registry})
		if err != nil {
			return nil, err
		}
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	pcfg := projector.Config{Conn: n.nc, Store: n.store, AtomicStore: atomic, Teams: newCatalogTeams(n.catalog),
		Logger: log.With("role", "projector"), Registerer: n.registry}
	ecfg := evalsvc.Config{Store: n.store, Catalog: n.catalog, Logger: log.With("role", "evalsvc"), Registry: n.registry,
		LiveOnly: c.liveOnly, StoreTimeout: c.storeTimeout}
	if c.precompute {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = precompute.EnsureStreams(ctx, n.js, log)
		cancel()
		if err != nil {
			return nil, err
		}
		n.pre, err = precompute.New(precompute.Config{Store: n.store, Catalog: n.catalog, Conn: n.nc,
			Logger: log.With("role", "precompute"), Registry: n.registry, RunRowsPerSecond: c.runRate})
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
	if n.eval, err = evalsvc.New(ecfg); err != nil {
		return nil, err
	}
	n.adminSvc, err = admin.New(admin.Config{Catalog: n.catalog, Persons: n.store, Publisher: admin.NATSPublisher{Conn: n.nc},
		Logger: log.With("role", "admin"), Registry: n.registry,
		Precompute: precomputeStatus(n.js)})
	if err != nil {
		return nil, err
	}
	evalHandler := n.eval.Handler()
	routes := map[string]http.Handler{
		"/flags": evalHandler, "/flags/": evalHandler, "/decide": evalHandler, "/decide/": evalHandler,
		"/api/feature_flag/local_evaluation":  evalHandler,
		"/api/feature_flag/local_evaluation/": evalHandler,
		"/metrics":                            promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}),
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.nc.Status() != nats.CONNECTED {
				http.Error(w, "nats disconnected", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		}),
	}
	// The evaluation API shares the management API's gRPC server; its HTTP
	// gateway goes through a client connection to that server, so the
	// listener is opened here to know the address first.
	grpcLn, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return nil, fmt.Errorf("listen gRPC on %s: %w", c.grpcAddr, err)
	}
	n.evalConn, err = grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = grpcLn.Close()
		return nil, fmt.Errorf("evaluation gateway: %w", err)
	}
	if routes["/api/evaluate"], err = n.eval.Gateway(n.evalConn); err != nil {
		_ = grpcLn.Close()
		return nil, err
	}
	if isLoopback(c.httpAddr) { // profiles only where nobody else can reach them
		routes["/debug/pprof/"] = http.HandlerFunc(pprof.Index)
		routes["/debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
		routes["/debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
	}
	n.adminSrv, err = admin.NewServer(admin.ServerConfig{Service: n.adminSvc, HTTPAddr: c.httpAddr, GRPCListener: grpcLn,
		Routes: routes, Register: func(s *grpc.Server) { n.eval.RegisterGRPC(s) }, Logger: log.With("role", "admin")})
	if err != nil {
		_ = grpcLn.Close()
		return nil, err
	}
	return n, nil
}

// close releases what startNode opened, in reverse order: the servers have
// stopped (Run returned), so the store and catalog see no more writes.
func (n *node) close(log *slog.Logger) error {
	var errs []error
	if n.evalConn != nil {
		errs = append(errs, n.evalConn.Close())
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
