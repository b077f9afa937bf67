package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-dev/vexil/cors"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/schema"
)

// Config is every setting of a vexil process. Its YAML keys are the names
// in the struct tags; a section is a nested mapping (nats.url). Each
// subcommand reads the settings of the roles it runs and ignores the
// others, so one file can serve them all.
type Config struct {
	// DataDir is the directory of the embedded store, catalog and NATS
	// JetStream of serve, and the data directory admin works on.
	// Default ".data".
	DataDir string `yaml:"data-dir"`
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string `yaml:"log-level"`
	// HTTPAddr serves /flags, /decide, the local-evaluation definitions,
	// the management API under /api and /metrics. Default
	// "127.0.0.1:8000" (admin alone: "127.0.0.1:7080").
	HTTPAddr string `yaml:"http-addr"`
	// GRPCAddr serves the management and evaluation gRPC APIs. Default
	// "127.0.0.1:8001" (admin alone: "127.0.0.1:7081").
	GRPCAddr string `yaml:"grpc-addr"`
	// GCPercent is the Go GC target (GOGC) unless the GOGC environment
	// variable is set; 0 keeps Go's default. Default 400: the heap is small
	// (Pebble's cache is off-heap), so a higher target trades a little
	// memory for less GC work per request.
	GCPercent int `yaml:"gc-percent"`
	// MemoryLimitMB is the Go memory limit (GOMEMLIMIT), in MiB, unless
	// the GOMEMLIMIT environment variable is set, which wins; 0 sets none.
	// With a limit the GC works harder as the heap nears it instead of
	// letting it grow to GCPercent, and the evaluation service sheds new
	// /flags requests (503) while the live heap is near it. Set it below
	// the memory the process may use, leaving room for Pebble's cache,
	// which is off the Go heap. Default 0.
	MemoryLimitMB int `yaml:"memory-limit-mb"`

	TLS        TLS        `yaml:"tls"`
	NATS       NATS       `yaml:"nats"`
	Scylla     Scylla     `yaml:"scylla"`
	Store      Store      `yaml:"store"`
	Eval       Eval       `yaml:"eval"`
	Admission  Admission  `yaml:"admission"`
	Precompute Precompute `yaml:"precompute"`
	Admin      Admin      `yaml:"admin"`
	Demo       Demo       `yaml:"demo"`
	SLO        SLO        `yaml:"slo"`
	Canary     Canary     `yaml:"canary"`
}

// Canary is serve's side of the side canary: a tap that publishes a
// sample of the evaluation requests it answers, each with its answer, on
// NATS (subject <namespace>.canary.tap) for vexil canary -source nats to
// replay to a candidate build.
type Canary struct {
	// TapShare is the share of /flags, /decide and definitions requests
	// published, 0 to 1; 0 (the default) leaves the tap out.
	TapShare float64 `yaml:"tap-share"`
	// TapQueue is how many sampled requests wait to be published, 1 to
	// 65536; a sampled request finding it full is dropped and counted
	// (vexil_canary_tap_requests_total), never waited for. Default 1024.
	TapQueue int `yaml:"tap-queue"`
}

// TLS is the TLS of every HTTP and gRPC listener (serve's and admin's,
// and the /metrics of vexil precompute). An address other hosts can reach
// is served over TLS, or a TLS-terminating proxy is said to be in front;
// loopback may stay plaintext.
type TLS struct {
	// CertFile and KeyFile are the PEM certificate chain and private key
	// the listeners serve, read again when they change (a rotation needs
	// no restart). Both or neither. Default none: plaintext.
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// ClientCAFile is a PEM bundle of CAs: with it the gRPC listener
	// requires a client certificate signed by one of them (mTLS for
	// internal callers). HTTP serves browsers and SDKs and asks for none.
	// Needs CertFile. Default none.
	ClientCAFile string `yaml:"client-ca-file"`
	// BehindProxy says a TLS-terminating proxy is in front of the
	// listeners: a non-loopback address may then serve plaintext. Default
	// false.
	BehindProxy bool `yaml:"behind-proxy"`
}

