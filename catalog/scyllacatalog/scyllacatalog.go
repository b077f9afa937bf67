package scyllacatalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
	"github.com/vexil-dev/vexil/schema"
)

// ErrInvalidConfig reports a Config that fails Validate.
var ErrInvalidConfig = errors.New("scyllacatalog: invalid config")

// Defaults of Config.
const (
	DefaultClaimGrace      = time.Minute
	DefaultActivityRetries = 3
	DefaultSequenceRetries = 100
)

// Config configures a Catalog. Zero optional fields mean their defaults.
type Config struct {
	// Session is the connection to the cluster, shared with the caller,
	// who closes it after the Catalog. Required. Its consistency (e.g.
	// LocalQuorum) applies to every read and write.
	Session *gocql.Session
	// Keyspace holds the tables of schema/002_catalog.cql. Required.
	Keyspace string
	// SerialConsistency of the lightweight transactions. Default Serial:
	// keys stay unique across datacenters.
	SerialConsistency gocql.Consistency
	// ClaimGrace is how old a flag key claim naming a missing, deleted or
	// renamed flag must be before another flag takes the key over.
	// Default DefaultClaimGrace.
	ClaimGrace time.Duration
	// ActivityRetries is how often the activity append is retried after
	// its change committed. Default DefaultActivityRetries.
	ActivityRetries int
	// SequenceRetries bounds the attempts to advance an id sequence under
	// contention. Default DefaultSequenceRetries.
	SequenceRetries int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger is scoped to the catalog. Default: discard.
	Logger *slog.Logger
	// Registerer receives the catalog's metrics (vexil_catalog_*).
	// Default: none.
	Registerer prometheus.Registerer
}

