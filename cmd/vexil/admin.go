package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

func init() {
	register(&command{
		name:    "admin",
		summary: "run the management API alone on a data directory (loopback only)",
		run:     runAdmin,
	})
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", stderr)
	data := fs.String("data-dir", ".data", "data directory (catalog in DIR/catalog, persons store in DIR/store, as vexil serve)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:7081", "gRPC listen address (loopback)")
	httpAddr := fs.String("http-addr", "127.0.0.1:7080", "HTTP listen address (loopback)")
	natsURL := fs.String("nats-url", "", "NATS server for change notices, rollout signals and precompute progress; empty: none of them")
	noStore := fs.Bool("no-store", false, "do not open the persons store (explain then needs properties; no blast radius)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vexil admin --data-dir DIR [--grpc-addr A] [--http-addr A] [--nats-url URL]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves the management API (gRPC and REST, OpenAPI at /api/openapi.json) on loopback,")
		fmt.Fprintln(stderr, "without TLS. Create the first key with: vexil keys create --data-dir DIR")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	for _, a := range []string{*grpcAddr, *httpAddr} {
		if err := loopbackOnly(a); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cat, err := openCatalog(*data)
	if err != nil {
		return err
	}
	defer cat.Close()
	reg := prometheus.NewRegistry()
	cfg := admin.Config{Catalog: cat, Logger: log, Registry: reg}
	if !*noStore {
		st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(*data)})
		if err != nil {
			return fmt.Errorf("open the store in %s: %w", storeDir(*data), err)
		}
		defer st.Close()
		cfg.Persons = st
	}
	if *natsURL != "" {
		nc, err := nats.Connect(*natsURL, nats.Name("vexil admin"))
		if err != nil {
			return fmt.Errorf("connect to %s: %w", *natsURL, err)
		}
		defer nc.Close()
		cfg.Publisher = admin.NATSPublisher{Conn: nc}
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		cfg.Precompute = precomputeStatus(js)
	}
	svc, err := admin.New(cfg)
	if err != nil {
		return err
	}
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, Logger: log,
		Routes: map[string]http.Handler{"/metrics": promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}})
	if err != nil {
		return err
	}
	log.Info("management API serving", "http", "http://"+srv.HTTPAddr(), "grpc", srv.GRPCAddr(),
		"openapi", "http://"+srv.HTTPAddr()+"/api/openapi.json")
	return srv.Run(ctx)
}

// loopbackOnly refuses an address that is not on loopback: the API has no
// TLS yet.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("address %q: %v", addr, err)}
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return &usageError{msg: fmt.Sprintf("address %q is not a loopback address (the management API has no TLS yet)", addr)}
	}
	return nil
}