// NATS is where the roles meet: the ingest stream, change notices and
// precompute runs.
type NATS struct {
	// URL is an external NATS server with JetStream (a comma-separated
	// list for a cluster). Empty: serve runs one in process; admin then
	// publishes no change notices. The precompute worker requires it.
	URL string `yaml:"url"`
	// Listen is the address of serve's in-process NATS server (for vexil
	// publish and producers); port -1 picks a free one. Default
	// "127.0.0.1:4222".
	Listen string `yaml:"listen"`
	// Namespace names this environment on NATS: every stream, consumer,
	// bucket and subject of its roles derives from it, so environments
	// sharing one NATS (staging beside production) never share a message.
	// Default "vexil", which gives the names of a single environment
	// (namespace.Default).
	Namespace string `yaml:"namespace"`
}

// Scylla selects the ScyllaDB (or Cassandra) store and catalog.
type Scylla struct {
	// Hosts are the contact points. Empty: serve keeps the store and the
	// catalog in Pebble under DataDir. The precompute worker requires
	// them.
	Hosts []string `yaml:"hosts"`
	// Keyspace of the store and the catalog, created and migrated by
	// serve. Default "vexil".
	Keyspace string `yaml:"keyspace"`
	// Replication is the replication factor when serve creates the
	// keyspace, 1 to 64. Default 1.
	Replication int `yaml:"replication"`
	// HedgeAttempts is how many extra attempts a slow row or group read
	// may send to other replicas (the first answer wins), up to 4; 0 or
	// -1 turns hedging off. Default 1. Hedging needs two hosts up.
	HedgeAttempts int `yaml:"hedge-attempts"`
	// HedgeMaxDelay caps the hedge delay (a high percentile of recent
	// read latencies). Keep it below eval.store-timeout, or a hedge never
	// fires before /flags gives up on the read. Default 50ms.
	HedgeMaxDelay time.Duration `yaml:"hedge-max-delay"`
}

// Store is the embedded Pebble store.
type Store struct {
	// CacheMB is the Pebble block cache, in MiB: rows read by /flags stay
	// in memory. 0 is pebblestore's default. Default 640: the rows of 1M
	// persons with 50 stored flags fit (one block cache miss in a hundred
	// reads for a random person, RSS 682 MiB; BENCHMARKS.md, issue 17).
	CacheMB int `yaml:"cache-mb"`
	// BlockKB is the target size of a table's data block, in KiB: a /flags
	// read of a row not in the cache checks and decompresses its whole
	// block. 0 is Pebble's default (4 KiB).
	BlockKB int `yaml:"block-kb"`
	// Compression of the store's table blocks: "snappy" (or empty),
	// "minlz" or "none". Without it a /flags read of a row not in the
	// cache skips the decompression; the files take more disk and page
	// cache. Default empty (snappy).
	Compression string `yaml:"compression"`
}

// Eval is the evaluation service (/flags, /decide).
type Eval struct {
	// StoreTimeout is the deadline of the row and group reads of one
	// /flags request; past it /flags answers with what it could decide and
	// errorsWhileComputingFlags. At most a minute; 0 is evalsvc's default.
	// Default 50ms (raise it for a remote ScyllaDB cluster).
	StoreTimeout time.Duration `yaml:"store-timeout"`
	// LiveOnly evaluates every flag live, ignoring stored results (the
	// baseline of benchmarks and canary comparisons). Default false.
	LiveOnly bool `yaml:"live-only"`
	// FastPath serves plain HTTP/1.1 POST /flags and /decide requests
	// below net/http (package h1fast), with the same handler and answers
	// and a fraction of the garbage; every other request, and every TLS
	// connection, goes to net/http. Default true.
	FastPath bool `yaml:"fast-path"`
}

