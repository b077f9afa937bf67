package evalsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
)

// Definitions is what the service reads from the catalog: team snapshots,
// keys by hash, static cohort membership. catalog.Catalog satisfies it.
// IsCohortMember is on the request path: it must return when its context
// ends (the request's store deadline).
type Definitions interface {
	Snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error)
	GetKeyByHash(ctx context.Context, hash []byte) (catalog.APIKey, error)
	IsCohortMember(ctx context.Context, teamID, cohortID int64, distinctID string) (bool, error)
	ListTeams(ctx context.Context) ([]catalog.Team, error)
}

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	// Store is read for rows and groups. Required.
	Store store.Reader
	// Catalog is read for definitions and keys. Required.
	Catalog Definitions
	// Namespace is the environment's namespace: Run reads the change
	// notices of this namespace only. Default namespace.Default.
	Namespace namespace.Name
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
	// StoreTimeout bounds the reads of one request: the row, the groups
	// and static cohort membership (Catalog.IsCohortMember). Past it the
	// flags that need what was not read answer failed and the response says
	// errorsWhileComputingFlags. A store whose reads are local
	// (store.LocalReader) is read without it: nothing could interrupt
	// such a read. Default 50ms.
	StoreTimeout time.Duration
	// ReloadInterval is the period of the full HyperCache reload that backs
	// up change notices. Default 30s.
	ReloadInterval time.Duration
	// KeyCacheTTL is how long a key lookup is cached. A revocation reaches
	// every node at once through its instance-wide notice
	// (changes.KindKeyRevoked), or after this TTL if the notice is lost.
	// Default 10s.
	KeyCacheTTL time.Duration
	// MaxBodyBytes bounds a request body as sent, compressed or not: a
	// Content-Length over it is refused before the body is read, and a body
	// without one is read no further than one byte past it. Default 1 MiB.
	MaxBodyBytes int
	// MaxDecodedBytes bounds a /flags body after gzip decompression (the
	// decompression stops one byte past it) and the JSON an Evaluate call
	// is checked as. Default 2 MiB.
	MaxDecodedBytes int
	// MaxValues bounds the JSON values of one request's person and group
	// properties, groups and flag keys together, nested members and
	// elements counted; decoding stops at the first value past it (413
	// too_many_values). Default 10000.
	MaxValues int
	// MaxStringBytes bounds each key and string or number value there,
	// unquoted (413 property_too_large): with flags.MaxRegexProgram it
	// bounds the cost of one regex match. Default 8 KiB.
	MaxStringBytes int
	// EvalTimeout bounds the live evaluation of one request's flags, from
	// its start once the reads are done (StoreTimeout bounds those, and a
	// slow read must not spend the evaluation's budget): past it the flags
	// not yet decided answer failed (deadline_exceeded) and the response
	// says errorsWhileComputingFlags. Default 250ms.
	EvalTimeout time.Duration
	// MemoryLimit is the memory limit that new /flags and Evaluate requests
	// are shed against (503 memory_pressure) once the live heap after the
	// last GC is over MemoryShedFraction of it. 0 takes the runtime's limit
	// when New runs (GOMEMLIMIT, debug.SetMemoryLimit); with neither,
	// nothing is shed for memory.
	MemoryLimit int64
	// MemoryShedFraction is the fraction of MemoryLimit above which
	// requests are shed, in (0, 1]. Default 0.85.
	MemoryShedFraction float64
	// MemorySampleInterval is how often the heap is read (runtime/metrics)
	// at most; requests between two readings use the last one. Default 5ms.
	MemorySampleInterval time.Duration
	// Admission admits requests (an adaptive concurrency limit shared by
	// every transport of the node, and per-team quotas): past it a request
	// is refused at once, never queued. Default: a controller of its own
	// with admission's defaults and no metrics.
	Admission *admission.Controller
	// HashKey hashes a secret for the key lookup; nil is SHA-256 (computed
	// without allocating).
	HashKey func(secret string) []byte
	// Now defaults to time.Now.
	Now func() time.Time

	// LiveOnly ignores stored results: every flag is evaluated live (the
	// baseline of benchmarks and canary comparisons).
	LiveOnly bool
	// Plan must match the precompute workers' (results.Options).
	Plan results.Options
	// Repair, when set, is called (without blocking) for a row or group
	// whose stored result was missing or stale, so that precompute
	// recomputes it (precompute.Publisher.Repair). typeIndex is
	// results.Persons for a row.
	Repair func(team int64, typeIndex int, key string)
	// Usage, when set, counts every remote evaluation (per flag: value,
	// source, failure, distinct id) and every definitions poll, in
	// memory; its Run writes them to the store (package usage).
	Usage *usage.Recorder
	// EvaluationCounts, when set, receives the evaluation counts clients
	// report with ReportEvaluations (flags they evaluated in process), once
	// a batch is checked; usage statistics add them to the server's own.
	// It must not block. Without it the counts are accepted and dropped.
	EvaluationCounts func(team int64, counts []EvaluationCount)
}

// ErrInvalidConfig is returned by Validate.
var ErrInvalidConfig = errors.New("evalsvc: invalid config")

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	}
	if c.Catalog == nil {
		return fmt.Errorf("%w: Catalog is required", ErrInvalidConfig)
	}
	if err := c.Namespace.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.StoreTimeout < 0 || c.ReloadInterval < 0 || c.KeyCacheTTL < 0 || c.MaxBodyBytes < 0 ||
		c.MaxDecodedBytes < 0 || c.MaxValues < 0 || c.MaxStringBytes < 0 || c.EvalTimeout < 0 || c.MemoryLimit < 0 ||
		c.MemorySampleInterval < 0 {
		return fmt.Errorf("%w: durations and limits must not be negative", ErrInvalidConfig)
	}
	if c.MemoryShedFraction < 0 || c.MemoryShedFraction > 1 || math.IsNaN(c.MemoryShedFraction) {
		return fmt.Errorf("%w: MemoryShedFraction %v is outside (0, 1]", ErrInvalidConfig, c.MemoryShedFraction)
	}
	if c.MemorySampleInterval > time.Second {
		return fmt.Errorf("%w: MemorySampleInterval %v is over 1s", ErrInvalidConfig, c.MemorySampleInterval)
	}
	return nil
}

// limits are the request decoding limits of c (with its defaults).
func (c *Config) limits() wire.Limits {
	return wire.Limits{MaxDecodedBytes: c.MaxDecodedBytes, MaxValues: c.MaxValues, MaxStringBytes: c.MaxStringBytes}
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.StoreTimeout == 0 {
		d.StoreTimeout = 50 * time.Millisecond
	}
	if d.ReloadInterval == 0 {
		d.ReloadInterval = 30 * time.Second
	}
	if d.KeyCacheTTL == 0 {
		d.KeyCacheTTL = 10 * time.Second
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.MaxDecodedBytes == 0 {
		d.MaxDecodedBytes = wire.DefaultMaxDecodedBytes
	}
	if d.MaxValues == 0 {
		d.MaxValues = wire.DefaultMaxValues
	}
	if d.MaxStringBytes == 0 {
		d.MaxStringBytes = wire.DefaultMaxStringBytes
	}
	if d.EvalTimeout == 0 {
		d.EvalTimeout = 250 * time.Millisecond
	}
	if d.MemoryLimit == 0 {
		d.MemoryLimit = debug.SetMemoryLimit(-1) // math.MaxInt64: none
	}
	if d.MemoryShedFraction == 0 {
		d.MemoryShedFraction = 0.85
	}
	if d.MemorySampleInterval == 0 {
		d.MemorySampleInterval = 5 * time.Millisecond
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}
