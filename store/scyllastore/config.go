package scyllastore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/schema"
)

// ErrInvalidConfig reports a Config that fails Validate.
var ErrInvalidConfig = errors.New("scyllastore: invalid config")

// Config configures a Store. The zero value of every optional field means
// its documented default.
type Config struct {
	// Hosts are the contact points, "host" or "host:port" (port default 9042).
	// Required.
	Hosts []string
	// Keyspace holds the tables (see package schema). Required.
	Keyspace string
	// Consistency of every read and write. Default LocalQuorum. Writes are
	// acknowledged at this level before Write returns.
	Consistency gocql.Consistency
	// Timeout bounds one request to one node. Default 10s.
	Timeout time.Duration
	// ConnectTimeout bounds the initial connection to a node. Default 10s.
	ConnectTimeout time.Duration
	// Retries is how often the driver retries a failed statement (every
	// Vexil statement is idempotent). 0 means the default 2; negative means
	// never (tests that expect errors use it).
	Retries int
	// WriteConcurrency bounds the partitions written in parallel by one
	// Apply. Default 64 (a 1000-person projector batch spans about 2,000
	// partitions; more in flight hides network latency on a real cluster).
	WriteConcurrency int
	// ReadConcurrency bounds the parallel point reads of one multi-key read
	// (scans, fan-out lookups). Default 16.
	ReadConcurrency int
	// WriteCoalesceWait is how long the driver holds a request to send it
	// with others in one write on the connection. Default 0: off. The
	// driver's own default, 200µs, raised a serial GetRow from about 0.35 ms
	// to about 2 ms on the 2-core test machine; a deployment with many
	// concurrent requests per connection may trade latency for fewer
	// syscalls by setting it.
	WriteCoalesceWait time.Duration
	// PageSize is the driver page size of scans. Default 1000.
	PageSize int
	// ApplySchema applies package schema's migrations on Open (creating the
	// keyspace with ReplicationFactor when missing). Default false: the
	// schema is managed separately, and Open only checks that it is current.
	ApplySchema bool
	// ReplicationFactor for a keyspace created by ApplySchema. Default 1.
	ReplicationFactor int
	// HedgeAttempts is how many extra attempts a slow GetRow or GetGroup
	// may send, each to a host the earlier attempts did not use, one
	// hedge delay apart; the first answer wins (see "Hedged reads" in the
	// package doc). Default 1; negative: no hedging; at most 4. Writes are
	// never hedged.
	HedgeAttempts int
	// HedgePercentile of recent read latencies is the hedge delay: a read
	// slower than most is hedged. Default 0.95; in (0, 1].
	HedgePercentile float64
	// HedgeMinDelay and HedgeMaxDelay clamp the hedge delay. Defaults 1 ms
	// (no hedging within a healthy read's jitter) and 50 ms (serve's
	// default /flags store deadline: a later hedge cannot help /flags); the
	// delay is the maximum until 64 reads were answered. At most 1 minute.
	HedgeMinDelay, HedgeMaxDelay time.Duration
	// HedgeBudget is the fraction of reads that may send a hedge, over
	// time (bursts of 10 allowed): when every host is slow, hedging adds
	// at most this much read load. Default 0.2; in (0, 1].
	HedgeBudget float64
	// AddressTranslator maps the addresses nodes announce to the ones
	// this process reaches them at (NAT, proxies). Default: as announced.
	AddressTranslator gocql.AddressTranslator
	// Logger is scoped to the store. Default: discard.
	Logger *slog.Logger
	// Registerer receives the store's metrics (vexil_scyllastore_*).
	// Default nil: not registered. One Store per Registerer.
	Registerer prometheus.Registerer
}