// Admission is the admission control of serve's HTTP and gRPC surfaces
// (and of admin alone): one adaptive concurrency limit for the node,
// shared by remote evaluation, local-evaluation polls and management calls
// in that order of priority, and per-team request quotas (package
// admission).
type Admission struct {
	// InitialLimit is the concurrency limit at start, between MinLimit and
	// MaxLimit. Default 64.
	InitialLimit int `yaml:"initial-limit"`
	// MinLimit and MaxLimit bound the adaptive limit, 1 to 10⁶. Defaults
	// 8 and 4096.
	MinLimit int `yaml:"min-limit"`
	MaxLimit int `yaml:"max-limit"`
	// EvaluateTarget, PollTarget and ManagementTarget are the latency
	// targets of the classes: when more than 5% of a window's requests are
	// slower than their class's target, the limit falls. 100µs to 1m.
	// Defaults 5ms, 25ms and 250ms.
	EvaluateTarget   time.Duration `yaml:"evaluate-target"`
	PollTarget       time.Duration `yaml:"poll-target"`
	ManagementTarget time.Duration `yaml:"management-target"`
	// SchedTarget turns on the rate gate for a CPU-bound node: when the
	// 99th percentile of the Go scheduler's delays in a window is over it,
	// the node admits at most the rate it just served, less a tenth. 0
	// (off) or 100µs to 1m. Default 1ms.
	SchedTarget time.Duration `yaml:"sched-target"`
	// MinRate is the least rate the gate admits, requests per second, 1 to
	// 10⁹. Default 100.
	MinRate float64 `yaml:"min-rate"`
	// QuotaRate is every team's request quota per second, 0 to 10⁹ (0:
	// unlimited), with a burst of QuotaBurst (0: the rate rounded up).
	// Default 0.
	QuotaRate  float64 `yaml:"quota-rate"`
	QuotaBurst int     `yaml:"quota-burst"`
	// TeamQuotas are per-team quotas that replace QuotaRate, each
	// "team=rate" or "team=rate/burst" ("42=500/1000"; a rate of 0 is
	// unlimited), at most 10⁵. Default none.
	TeamQuotas []string `yaml:"team-quotas"`
}

// TeamQuota is one entry of Admission.TeamQuotas.
type TeamQuota struct {
	Team  int64
	Rate  float64
	Burst int
}

// ParseTeamQuota reads "team=rate" or "team=rate/burst".
func ParseTeamQuota(s string) (TeamQuota, error) {
	team, rest, ok := strings.Cut(s, "=")
	if !ok {
		return TeamQuota{}, fmt.Errorf("%q: want team=rate or team=rate/burst", s)
	}
	var q TeamQuota
	var err error
	if q.Team, err = strconv.ParseInt(team, 10, 64); err != nil || q.Team < 1 {
		return TeamQuota{}, fmt.Errorf("%q: %q is not a team id", s, team)
	}
	rate, burst, hasBurst := strings.Cut(rest, "/")
	if q.Rate, err = strconv.ParseFloat(rate, 64); err != nil || !(q.Rate >= 0 && q.Rate <= maxQuotaRate) {
		return TeamQuota{}, fmt.Errorf("%q: rate %q is not a number in 0..%g", s, rate, float64(maxQuotaRate))
	}
	if hasBurst {
		if q.Burst, err = strconv.Atoi(burst); err != nil || q.Burst < 0 || q.Burst > maxLimit {
			return TeamQuota{}, fmt.Errorf("%q: burst %q is not an integer in 0..%d", s, burst, maxLimit)
		}
	}
	return q, nil
}

// Precompute is the precompute worker: flag results materialised into the
// store on every person, group, flag or cohort change.
type Precompute struct {
	// Enabled runs the worker inside serve. Default true.
	Enabled bool `yaml:"enabled"`
	// RunRate is how many rows per second a run may compute, 0 to 10⁷
	// (0: unbounded). A budget makes a run after a flag change longer and
	// serving steadier while it lasts. Default 0.
	RunRate int `yaml:"run-rate"`
	// Concurrency is how many rows are computed at once, 0 to 1024 (0:
	// the worker's default). Default 0.
	Concurrency int `yaml:"concurrency"`
	// MetricsAddr serves /metrics of a worker run alone (vexil
	// precompute); empty: none. Default "127.0.0.1:8002" (beside serve's
	// 8000 and 8001; 9090 is Prometheus's own).
	MetricsAddr string `yaml:"metrics-addr"`
}

// Admin is the management API run alone (vexil admin).
type Admin struct {
	// NoStore does not open the persons store: explain then needs
	// properties, and there is no blast radius. Default false.
	NoStore bool `yaml:"no-store"`
	// CORSOrigins are the browser origins (scheme://host[:port], or "*")
	// the management API under /api answers cross-origin, for serve and
	// admin alone. Empty (the default) keeps CORS off there; PostHog's
	// public endpoints (/flags, /decide, capture, the early access list)
	// answer every origin regardless, as PostHog's do.
	CORSOrigins []string `yaml:"cors-origins"`
}

