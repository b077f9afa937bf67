package evalsvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
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
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
	// StoreTimeout bounds the reads of one request: the row, the groups
	// and static cohort membership (Catalog.IsCohortMember). Past it the
	// flags that need what was not read answer failed and the response says
	// errorsWhileComputingFlags. Default 50ms.
	StoreTimeout time.Duration
	// ReloadInterval is the period of the full HyperCache reload that backs
	// up change notices. Default 30s.
	ReloadInterval time.Duration
	// KeyCacheTTL is how long a key lookup is cached. Revocations reach a
	// node through change notices at once, or after this TTL. Default 10s.
	KeyCacheTTL time.Duration
	// MaxBodyBytes bounds a request body, compressed or not. Default 1 MiB.
	MaxBodyBytes int
	// Admission admits requests (an adaptive concurrency limit shared by
	// every transport of the node, and per-team quotas): past it a request
	// is refused at once, never queued. Default: a controller of its own
	// with admission's defaults and no metrics.
	Admission *admission.Controller
	// HashKey hashes a secret for the key lookup; default SHA-256.
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
	if c.StoreTimeout < 0 || c.ReloadInterval < 0 || c.KeyCacheTTL < 0 || c.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: durations and limits must not be negative", ErrInvalidConfig)
	}
	return nil
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
	if d.HashKey == nil {
		d.HashKey = func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}
