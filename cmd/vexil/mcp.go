package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/mcpsvc"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/store"
)

func init() {
	register(&command{
		name:    "mcp",
		summary: "serve MCP (Model Context Protocol) on stdin/stdout for a local agent, on a stopped server's data directory",
		run:     runMCP,
	})
}

// newMCP makes the MCP server of a node: the signal inbox on st (stID
// identifies it: mcpsvc.InboxConfig.StoreID), copied from NATS while NATS
// is there and read only otherwise (a stopped server's data directory, or
// NATS away at start: no new signals until a restart with NATS); no inbox
// without st (the signal tools answer unavailable).
func newMCP(svc *admin.Service, nc *nats.Conn, js jetstream.JetStream, ns namespace.Name, log *slog.Logger, u mcpsvc.UsageSource, st store.InboxStore, stID string) (*mcpsvc.Server, error) {
	cfg := mcpsvc.Config{Service: svc, Namespace: ns, Logger: log.With("role", "mcp"), Version: version, Usage: u}
	icfg := mcpsvc.InboxConfig{Store: st, Namespace: ns, StoreID: stID, Logger: log.With("role", "inbox")}
	if nc != nil && js != nil && nc.Status() == nats.CONNECTED {
		icfg.JetStream, cfg.Conn = js, nc
	} else if nc != nil {
		log.Warn("NATS is away at start: the MCP signal inbox is read only until the next start")
	}
	if st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		inbox, err := mcpsvc.OpenInbox(ctx, icfg)
		cancel()
		if err != nil {
			return nil, err
		}
		cfg.Inbox = inbox
	}
	return mcpsvc.New(cfg)
}

func runMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mcp", stderr)
	url := fs.String("url", "", "a running node (http://HOST:PORT): relay the session to its /mcp")
	dataDir := fs.String("data-dir", "", "without --url: data directory of a stopped vexil serve or admin (catalog in DIR/catalog, persons in DIR/store)")
	key := fs.String("key", "", "personal API key (phx_...) the agent acts as; default $"+apiKeyEnv)
	team := fs.Int64("team", 0, "default team of tools and resources (default: the key's only team)")
	features := fs.String("features", "", "keep only these features' tools: "+strings.Join(mcpsvc.Features, ","))
	tools := fs.String("tools", "", "keep only these tools (comma-separated)")
	natsURL := fs.String("nats-url", "", "NATS server for new signals and resource updates; empty: the signals the data directory holds")
	ns := fs.String("namespace", "", "namespace on NATS (docs/deploy.md)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vexil mcp (--url http://HOST:PORT | --data-dir DIR) [--key phx_...] [--team N] [--features F] [--tools T]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves one MCP session on stdin/stdout (for agents that start their servers as commands),")
		fmt.Fprintln(stderr, "through the management API's service layer with the key's scopes. With --url it relays the")
		fmt.Fprintln(stderr, "session to a running node's /mcp (signals and pushed updates included); with --data-dir it")
		fmt.Fprintln(stderr, "serves on a stopped server's data directory (signals from its store; new ones with --nats-url).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" {
		*key = os.Getenv(apiKeyEnv)
	}
	if *key == "" {
		return &usageError{msg: "--key (or $" + apiKeyEnv + ") is required"}
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	if *url != "" {
		if *dataDir != "" {
			return &usageError{msg: "give --url or --data-dir, not both"}
		}
		q := neturl.Values{}
		if *team != 0 {
			q.Set("team_id", strconv.FormatInt(*team, 10))
		}
		if *features != "" {
			q.Set("features", *features)
		}
		if *tools != "" {
			q.Set("tools", *tools)
		}
		endpoint := strings.TrimRight(*url, "/") + "/mcp"
		if len(q) > 0 {
			endpoint += "?" + q.Encode()
		}
		return mcpsvc.Bridge(ctx, endpoint, "Bearer "+*key, os.Stdin, stdout)
	}
	cat, err := openCatalog(*dataDir)
	if err != nil {
		return err
	}
	defer cat.Close()
	c := adminDefaults()
	c.DataDir = *dataDir
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	cfg := admin.Config{Catalog: cat, Logger: log, Registry: reg}
	st, err := openPebbleStore(c, log, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	cfg.Persons = st
	var nc *nats.Conn
	var js jetstream.JetStream
	if *natsURL != "" {
		if nc, err = connectNATS(*natsURL, "vexil mcp"); err != nil {
			return err
		}
		defer nc.Close()
		if js, err = jetstream.New(nc); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		withNATS(&cfg, nc, js, namespace.Name(*ns))
	}
	svc, err := admin.New(cfg)
	if err != nil {
		return err
	}
	stID, err := storeIdentity(c)
	if err != nil {
		return err
	}
	m, err := newMCP(svc, nc, js, namespace.Name(*ns), log, nil, st, stID)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	gctx, stop := context.WithCancel(gctx)
	g.Go(func() error { return m.Run(gctx) })
	g.Go(func() error {
		defer stop()
		return m.ServeStdio(gctx, "Bearer "+*key, *team, split(*features), split(*tools))
	})
	return g.Wait()
}