// Validate checks the Config; errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if len(c.Hosts) == 0 {
		return fmt.Errorf("%w: no hosts", ErrInvalidConfig)
	}
	for _, h := range c.Hosts {
		if h == "" {
			return fmt.Errorf("%w: empty host", ErrInvalidConfig)
		}
	}
	if err := (schema.Config{Keyspace: c.Keyspace, ReplicationFactor: c.ReplicationFactor}).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch c.Consistency {
	case 0, gocql.One, gocql.Two, gocql.Three, gocql.Quorum, gocql.All, gocql.LocalQuorum, gocql.EachQuorum, gocql.LocalOne:
	default:
		return fmt.Errorf("%w: consistency %v", ErrInvalidConfig, c.Consistency)
	}
	if c.Timeout < 0 || c.ConnectTimeout < 0 || c.WriteCoalesceWait < 0 {
		return fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	}
	if c.WriteConcurrency < 0 || c.ReadConcurrency < 0 || c.PageSize < 0 {
		return fmt.Errorf("%w: negative concurrency or page size", ErrInvalidConfig)
	}
	return c.validateHedging()
}

// Bounds of the hedging options.
const (
	maxHedgeAttempts = 4
	maxHedgeDelay    = time.Minute
)

func (c Config) validateHedging() error {
	if c.HedgeAttempts > maxHedgeAttempts {
		return fmt.Errorf("%w: HedgeAttempts %d above %d", ErrInvalidConfig, c.HedgeAttempts, maxHedgeAttempts)
	}
	// !(x >= 0) also rejects NaN.
	if !(c.HedgePercentile >= 0 && c.HedgePercentile <= 1) {
		return fmt.Errorf("%w: HedgePercentile %v not in (0, 1]", ErrInvalidConfig, c.HedgePercentile)
	}
	if !(c.HedgeBudget >= 0 && c.HedgeBudget <= 1) {
		return fmt.Errorf("%w: HedgeBudget %v not in (0, 1]", ErrInvalidConfig, c.HedgeBudget)
	}
	if c.HedgeMinDelay < 0 || c.HedgeMaxDelay < 0 || c.HedgeMinDelay > maxHedgeDelay || c.HedgeMaxDelay > maxHedgeDelay {
		return fmt.Errorf("%w: hedge delays %v, %v not in [0, %v]", ErrInvalidConfig, c.HedgeMinDelay, c.HedgeMaxDelay, maxHedgeDelay)
	}
	if d := c.withDefaults(); d.HedgeMinDelay > d.HedgeMaxDelay {
		return fmt.Errorf("%w: HedgeMinDelay %v above HedgeMaxDelay %v", ErrInvalidConfig, d.HedgeMinDelay, d.HedgeMaxDelay)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Consistency == 0 {
		c.Consistency = gocql.LocalQuorum
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.WriteConcurrency == 0 {
		c.WriteConcurrency = 64
	}
	if c.ReadConcurrency == 0 {
		c.ReadConcurrency = 16
	}
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.HedgeAttempts == 0 {
		c.HedgeAttempts = 1
	}
	if c.HedgeAttempts < 0 {
		c.HedgeAttempts = 0
	}
	if c.HedgePercentile == 0 {
		c.HedgePercentile = 0.95
	}
	if c.HedgeMinDelay == 0 {
		c.HedgeMinDelay = time.Millisecond
	}
	if c.HedgeMaxDelay == 0 {
		c.HedgeMaxDelay = 50 * time.Millisecond
	}
	if c.HedgeBudget == 0 {
		c.HedgeBudget = 0.2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// cluster builds the driver configuration: protocol v4 (v5 fails against
// Cassandra 5.0 with this driver), token-aware routing over round robin,
// so each single-partition statement goes straight to a replica, wrapped
// in policy (the hedged reads' host selection).
func (c Config) cluster(policy *hedgePolicy) *gocql.ClusterConfig {
	cl := gocql.NewCluster(c.Hosts...)
	cl.ProtoVersion = 4
	cl.Consistency = c.Consistency
	cl.Timeout = c.Timeout
	cl.ConnectTimeout = c.ConnectTimeout
	cl.PoolConfig.HostSelectionPolicy = policy
	cl.AddressTranslator = c.AddressTranslator
	cl.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: c.Retries}
	cl.PageSize = c.PageSize
	cl.Logger = driverLogger{c.Logger}
	cl.WriteCoalesceWaitTime = c.WriteCoalesceWait
	return cl
}

// driverLogger routes the driver's log lines (reconnects, server warnings)
// to the store's slog.Logger at Warn level.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprint(v...)), "source", "gocql")
}
func (l driverLogger) Printf(format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "gocql")
}
func (l driverLogger) Println(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintln(v...)), "source", "gocql")
}
