package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore"
	"github.com/vexil-dev/vexil/streams"
)

// configFlags binds command-line flags to the fields of a config.Config:
// each flag's default is the field's value when it is bound. It records
// which file key each flag sets, to name both in errors.
type configFlags struct {
	fs   *flag.FlagSet
	keys map[string]string // file key → flag name
}

func (b configFlags) str(p *string, name, key, usage string) {
	b.fs.StringVar(p, name, *p, usage)
	b.keys[key] = name
}

func (b configFlags) int(p *int, name, key, usage string) {
	b.fs.IntVar(p, name, *p, usage)
	b.keys[key] = name
}

func (b configFlags) float(p *float64, name, key, usage string) {
	b.fs.Float64Var(p, name, *p, usage)
	b.keys[key] = name
}

func (b configFlags) bool(p *bool, name, key, usage string) {
	b.fs.BoolVar(p, name, *p, usage)
	b.keys[key] = name
}

func (b configFlags) duration(p *time.Duration, name, key, usage string) {
	b.fs.DurationVar(p, name, *p, usage)
	b.keys[key] = name
}

// list binds a comma-separated flag to a list setting.
func (b configFlags) list(p *[]string, name, key, usage string) {
	b.fs.Var((*listValue)(p), name, usage)
	b.keys[key] = name
}

// listValue is a comma-separated flag.Value over a []string.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(s string) error {
	*l = nil
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// parseConfig parses a command line whose flags bind settings of a
// config.Config. The precedence is defaults, then the --config file, then
// the flags given. The result is validated; an error names the file key and
// the flag at fault.
func parseConfig(fs *flag.FlagSet, args []string, defaults config.Config, bind func(configFlags, *config.Config)) (config.Config, error) {
	c := defaults
	keys := map[string]string{}
	bind(configFlags{fs: fs, keys: keys}, &c)
	path := fs.String("config", "", "YAML configuration file (docs/config.example.yaml lists every key); flags given override it")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if *path != "" {
		f := defaults
		if err := config.Load(*path, &f); err != nil {
			return c, &usageError{msg: err.Error()}
		}
		// Apply the flags given again, over the file's values.
		again := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		again.SetOutput(io.Discard)
		bind(configFlags{fs: again, keys: map[string]string{}}, &f)
		var err error
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name != "config" && err == nil {
				err = again.Set(fl.Name, fl.Value.String())
			}
		})
		if err != nil {
			return c, &usageError{msg: err.Error()}
		}
		c = f
	}
	if err := c.Validate(); err != nil {
		return c, &usageError{msg: describeConfigError(err, keys)}
	}
	return c, nil
}

// describeConfigError lists the settings Validate refused, each with the
// flag that sets it when the command has one.
func describeConfigError(err error, keys map[string]string) string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var msgs []string
	for _, e := range errs {
		var fe *config.FieldError
		if errors.As(e, &fe) {
			if name, ok := keys[fe.Key]; ok {
				msgs = append(msgs, fmt.Sprintf("config: %s (-%s): %s", fe.Key, name, fe.Reason))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}

// newLogger returns the process's logger at c's level.
func newLogger(c config.Config, stderr io.Writer) *slog.Logger {
	level, _ := c.Level() // validated
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// applyGCPercent sets c's GC target unless the GOGC environment variable
// is set.
func applyGCPercent(c config.Config) {
	if os.Getenv("GOGC") == "" && c.GCPercent > 0 {
		debug.SetGCPercent(c.GCPercent)
	}
}

// applyMemoryLimit sets c's Go memory limit unless the GOMEMLIMIT
// environment variable is set (the environment wins, as for GOGC).
func applyMemoryLimit(c config.Config) {
	if os.Getenv("GOMEMLIMIT") == "" && c.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimitMB) << 20)
	}
}

// connectNATS connects to url as a client named name, reconnecting for
// ever.
func connectNATS(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	return nc, nil
}

// openPebbleStore opens the persons store of c's data directory.
func openPebbleStore(c config.Config, log *slog.Logger, reg prometheus.Registerer) (*pebblestore.Store, error) {
	st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(c.DataDir), CacheSize: int64(c.Store.CacheMB) << 20,
		BlockSize: c.Store.BlockKB << 10, Compression: c.Store.Compression, Logger: log.With("role", "store"), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("open the store in %s: %w", storeDir(c.DataDir), err)
	}
	return st, nil
}

// openScylla opens c's ScyllaDB store and the catalog sharing its session;
// applySchema creates and migrates the keyspace first.
func openScylla(ctx context.Context, c config.Config, applySchema bool, log *slog.Logger, reg prometheus.Registerer) (*scyllastore.Store, catalog.Catalog, error) {
	hedges := c.Scylla.HedgeAttempts
	if hedges == 0 {
		hedges = -1 // scyllastore reads 0 as its default
	}
	ss, err := scyllastore.Open(ctx, scyllastore.Config{Hosts: c.Scylla.Hosts, Keyspace: c.Scylla.Keyspace,
		ApplySchema: applySchema, ReplicationFactor: c.Scylla.Replication,
		HedgeAttempts: hedges, HedgeMaxDelay: c.Scylla.HedgeMaxDelay, Logger: log.With("role", "scyllastore"), Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	cat, err := scyllacatalog.New(scyllacatalog.Config{Session: ss.Session(), Keyspace: c.Scylla.Keyspace,
		Logger: log.With("role", "catalog"), Registerer: reg})
	if err != nil {
		return nil, nil, errors.Join(err, ss.Close())
	}
	return ss, cat, nil
}

// withNATS gives the management API what it needs NATS for: change
// notices and rollout signals, and the precompute runs' progress, in ns.
func withNATS(cfg *admin.Config, nc *nats.Conn, js jetstream.JetStream, ns namespace.Name) {
	cfg.Publisher = admin.NATSPublisher{Conn: nc}
	cfg.Namespace = ns
	cfg.Precompute = precomputeStatus(js, ns)
}

// bindNamespaceFlag binds -namespace, shared by the roles on NATS.
func bindNamespaceFlag(b configFlags, c *config.Config) {
	b.str(&c.NATS.Namespace, "namespace", "nats.namespace", "this environment's namespace on NATS: its streams, consumers, buckets and subjects derive from it, so environments sharing one NATS never share a message (docs/deploy.md)")
}

// storeIdentity names the store a node of c serves, for the namespace
// binding (streams.Claim): the ScyllaDB keyspace, which the nodes of an
// environment share, or the host and directory of an embedded Pebble
// store, which belongs to one node.
func storeIdentity(c config.Config) (string, error) {
	if len(c.Scylla.Hosts) > 0 {
		return "scylla keyspace " + c.Scylla.Keyspace, nil
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return "", err
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("store identity: %w", err)
	}
	return "pebble " + host + ":" + dir, nil
}

// claimNamespace returns c's namespace after binding it to c's store on
// js (streams.Claim): a node whose store another namespace serves, or whose
// namespace serves another store, does not start.
func claimNamespace(c config.Config, js jetstream.JetStream) (namespace.Name, error) {
	ns, err := namespace.Parse(c.NATS.Namespace)
	if err != nil {
		return "", err
	}
	id, err := storeIdentity(c)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Claim(ctx, js, ns, id); err != nil {
		return "", err
	}
	return ns, nil
}
