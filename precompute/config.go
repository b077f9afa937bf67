package precompute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
)

// Names are the worker's names on NATS in one namespace. Every worker of
// an environment uses the same ones: they share the work through durable
// consumers. NamesOf gives them; the comments show namespace.Default's.
type Names struct {
	// Stream holds the work: row triggers and the pages of runs, as a work
	// queue (a message is deleted once a worker acknowledges it).
	// "VEXIL_PRECOMPUTE".
	Stream string
	// RowSubjectPrefix + <team> carries row and group triggers.
	// "vexil.precompute.rows.".
	RowSubjectPrefix string
	// PageSubjectPrefix + <team> carries the pages of runs.
	// "vexil.precompute.pages.".
	PageSubjectPrefix string
	// ChangeStream captures the management API's change notices
	// (changes.Wildcard) so that exactly one worker starts each run.
	// "VEXIL_CHANGES".
	ChangeStream string
	// RunBucket is the JetStream key-value bucket of run states, one key
	// per team: the checkpoint a resumed run starts from, and its progress.
	// "vexil_precompute_runs".
	RunBucket string

	ns namespace.Name
}

// NamesOf returns the worker's names in ns.
func NamesOf(ns namespace.Name) Names {
	return Names{
		Stream:            ns.Stream("PRECOMPUTE"),
		RowSubjectPrefix:  ns.Subject("precompute", "rows") + ".",
		PageSubjectPrefix: ns.Subject("precompute", "pages") + ".",
		ChangeStream:      ns.Stream("CHANGES"),
		RunBucket:         ns.Bucket("precompute_runs"),
		ns:                ns,
	}
}

// Definitions is what the worker reads from the catalog.
type Definitions interface {
	Snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error)
	ListTeams(ctx context.Context) ([]catalog.Team, error)
}

// Config configures a Worker. Store, Catalog and Conn are required.
type Config struct {
	Store   store.Store
	Catalog Definitions
	// Conn is the NATS connection, JetStream enabled.
	Conn *nats.Conn
	// Namespace is the environment's namespace: the worker's streams,
	// bucket and subjects (NamesOf) and the change notices it reads.
	// Default namespace.Default.
	Namespace namespace.Name

	// Logger defaults to slog.Default(); Registry receives the metrics
	// (nil: a private registry).
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now is the evaluation clock (relative dates, valid_until). Default
	// time.Now. Write stamps always come from the wall clock.
	Now func() time.Time

	// Concurrency is how many rows are computed at once. Default 2 × the
	// CPUs.
	Concurrency int
	// Coalesce is how long row triggers gather, from the first, before one
	// recompute: many writes to one row within it cost one computation.
	// Default 20ms.
	Coalesce time.Duration
	// PageSize is the rows per page of a run. Default 500.
	PageSize int
	// RunRowsPerSecond bounds how fast this worker computes the pages of
	// runs (0: as fast as it can). A run shares the machine with serving:
	// on a small server, a budget trades a longer run for steadier /flags
	// latency and freshness while it lasts. Row triggers are not bounded.
	RunRowsPerSecond int
	// Arrivals counts the requests the node has received
	// (evalsvc.Service.Arrivals). While it moves, computations pause
	// between rows after each slice of about a millisecond, so that with
	// one P a request waits behind them for about that long instead of a
	// whole batch (see pacer). Nil: computations never pause.
	Arrivals func() uint64
	// ExpiryInterval is how often due valid_until entries are collected.
	// Default 250ms.
	ExpiryInterval time.Duration
	// ReloadInterval bounds how long cached definitions are trusted
	// without a change notice. Default 30s.
	ReloadInterval time.Duration
	// AckWait is how long a delivered trigger, page or notice waits for
	// its acknowledgement before another worker gets it: how long a killed
	// worker's work stays stuck. A run's scanner extends it as it goes.
	// Default 30s.
	AckWait time.Duration
	// Plan tunes which flags are stored.
	Plan results.Options
	// NoSignals turns off the cohort membership signals (package signals):
	// by default, every row recompute of a team with behavioural cohorts
	// compares the row's memberships with its record and publishes the
	// transitions, and the worker wakes when one may happen by time alone.
	NoSignals bool
	// Roles selects what this worker does; zero means everything.
	Roles Roles
}

// Roles lets a worker take part of the work only (tests use it to stop,
// lag and race workers).
type Roles struct {
	NoRows, NoPages, NoRuns, NoExpiry bool
}

// ErrInvalidConfig is returned by New for a missing required field.
var ErrInvalidConfig = errors.New("precompute: invalid config")

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil || c.Catalog == nil || c.Conn == nil {
		return c, fmt.Errorf("%w: Store, Catalog and Conn are required", ErrInvalidConfig)
	}
	if err := c.Namespace.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Namespace == "" {
		c.Namespace = namespace.Default
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Coalesce <= 0 {
		c.Coalesce = 20 * time.Millisecond
	}
	if c.PageSize <= 0 {
		c.PageSize = 500
	}
	if c.ExpiryInterval <= 0 {
		c.ExpiryInterval = 250 * time.Millisecond
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.ReloadInterval <= 0 {
		c.ReloadInterval = 30 * time.Second
	}
	return c, nil
}