// Demo is serve's demo data.
type Demo struct {
	// Enabled creates a demo team with flags and persons, and prints a
	// token and a curl to try. Default false.
	Enabled bool `yaml:"enabled"`
	// Persons the demo publishes through the ingest stream, 1 to 10⁶.
	// Default 10000.
	Persons int `yaml:"persons"`
	// Flags are extra demo flags in the peers' benchmark shape (half
	// boolean at 50%, half multivariate gated on country US), 0 to 10⁴.
	// Default 0.
	Flags int `yaml:"flags"`
}

// Default returns the defaults documented on each field.
func Default() Config {
	return Config{
		DataDir:   ".data",
		LogLevel:  "info",
		HTTPAddr:  "127.0.0.1:8000",
		GRPCAddr:  "127.0.0.1:8001",
		GCPercent: 400,
		NATS:      NATS{Listen: "127.0.0.1:4222", Namespace: string(namespace.Default)},
		Scylla:    Scylla{Keyspace: "vexil", Replication: 1, HedgeAttempts: 1, HedgeMaxDelay: 50 * time.Millisecond},
		Store:     Store{CacheMB: 640},
		Eval:      Eval{StoreTimeout: 50 * time.Millisecond, FastPath: true},
		Admission: Admission{InitialLimit: 64, MinLimit: 8, MaxLimit: 4096, EvaluateTarget: 5 * time.Millisecond,
			PollTarget: 25 * time.Millisecond, ManagementTarget: 250 * time.Millisecond, SchedTarget: time.Millisecond, MinRate: 100},
		Precompute: Precompute{Enabled: true, MetricsAddr: "127.0.0.1:8002"},
		Demo:       Demo{Persons: 10_000},
		SLO:        defaultSLO(),
		Canary:     Canary{TapQueue: 1024},
	}
}

// Bounds of the settings that have no natural limit of their own.
const (
	maxPathBytes    = 4096
	maxHosts        = 64
	maxHostBytes    = 255
	maxCacheMB      = 1 << 20 // 1 TiB
	maxGCPercent    = 100_000
	maxStoreTimeout = time.Minute
	maxRunRate      = 10_000_000
	maxConcurrency  = 1024
	maxDemoPersons  = 1_000_000
	maxDemoFlags    = 10_000
	maxLimit        = 1_000_000
	maxQuotaRate    = 1e9
	maxTeamQuotas   = 100_000
)

// maxMemoryLimitMB bounds memory-limit-mb: 64 TiB.
const maxMemoryLimitMB = 1 << 26

// A FieldError is a setting that Validate refuses. Key names it as the
// file does (nats.url).
type FieldError struct {
	Key    string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Reason) }

