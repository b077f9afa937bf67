package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store"
)

// Committed is what one durable batch wrote: the keys of its row writes
// (puts and deletes) and of its group writes, each key once.
type Committed struct {
	Rows   []store.DistinctKey
	Groups []store.GroupKey
}

// Config configures a Projector. Conn and Store are required; every other
// field has the documented default when left zero.
type Config struct {
	// Conn is the NATS connection (JetStream enabled). Required.
	Conn *nats.Conn
	// Store receives the projected state. Required.
	Store store.Store

	// AtomicStore declares that Store.Apply is all-or-nothing even across a
	// crash (memstore, pebblestore). The projector then writes each batch
	// with one Apply. When false (the default, and what scyllastore needs,
	// whose Apply writes partitions independently), each batch is written in
	// two Applys: first the derived writes (rows, person → distinct id
	// index), then the sources (persons, mappings, groups, group types). A
	// crash between or inside them leaves some sources unchanged, so the
	// redelivered messages change them again and redo every derived write.
	AtomicStore bool

	// Namespace is the environment's namespace: the ingest subjects the
	// projector reads and the defaults of Stream, Durable, DeadLetterStream
	// and DeadLetterPrefix derive from it. Default namespace.Default.
	Namespace namespace.Name
	// Stream is the ingest stream; created with IngestStreamConfig when
	// missing, kept as it is otherwise (streams.Ensure). Default
	// StreamName(Namespace) ("VEXIL_INGEST").
	Stream string
	// Durable is the durable pull consumer's name. Default
	// DurableName(Namespace) ("vexil-projector").
	Durable string
	// BatchSize bounds the messages applied by one store write. Default 1000.
	BatchSize int
	// MaxWait is how long a batch waits for more messages after its first
	// one when fewer than BatchSize are at hand. Zero (the default) applies
	// what has arrived at once: batches then grow by themselves under load,
	// while the previous batch is being written, and stay small and fast
	// when the stream is quiet.
	MaxWait time.Duration
	// AckWait is the consumer's ack wait: a message not acknowledged within
	// it is redelivered. The projector keeps every message it holds in
	// progress (an in-progress ack every AckWait/4 for those held longer), so
	// a slow batch is not redelivered while the run is alive; AckWait
	// bounds how long what a killed run held stays unapplied before
	// JetStream hands it to the next run. Default 5s.
	AckWait time.Duration
	// MaxAckPending bounds delivered but unacknowledged messages. Default
	// 4 × BatchSize.
	MaxAckPending int

	// DeadLetterStream stores dead letters; created when missing. Default
	// DeadLetterStreamName(Namespace) ("VEXIL_DEADLETTER").
	DeadLetterStream string
	// DeadLetterPrefix is prepended to a poison message's subject to form
	// its dead-letter subject. Default DeadLetterPrefixOf(Namespace)
	// ("vexil.deadletter."). It must not overlap the ingest subjects.
	DeadLetterPrefix string

	// DeadLetterLogBurst is how many dead letters are logged one line each
	// per DeadLetterLogInterval; the others of the interval are counted and
	// logged as one line (how many, by reason, with a sample). Every dead
	// letter is still published and counted in the metrics. Default 10.
	DeadLetterLogBurst int
	// DeadLetterLogInterval is the window of DeadLetterLogBurst, at least
	// a second. Default 1m.
	DeadLetterLogInterval time.Duration

	// Limits bound each message; zero fields mean ingest's defaults.
	Limits ingest.Limits
	// Teams says which teams exist; a message of another team is poison
	// (ingest.ReasonUnknownTeam). Nil allows every team.
	Teams TeamSource

	// ReadConcurrency bounds the concurrent store reads of one batch (the
	// persons, mappings and person → distinct ids it needs, in chunks).
	// Default 4 for an AtomicStore (local, CPU-bound reads), 32 otherwise
	// (a remote store's reads are network round trips).
	ReadConcurrency int

	// IndexCacheSize is how many persons' distinct ids the projector keeps
	// in memory for the fan-out of property changes to rows (it is the only
	// writer of that index, so the cache stays exact). Default 100,000; a
	// negative value disables it.
	IndexCacheSize int

	// LagInterval is how often the consumer's pending count is read for
	// vexil_projector_lag_messages. Default 5s.
	LagInterval time.Duration
	// RetryBackoff is the first wait after a failed store write or
	// dead-letter publish; it doubles up to 5s. Default 100ms.
	RetryBackoff time.Duration

	// Logger receives the projector's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Default: a private registry (the
	// metrics are then not exported).
	Registerer prometheus.Registerer
	// Now is the clock, for the lag metric and the dead-letter log's
	// windows. Default time.Now.
	Now func() time.Time

	// Events, when set, returns a team's compiled definitions, whose
	// behavioural cohorts say which events to count (flags.Set.TracksEvent,
	// MatchEvent); nil, or a nil Set for a team, drops its events after
	// validation. It is called once per event, so it must be cheap (cmd
	// wires a cache refreshed by change notices).
	Events func(team int64) *flags.Set

	// PairStarts, when set, records per team and tracked pair the stream
	// sequence from which the pair is counted live (see PairStarts); a
	// backfill counts the events before it. Nil: a pair counts from
	// whenever the projector first sees it, and Backfill refuses.
	PairStarts PairStarts

	// OnCommit, when set, is called after a batch is durable and before
	// its messages are acknowledged, with the rows and groups the batch
	// wrote (precompute publishes its recompute triggers here). An error
	// retries the call with backoff; the messages stay unacknowledged
	// until it succeeds, so a trigger is never lost across a crash (a
	// redelivery re-applies the batch, idempotently, and calls it again).
	OnCommit func(ctx context.Context, c Committed) error
}