// Validate checks the Config; errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Session == nil {
		return fmt.Errorf("%w: no session", ErrInvalidConfig)
	}
	if err := (schema.Config{Keyspace: c.Keyspace}).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch c.SerialConsistency {
	case 0, gocql.Serial, gocql.LocalSerial:
	default:
		return fmt.Errorf("%w: serial consistency %v", ErrInvalidConfig, c.SerialConsistency)
	}
	if c.ClaimGrace < 0 || c.ActivityRetries < 0 || c.SequenceRetries < 0 {
		return fmt.Errorf("%w: negative grace or retries", ErrInvalidConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.SerialConsistency == 0 {
		c.SerialConsistency = gocql.Serial
	}
	if c.ClaimGrace == 0 {
		c.ClaimGrace = DefaultClaimGrace
	}
	if c.ActivityRetries == 0 {
		c.ActivityRetries = DefaultActivityRetries
	}
	if c.SequenceRetries == 0 {
		c.SequenceRetries = DefaultSequenceRetries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Catalog is a catalog.Catalog on ScyllaDB or Cassandra.
type Catalog struct {
	cfg    Config
	sess   *gocql.Session
	log    *slog.Logger
	q      queries
	m      *metrics
	ids    records.EntryIDs
	closed atomic.Bool
}

var _ catalog.Catalog = (*Catalog)(nil)

// New returns a catalog on cfg.Session. The schema must have been applied
// (schema.Apply).
func New(cfg Config) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("scyllacatalog: metrics: %w", err)
	}
	return &Catalog{cfg: cfg, sess: cfg.Session, log: cfg.Logger, q: newQueries(cfg.Keyspace), m: m}, nil
}

// Close marks the catalog closed; the session stays open (its owner closes
// it). Later calls return catalog.ErrClosed.
func (c *Catalog) Close() error {
	c.closed.Store(true)
	return nil
}

func (c *Catalog) enter(ctx context.Context) error {
	if c.closed.Load() {
		return catalog.ErrClosed
	}
	return ctx.Err()
}

func (c *Catalog) now() time.Time { return c.cfg.Now().UTC() }

// query builds a plain statement. Reads and blind upserts are idempotent.
func (c *Catalog) query(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return c.sess.Query(stmt, args...).WithContext(ctx).Idempotent(true)
}

// cas runs a conditional statement on a kind of record and reports whether
// it applied; when it did not, the current row is in the returned map.
// Conditional statements are not idempotent: the driver does not retry
// them.
func (c *Catalog) cas(ctx context.Context, kind, stmt string, args ...any) (bool, map[string]any, error) {
	cur := map[string]any{}
	applied, err := c.sess.Query(stmt, args...).WithContext(ctx).
		SerialConsistency(c.cfg.SerialConsistency).MapScanCAS(cur)
	if err != nil {
		return false, nil, err
	}
	if !applied {
		c.m.notApplied.WithLabelValues(kind).Inc()
	}
	return applied, cur, nil
}

// each pages through a query until the paging state is empty, scanning
// every row into dest and calling fn, until fn returns false or an error.
func each(q *gocql.Query, dest []any, fn func() (bool, error)) error {
	var state []byte
	for {
		iter := q.PageState(state).Iter()
		for iter.Scan(dest...) {
			more, err := fn()
			if err != nil || !more {
				_ = iter.Close()
				return err
			}
		}
		state = iter.PageState()
		if err := iter.Close(); err != nil {
			return err
		}
		if len(state) == 0 {
			return nil
		}
	}
}

// getData reads the data column of one row into v; gocql.ErrNotFound
// becomes catalog.ErrNotFound.
func (c *Catalog) getData(ctx context.Context, v any, stmt string, args ...any) error {
	var data string
	if err := c.query(ctx, stmt, args...).Scan(&data); err != nil {
		if errors.Is(err, gocql.ErrNotFound) {
			return catalog.ErrNotFound
		}
		return err
	}
	if err := json.Unmarshal([]byte(data), v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// listData reads the data column of every row of a query.
func listData[T any](ctx context.Context, c *Catalog, stmt string, args ...any) ([]T, error) {
	var out []T
	var data string
	err := each(c.query(ctx, stmt, args...), []any{&data}, func() (bool, error) {
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return false, fmt.Errorf("decode: %w", err)
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}

// nextID advances a sequence by LWT and returns the new value.
func (c *Catalog) nextID(ctx context.Context, name string) (int64, error) {
	var cur int64
	err := c.query(ctx, c.q.getSeq, name).Scan(&cur)
	known := err == nil
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, fmt.Errorf("sequence %s: %w", name, err)
	}
	for range c.cfg.SequenceRetries {
		var (
			applied bool
			row     map[string]any
		)
		if known {
			applied, row, err = c.cas(ctx, "sequence", c.q.advanceSeq, cur+1, name, cur)
		} else {
			applied, row, err = c.cas(ctx, "sequence", c.q.startSeq, name, int64(1))
			cur = 0
		}
		if err != nil {
			return 0, fmt.Errorf("sequence %s: %w", name, err)
		}
		if applied {
			return cur + 1, nil
		}
		v, ok := row["value"].(int64)
		if !ok {
			return 0, fmt.Errorf("sequence %s: no value in %v", name, row)
		}
		cur, known = v, true
	}
	return 0, fmt.Errorf("sequence %s: still contended after %d attempts", name, c.cfg.SequenceRetries)
}

// appendActivity writes entries after the change they record committed.
// It retries; a failure is logged, not returned, since the change stands.
func (c *Catalog) appendActivity(ctx context.Context, entries ...catalog.ActivityEntry) {
	for _, en := range entries {
		data, err := json.Marshal(en)
		if err == nil {
			for attempt := range c.cfg.ActivityRetries + 1 {
				b := c.sess.Batch(gocql.LoggedBatch).WithContext(context.WithoutCancel(ctx))
				b.Query(c.q.putActivity, en.TeamID, en.ID, string(data))
				b.Query(c.q.putItemActivity, en.TeamID, string(en.Scope), en.ItemID, en.ID, string(data))
				if err = b.Exec(); err == nil {
					break
				}
				c.log.Warn("activity append failed", "team", en.TeamID, "entry", en.ID, "attempt", attempt+1, "err", err)
			}
		}
		if err != nil {
			c.m.activityLost.Inc()
			c.log.Error("activity entry lost after its change committed", "team", en.TeamID, "entry", en.ID,
				"scope", en.Scope, "item", en.ItemID, "action", en.Action, "err", err)
		}
	}
}

func conflict(what string, want, have int64) error {
	return fmt.Errorf("%s: version %d, stored %d: %w", what, want, have, catalog.ErrConflict)
}

// notApplied is the error of an update whose condition failed.
func notApplied(what string, want int64, row map[string]any) error {
	if v, ok := row["version"].(int64); ok {
		return conflict(what, want, v)
	}
	return fmt.Errorf("%s: %w", what, catalog.ErrConflict)
}

func (c *Catalog) requireTeam(ctx context.Context, id int64) error {
	if err := records.CheckTeamID(id); err != nil {
		return err
	}
	_, err := c.getTeam(ctx, id)
	return err
}
