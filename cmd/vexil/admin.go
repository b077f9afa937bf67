package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/admin/outbox"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
)

func init() {
	register(&command{
		name:    "admin",
		summary: "run the management API alone on a data directory (TLS, or loopback only)",
		run:     runAdmin,
	})
}

// adminDefaults are the defaults of vexil admin: the management API alone
// listens beside the ports of vexil serve.
func adminDefaults() config.Config {
	c := config.Default()
	c.HTTPAddr, c.GRPCAddr = "127.0.0.1:7080", "127.0.0.1:7081"
	return c
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vexil admin --data-dir DIR [--grpc-addr A] [--http-addr A] [--nats-url URL] [--tls-cert F --tls-key F [--tls-client-ca F]] [--config FILE]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the management API (gRPC and REST, OpenAPI at /api/openapi.json): over TLS with")
		fmt.Fprintln(stderr, "-tls-cert and -tls-key, else on loopback only (or behind a TLS proxy: -behind-tls-proxy).")
		fmt.Fprintln(stderr, "Create the first key with: vexil keys create --data-dir DIR")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	c, err := parseConfig(fs, args, adminDefaults(), bindAdminFlags)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	log := newLogger(c, stderr)
	ls, err := openListeners(c, log) // the rule of vexil serve: TLS, loopback or a TLS proxy
	if err != nil {
		return err
	}
	cat, err := openCatalog(c.DataDir)
	if err != nil {
		return err
	}
	defer cat.Close()
	reg := prometheus.NewRegistry()
	cfg := admin.Config{Catalog: cat, Logger: log, Registry: reg}
	if cfg.Admission, err = newAdmission(c.Admission, reg); err != nil {
		return err
	}
	var inboxStore store.InboxStore // the signal inbox, in the persons store
	// The usage statistics the serving nodes wrote to this data directory
	// are read here too (the REST routes; nothing is counted).
	var usageSvc *usage.Service
	if !c.Admin.NoStore {
		st, err := openPebbleStore(c, log, reg)
		if err != nil {
			return err
		}
		defer st.Close()
		cfg.Persons, inboxStore = st, st
		if usageSvc, err = usage.New(usage.Config{Store: st, Flags: cat}); err != nil {
			return err
		}
	}
	var box *outbox.Outbox // change notices, with NATS
	var nc *nats.Conn
	var js jetstream.JetStream
	if c.NATS.URL != "" {
		if nc, err = connectNATS(c.NATS.URL, "vexil admin"); err != nil {
			return err
		}
		defer nc.Close()
		js, err = jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		withNATS(&cfg, nc, js, namespace.Name(c.NATS.Namespace))
		ob, err := openOutbox(c.DataDir, nc, log, reg)
		if err != nil {
			return err
		}
		defer ob.Close()
		cfg.Publisher, box = ob, ob
	}
	svc, err := admin.New(cfg)
	if err != nil {
		return err
	}
	stID, err := storeIdentity(c)
	if err != nil {
		return err
	}
	m, err := newMCP(svc, nc, js, namespace.Name(c.NATS.Namespace), log, nil, inboxStore, stID)
	if err != nil {
		return err
	}
	grpcLn, err := ls.listenGRPC(c.GRPCAddr, "grpc-addr", "grpc-addr")
	if err != nil {
		return fmt.Errorf("gRPC: %w", err)
	}
	httpLn, err := ls.listenHTTP(c.HTTPAddr, "http-addr", "http-addr")
	if err != nil {
		_ = grpcLn.Close()
		return fmt.Errorf("HTTP: %w", err)
	}
	// The web UI calls the management API through its own gRPC server.
	uiConn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(grpcLn.DialContext)) // in process: no TLS to its own port
	if err != nil {
		_, _ = grpcLn.Close(), httpLn.Close()
		return fmt.Errorf("web UI: %w", err)
	}
	defer uiConn.Close()
	ui, err := newUI(svc, uiConn, log, nil)
	if err != nil {
		_, _ = grpcLn.Close(), httpLn.Close()
		return err
	}
	routes := ui.Routes()
	routes["/metrics"] = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	routes["/mcp"] = m.Handler()
	var openAPI []byte
	if usageSvc != nil {
		if openAPI, err = (&nodeUsage{svc: usageSvc}).addRoutes(routes, svc); err != nil {
			_, _ = grpcLn.Close(), httpLn.Close()
			return err
		}
	}
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, GRPCListener: grpcLn, HTTPListener: httpLn, Logger: log,
		GatewayDialer: grpcLn.DialContext,
		Routes:        routes, CORSOrigins: c.Admin.CORSOrigins, OpenAPI: openAPI})
	if err != nil {
		return err
	}
	base := ls.scheme() + "://" + srv.HTTPAddr()
	log.Info("management API serving", "http", base, "grpc", srv.GRPCAddr(), "openapi", base+"/api/openapi.json")
	g, gctx := errgroup.WithContext(ctx)
	if box != nil {
		g.Go(func() error { return box.Run(gctx) })
	}
	g.Go(func() error { return m.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx) })
	return g.Wait()
}

// bindAdminFlags binds admin's flags to the settings they override.
func bindAdminFlags(b configFlags, c *config.Config) {
	b.str(&c.DataDir, "data-dir", "data-dir", "data directory (catalog in DIR/catalog, persons store in DIR/store, as vexil serve)")
	b.str(&c.GRPCAddr, "grpc-addr", "grpc-addr", "gRPC listen address (loopback unless TLS or -behind-tls-proxy)")
	b.str(&c.HTTPAddr, "http-addr", "http-addr", "HTTP listen address (loopback unless TLS or -behind-tls-proxy)")
	bindTLSFlags(b, c)
	b.str(&c.NATS.URL, "nats-url", "nats.url", "NATS server for change notices, rollout signals and precompute progress; empty: none of them")
	bindNamespaceFlag(b, c)
	b.bool(&c.Admin.NoStore, "no-store", "admin.no-store", "do not open the persons store (explain then needs properties; no blast radius)")
	bindCORSFlag(b, c)
	b.str(&c.LogLevel, "log-level", "log-level", "debug, info, warn or error")
}