// Defaults of Config.
const (
	DefaultBatchSize             = 1000
	DefaultAckWait               = 5 * time.Second
	DefaultDeadLetterLogBurst    = 10
	DefaultDeadLetterLogInterval = time.Minute
	DefaultLagInterval           = 5 * time.Second
	DefaultReadConcurrency       = 4
	DefaultRemoteReadConcurrency = 32
	DefaultIndexCacheSize        = 100_000
	DefaultRetryBackoff          = 100 * time.Millisecond
)

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = errors.New("projector: invalid config")

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = namespace.Default
	}
	if c.Stream == "" {
		c.Stream = StreamName(c.Namespace)
	}
	if c.Durable == "" {
		c.Durable = DurableName(c.Namespace)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 4 * c.BatchSize
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DeadLetterStreamName(c.Namespace)
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = DeadLetterPrefixOf(c.Namespace)
	}
	if c.DeadLetterLogBurst == 0 {
		c.DeadLetterLogBurst = DefaultDeadLetterLogBurst
	}
	if c.DeadLetterLogInterval == 0 {
		c.DeadLetterLogInterval = DefaultDeadLetterLogInterval
	}
	c.Limits = c.Limits.WithDefaults()
	if c.ReadConcurrency == 0 {
		c.ReadConcurrency = DefaultReadConcurrency
		if !c.AtomicStore {
			c.ReadConcurrency = DefaultRemoteReadConcurrency
		}
	}
	if c.IndexCacheSize == 0 {
		c.IndexCacheSize = DefaultIndexCacheSize
	}
	if c.LagInterval == 0 {
		c.LagInterval = DefaultLagInterval
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a missing dependency or an out-of-range setting. Zero
// fields are valid: they mean their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Conn == nil {
		errs = append(errs, errors.New("Conn is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if err := c.Namespace.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("BatchSize %d must be > 0", c.BatchSize))
	}
	if c.ReadConcurrency < 0 {
		errs = append(errs, fmt.Errorf("ReadConcurrency %d must be > 0", c.ReadConcurrency))
	}
	if c.MaxAckPending < c.BatchSize {
		errs = append(errs, fmt.Errorf("MaxAckPending %d must be >= BatchSize %d", c.MaxAckPending, c.BatchSize))
	}
	if c.DeadLetterLogBurst < 0 {
		errs = append(errs, fmt.Errorf("DeadLetterLogBurst %d must be >= 0", c.DeadLetterLogBurst))
	}
	if c.DeadLetterLogInterval > 0 && c.DeadLetterLogInterval < time.Second {
		errs = append(errs, fmt.Errorf("DeadLetterLogInterval %v must be at least 1s", c.DeadLetterLogInterval))
	}
	if c.MaxWait < 0 || c.AckWait < 0 || c.LagInterval < 0 || c.RetryBackoff < 0 || c.DeadLetterLogInterval < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.AckWait > 0 && c.AckWait < time.Second/10 {
		errs = append(errs, fmt.Errorf("AckWait %v is too short to write a batch", c.AckWait))
	}
	if !strings.HasSuffix(c.DeadLetterPrefix, ".") || strings.ContainsAny(c.DeadLetterPrefix, " *>") {
		errs = append(errs, fmt.Errorf("DeadLetterPrefix %q must be literal subject tokens ending in '.'", c.DeadLetterPrefix))
	}
	for _, w := range ingest.SubjectWildcards(c.Namespace) {
		if strings.HasPrefix(c.DeadLetterPrefix, strings.TrimSuffix(w, "*")) {
			errs = append(errs, fmt.Errorf("DeadLetterPrefix %q overlaps the ingest subjects", c.DeadLetterPrefix))
		}
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// TeamSource says which teams exist. Known is called for every message, so
// it must be fast (an in-memory set refreshed in the background, say).
type TeamSource interface {
	Known(team int64) bool
}

// Teams is a fixed TeamSource: the set of its keys.
type Teams map[int64]struct{}

// AllowTeams returns the TeamSource that knows exactly ids.
func AllowTeams(ids ...int64) Teams {
	t := make(Teams, len(ids))
	for _, id := range ids {
		t[id] = struct{}{}
	}
	return t
}

// Known reports whether team is in t.
func (t Teams) Known(team int64) bool {
	_, ok := t[team]
	return ok
}