// Validate checks every setting and returns one *FieldError per setting
// at fault (joined), or nil.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	check := func(key string, err error) {
		if err != nil {
			bad(key, "%v", err)
		}
	}
	switch {
	case c.DataDir == "":
		bad("data-dir", "required")
	case len(c.DataDir) > maxPathBytes:
		bad("data-dir", "longer than %d bytes", maxPathBytes)
	}
	if _, err := c.Level(); err != nil {
		bad("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	check("http-addr", checkAddr(c.HTTPAddr, 0))
	check("grpc-addr", checkAddr(c.GRPCAddr, 0))
	if c.GCPercent < 0 || c.GCPercent > maxGCPercent {
		bad("gc-percent", "%d out of range 0..%d", c.GCPercent, maxGCPercent)
	}
	if c.MemoryLimitMB < 0 || c.MemoryLimitMB > maxMemoryLimitMB {
		bad("memory-limit-mb", "%d out of range 0..%d", c.MemoryLimitMB, maxMemoryLimitMB)
	}
	c.validateTLS(bad)
	check("nats.url", checkNATSURL(c.NATS.URL))
	check("nats.listen", checkAddr(c.NATS.Listen, -1))
	if c.NATS.Namespace == "" {
		bad("nats.namespace", "required (the default is %q)", namespace.Default)
	} else if _, err := namespace.Parse(c.NATS.Namespace); err != nil {
		check("nats.namespace", err)
	}
	if len(c.Admin.CORSOrigins) > maxHosts {
		bad("admin.cors-origins", "%d origins, more than %d", len(c.Admin.CORSOrigins), maxHosts)
	}
	check("admin.cors-origins", cors.CheckOrigins(c.Admin.CORSOrigins))
	if len(c.Scylla.Hosts) > maxHosts {
		bad("scylla.hosts", "%d hosts, more than %d", len(c.Scylla.Hosts), maxHosts)
	}
	for _, h := range c.Scylla.Hosts {
		if h == "" || len(h) > maxHostBytes || strings.ContainsAny(h, " \t\r\n,") {
			bad("scylla.hosts", "%q is not a host", h)
			break
		}
	}
	if err := (schema.Config{Keyspace: c.Scylla.Keyspace}).Validate(); err != nil {
		bad("scylla.keyspace", "%q is not a keyspace name (letters, digits and _, starting with a letter)", c.Scylla.Keyspace)
	}
	if c.Scylla.Replication < 1 || c.Scylla.Replication > 64 {
		bad("scylla.replication", "%d out of range 1..64", c.Scylla.Replication)
	}
	if c.Scylla.HedgeAttempts < -1 || c.Scylla.HedgeAttempts > 4 {
		bad("scylla.hedge-attempts", "%d out of range -1..4", c.Scylla.HedgeAttempts)
	}
	if c.Scylla.HedgeMaxDelay < time.Millisecond || c.Scylla.HedgeMaxDelay > maxStoreTimeout {
		bad("scylla.hedge-max-delay", "%v out of range 1ms..%v", c.Scylla.HedgeMaxDelay, maxStoreTimeout)
	}
	if c.Store.CacheMB < 0 || c.Store.CacheMB > maxCacheMB {
		bad("store.cache-mb", "%d out of range 0..%d", c.Store.CacheMB, maxCacheMB)
	}
	if c.Store.BlockKB < 0 || c.Store.BlockKB > 64 {
		bad("store.block-kb", "%d out of range 0..64", c.Store.BlockKB)
	}
	switch c.Store.Compression {
	case "", "snappy", "minlz", "none":
	default:
		bad("store.compression", "%q is not snappy, minlz or none", c.Store.Compression)
	}
	if c.Eval.StoreTimeout < 0 || c.Eval.StoreTimeout > maxStoreTimeout {
		bad("eval.store-timeout", "%v out of range 0..%v", c.Eval.StoreTimeout, maxStoreTimeout)
	}
	c.validateAdmission(bad)
	c.validateSLO(bad)
	if c.Precompute.RunRate < 0 || c.Precompute.RunRate > maxRunRate {
		bad("precompute.run-rate", "%d out of range 0..%d", c.Precompute.RunRate, maxRunRate)
	}
	if c.Precompute.Concurrency < 0 || c.Precompute.Concurrency > maxConcurrency {
		bad("precompute.concurrency", "%d out of range 0..%d", c.Precompute.Concurrency, maxConcurrency)
	}
	if c.Precompute.MetricsAddr != "" {
		check("precompute.metrics-addr", checkAddr(c.Precompute.MetricsAddr, 0))
	}
	if !(c.Canary.TapShare >= 0 && c.Canary.TapShare <= 1) {
		bad("canary.tap-share", "%v out of range 0..1", c.Canary.TapShare)
	}
	if c.Canary.TapQueue < 1 || c.Canary.TapQueue > 65536 {
		bad("canary.tap-queue", "%d out of range 1..65536", c.Canary.TapQueue)
	}
	if c.Demo.Persons < 1 || c.Demo.Persons > maxDemoPersons {
		bad("demo.persons", "%d out of range 1..%d", c.Demo.Persons, maxDemoPersons)
	}
	if c.Demo.Flags < 0 || c.Demo.Flags > maxDemoFlags {
		bad("demo.flags", "%d out of range 0..%d", c.Demo.Flags, maxDemoFlags)
	}
	return errors.Join(errs...)
}

func (c *Config) validateTLS(bad func(key, format string, args ...any)) {
	t := &c.TLS
	for _, v := range []struct{ key, path string }{{"tls.cert-file", t.CertFile}, {"tls.key-file", t.KeyFile}, {"tls.client-ca-file", t.ClientCAFile}} {
		if len(v.path) > maxPathBytes {
			bad(v.key, "longer than %d bytes", maxPathBytes)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		bad("tls.key-file", "required with tls.cert-file")
	case t.CertFile == "" && t.KeyFile != "":
		bad("tls.cert-file", "required with tls.key-file")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		bad("tls.client-ca-file", "needs tls.cert-file and tls.key-file: client certificates are asked for over TLS only")
	}
}

func (c *Config) validateAdmission(bad func(key, format string, args ...any)) {
	a := &c.Admission
	for _, v := range []struct {
		key string
		n   int
	}{{"admission.initial-limit", a.InitialLimit}, {"admission.min-limit", a.MinLimit}, {"admission.max-limit", a.MaxLimit}} {
		if v.n < 1 || v.n > maxLimit {
			bad(v.key, "%d out of range 1..%d", v.n, maxLimit)
		}
	}
	if a.MinLimit > a.MaxLimit {
		bad("admission.min-limit", "%d is over admission.max-limit %d", a.MinLimit, a.MaxLimit)
	} else if a.InitialLimit < a.MinLimit || a.InitialLimit > a.MaxLimit {
		bad("admission.initial-limit", "%d out of range admission.min-limit..admission.max-limit (%d..%d)", a.InitialLimit, a.MinLimit, a.MaxLimit)
	}
	for _, v := range []struct {
		key string
		d   time.Duration
	}{{"admission.evaluate-target", a.EvaluateTarget}, {"admission.poll-target", a.PollTarget}, {"admission.management-target", a.ManagementTarget}} {
		if v.d < 100*time.Microsecond || v.d > time.Minute {
			bad(v.key, "%v out of range 100µs..1m", v.d)
		}
	}
	if a.SchedTarget != 0 && (a.SchedTarget < 100*time.Microsecond || a.SchedTarget > time.Minute) {
		bad("admission.sched-target", "%v: want 0 (off) or 100µs..1m", a.SchedTarget)
	}
	if !(a.MinRate >= 1 && a.MinRate <= maxQuotaRate) {
		bad("admission.min-rate", "%v out of range 1..%g", a.MinRate, float64(maxQuotaRate))
	}
	if !(a.QuotaRate >= 0 && a.QuotaRate <= maxQuotaRate) {
		bad("admission.quota-rate", "%v out of range 0..%g", a.QuotaRate, float64(maxQuotaRate))
	}
	if a.QuotaBurst < 0 || a.QuotaBurst > maxLimit {
		bad("admission.quota-burst", "%d out of range 0..%d", a.QuotaBurst, maxLimit)
	}
	if len(a.TeamQuotas) > maxTeamQuotas {
		bad("admission.team-quotas", "%d entries, more than %d", len(a.TeamQuotas), maxTeamQuotas)
		return
	}
	seen := make(map[int64]bool, len(a.TeamQuotas))
	for _, s := range a.TeamQuotas {
		q, err := ParseTeamQuota(s)
		if err != nil {
			bad("admission.team-quotas", "%v", err)
			return
		}
		if seen[q.Team] {
			bad("admission.team-quotas", "team %d is listed twice", q.Team)
			return
		}
		seen[q.Team] = true
	}
}

// Level returns LogLevel as a slog level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}

// checkAddr checks a listen address host:port; the port may be 0 (any)
// and, when minPort is -1, -1 (NATS: a free port).
func checkAddr(addr string, minPort int) error {
	if addr == "" {
		return errors.New("required")
	}
	if len(addr) > maxHostBytes+6 {
		return fmt.Errorf("%q is too long", addr[:32]+"...")
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < minPort || port > 65535 {
		return fmt.Errorf("%q: port %q out of range %d..65535", addr, p, minPort)
	}
	return nil
}

// checkNATSURL checks a NATS server URL or comma-separated list of them;
// empty is allowed. Like the NATS client, a URL without a scheme is
// nats://.
func checkNATSURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxPathBytes {
		return fmt.Errorf("longer than %d bytes", maxPathBytes)
	}
	for u := range strings.SplitSeq(s, ",") {
		u = strings.TrimSpace(u)
		raw := u
		if !strings.Contains(u, "://") {
			raw = "nats://" + u
		}
		p, err := url.Parse(raw)
		if err != nil || p.Host == "" {
			return fmt.Errorf("%q is not a NATS server URL", u)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: scheme %q, want nats, tls, ws or wss", u, p.Scheme)
		}
	}
	return nil
}
