package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/store"
)

// Persons is what the previews read of the persons store: a person's row
// (explain), a group (explain of group conditions) and a paged scan of a
// team's rows (blast radius). store.Store satisfies it.
type Persons interface {
	store.Reader
	ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error)
}

// Publisher sends change notices and rollout signals. Implementations must
// be safe for concurrent use.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// NATSPublisher publishes on a NATS connection and waits for the server to
// have the message (a flush), so a committed change is announced before the
// API answers.
type NATSPublisher struct {
	Conn *nats.Conn
	// Timeout bounds the flush when ctx has no deadline (default 5s).
	Timeout time.Duration
}

// Publish implements Publisher.
func (p NATSPublisher) Publish(ctx context.Context, subject string, data []byte) error {
	if err := p.Conn.Publish(subject, data); err != nil {
		return fmt.Errorf("admin: publish %s: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		timeout := p.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := p.Conn.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("admin: publish %s: flush: %w", subject, err)
	}
	return nil
}

// Limits bound what one request may ask. Zero fields take the defaults.
type Limits struct {
	// MaxBodyBytes bounds a request body (HTTP: 413; gRPC: the largest
	// message). Default 1 MiB.
	MaxBodyBytes int
	// MaxPageSize bounds page_size (default 1000); larger is refused.
	MaxPageSize int
	// MaxConditions bounds a flag's conditions (default 100).
	MaxConditions int
	// MaxOverrides bounds a flag's override entries: distinct_ids plus
	// group keys over all its overrides (default 1000).
	MaxOverrides int
	// MaxMembers bounds the distinct_ids of one cohort member call
	// (default 10000).
	MaxMembers int
}

func (l *Limits) setDefaults() {
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxPageSize == 0 {
		l.MaxPageSize = 1000
	}
	if l.MaxConditions == 0 {
		l.MaxConditions = 100
	}
	if l.MaxOverrides == 0 {
		l.MaxOverrides = 1000
	}
	if l.MaxMembers == 0 {
		l.MaxMembers = 10000
	}
}

// Config configures a Service.
type Config struct {
	// Catalog stores the definitions. Required.
	Catalog catalog.Catalog
	// Persons is read by the previews. Optional: without it, explain needs
	// the properties in the request and blast radius is unavailable.
	Persons Persons
	// Publisher announces committed changes. Optional: nil drops them
	// (a debug log line each).
	Publisher Publisher
	// Namespace is the environment's namespace, which the subjects of
	// change notices and rollout signals are in. Default namespace.Default.
	Namespace namespace.Name
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registry receives the metrics (vexil_admin_*). Optional.
	Registry prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Limits; zero fields take their defaults.
	Limits Limits
	// BlastRadiusPage is the scan page of blast radius (default 1000). A
	// team whose rows fit one page is answered synchronously.
	BlastRadiusPage int
	// BlastRadiusQueue bounds the jobs waiting to run (default 16); a full
	// queue refuses new jobs with unavailable.
	BlastRadiusQueue int
	// Precompute reads a team's latest precompute run with its progress at
	// now; nil run and nil error when the team has none. vexil serve reads
	// the precompute worker's run states on its JetStream handle. Optional:
	// without it GetPrecomputeStatus answers precompute_unavailable (gRPC
	// UNAVAILABLE, HTTP 503).
	Precompute func(ctx context.Context, team int64, now time.Time) (*PrecomputeRun, error)
	// Webhooks stores the webhook endpoints and reports their deliveries
	// (*webhooks.Webhooks on vexil serve's JetStream). Optional: without it
	// the webhook calls answer unavailable (gRPC UNAVAILABLE, HTTP 503).
	Webhooks Webhooks
	// Backfills starts and reports cohort backfills. Optional: without it
	// the backfill calls answer unavailable and cohorts carry no backfill.
	Backfills Backfills
	// AbandonedJobAfter: when Run starts, a queued or running job not
	// updated for this long (its node stopped; running jobs update after
	// every page) is marked failed. Default 10 minutes.
	AbandonedJobAfter time.Duration
	// Admission admits the management calls of a Server (gRPC, and REST
	// through the gateway's gRPC calls) as admission.Management: past the
	// node's limit they are refused at once with RESOURCE_EXHAUSTED (HTTP
	// 503 and Retry-After). vexil serve shares one controller with the
	// evaluation service. Default: a controller of its own with
	// admission's defaults and no metrics.
	Admission *admission.Controller
	// FlagUsage gives flag reads (get, list) their status and last
	// evaluation (package usage, wired by vexil serve), and the list's
	// STALE filter its rule. Optional: without it status is absent and
	// STALE is the rollout rule alone.
	FlagUsage FlagUsage
}

// FlagUsage answers the usage status of flags.
type FlagUsage interface {
	// FlagStates returns the state of each of recs (one team's), by key.
	FlagStates(ctx context.Context, team int64, recs []catalog.FlagRecord) (map[string]FlagUsageState, error)
}

// FlagUsageState is a flag's status (ACTIVE, STALE, ARCHIVED) and last
// remote evaluation (zero: none).
type FlagUsageState struct {
	Status          string
	LastEvaluatedAt time.Time
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := c.Namespace.Validate(); err != nil {
		return fmt.Errorf("admin: config: %w", err)
	}
	switch {
	case c.Catalog == nil:
		return errors.New("admin: config: Catalog is required")
	case c.Limits.MaxBodyBytes < 0 || c.Limits.MaxPageSize < 0 || c.Limits.MaxConditions < 0 ||
		c.Limits.MaxOverrides < 0 || c.Limits.MaxMembers < 0:
		return errors.New("admin: config: negative limit")
	case c.BlastRadiusPage < 0 || c.BlastRadiusQueue < 0 || c.AbandonedJobAfter < 0:
		return errors.New("admin: config: negative blast radius setting")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits.setDefaults()
	if c.BlastRadiusPage == 0 {
		c.BlastRadiusPage = 1000
	}
	if c.BlastRadiusQueue == 0 {
		c.BlastRadiusQueue = 16
	}
	if c.AbandonedJobAfter == 0 {
		c.AbandonedJobAfter = 10 * time.Minute
	}
}
