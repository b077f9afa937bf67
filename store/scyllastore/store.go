package scyllastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/schema"
	"github.com/vexil-dev/vexil/store"
)

// Store is a store.Store on ScyllaDB or Cassandra. Its methods are safe for
// concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	sess   *gocql.Session
	q      queries
	m      *metrics
	hedge  *hedger // nil: no hedging
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the cluster, applies the schema when cfg.ApplySchema is
// set or else checks that it is current (errors wrap schema.ErrNotApplied
// or schema.ErrChecksumMismatch), and returns the Store. The caller must
// Close it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	policy := newHedgePolicy(gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy()))
	var h *hedger
	var delay func() time.Duration
	if cfg.HedgeAttempts > 0 {
		h = &hedger{
			attempts: cfg.HedgeAttempts,
			est:      newDelayEstimator(cfg.HedgePercentile, cfg.HedgeMinDelay, cfg.HedgeMaxDelay),
			budget:   newHedgeBudget(cfg.HedgeBudget),
			policy:   policy,
		}
		delay = h.est.Delay
	}
	m, err := newMetrics(cfg.Registerer, delay)
	if err != nil {
		return nil, err
	}
	if h != nil {
		h.m = m
	}
	sess, err := cfg.cluster(policy).CreateSession()
	if err != nil {
		return nil, fmt.Errorf("scyllastore: connect to %v: %w", cfg.Hosts, err)
	}
	scfg := schema.Config{Keyspace: cfg.Keyspace, ReplicationFactor: cfg.ReplicationFactor, Logger: cfg.Logger}
	if cfg.ApplySchema {
		_, err = schema.Apply(ctx, sess, scfg)
	} else {
		err = schema.Check(ctx, sess, scfg)
	}
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("scyllastore: open: %w", err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, sess: sess, q: newQueries(cfg.Keyspace), m: m, hedge: h}
	return s, nil
}

// Close closes the session. Calls after Close return store.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("scyllastore: close: %w", store.ErrClosed)
	}
	s.sess.Close()
	return nil
}

func (s *Store) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("scyllastore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// query builds a statement; idempotent, so the retry policy may retry it.
func (s *Store) query(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return s.sess.Query(stmt, args...).WithContext(ctx).Idempotent(true)
}

// queries holds every statement, keyspace-qualified, built once. gocql
// prepares each on first use per connection and caches it; binding
// arguments to prepared statements also gives the token-aware policy the
// routing key.
type queries struct {
	getRow, getGroup, getPerson, getMapping, distinctIDs, groupTypes string
	putPerson, putDeletedPerson, putMapping, putIndex, delIndex      string
	putRowPerson, setResults, delResults, setCounters, replaceRow    string
	replaceRowPerson, delRow                                         string
	putRowIndex, delRowIndex, scanRowIndex, scanRowIndexAll          string
	putGroup, putGroupType, setGroupResults, setGroupCounters        string
	putGroupIndex, scanGroupIndex, scanGroupIndexAll                 string
	putExpiry, delExpiry, dueExpiries                                string
	allPersons, allMappings, allIndex, allRows, allGroups, allTypes  string
}

func newQueries(ks string) queries {
	f := func(format string) string { return fmt.Sprintf(format, ks) }
	return queries{
		getRow:      f("SELECT person_id, person_version, revision, properties, results, WRITETIME(results), counters FROM %s.rows WHERE team = ? AND distinct_id = ?"),
		getGroup:    f("SELECT state, results, WRITETIME(results), counters FROM %s.groups WHERE team = ? AND group_type_index = ? AND group_key = ?"),
		getPerson:   f("SELECT state FROM %s.persons WHERE team = ? AND person_id = ?"),
		getMapping:  f("SELECT person_id, version FROM %s.distinct_ids WHERE team = ? AND distinct_id = ?"),
		distinctIDs: f("SELECT distinct_id FROM %s.person_distinct_ids WHERE team = ? AND person_id = ?"),
		groupTypes:  f("SELECT group_type_index, name FROM %s.group_types WHERE team = ?"),

		putPerson:        f("UPDATE %s.persons SET version = ?, state = ? WHERE team = ? AND person_id = ?"),
		putDeletedPerson: f("UPDATE %s.persons SET version = ?, delete_version = ?, state = ? WHERE team = ? AND person_id = ?"),
		putMapping:       f("UPDATE %s.distinct_ids SET person_id = ?, version = ? WHERE team = ? AND distinct_id = ?"),
		putIndex:         f("INSERT INTO %s.person_distinct_ids (team, person_id, distinct_id) VALUES (?, ?, ?)"),
		delIndex:         f("DELETE FROM %s.person_distinct_ids WHERE team = ? AND person_id = ? AND distinct_id = ?"),

		putRowPerson:     f("UPDATE %s.rows SET person_id = ?, person_version = ?, revision = ?, properties = ? WHERE team = ? AND distinct_id = ?"),
		setResults:       f("UPDATE %s.rows USING TIMESTAMP ? SET results = ? WHERE team = ? AND distinct_id = ?"),
		delResults:       f("DELETE results FROM %s.rows USING TIMESTAMP ? WHERE team = ? AND distinct_id = ?"),
		setCounters:      f("UPDATE %s.rows SET counters = ? WHERE team = ? AND distinct_id = ?"),
		replaceRow:       f("UPDATE %s.rows SET person_id = ?, person_version = ?, revision = ?, properties = ?, results = ?, counters = ? WHERE team = ? AND distinct_id = ?"),
		replaceRowPerson: f("UPDATE %s.rows SET person_id = ?, person_version = ?, revision = ?, properties = ?, counters = ? WHERE team = ? AND distinct_id = ?"),
		delRow:           f("DELETE FROM %s.rows WHERE team = ? AND distinct_id = ?"),

		putRowIndex:     f("INSERT INTO %s.row_index (team, bucket, distinct_id) VALUES (?, ?, ?)"),
		delRowIndex:     f("DELETE FROM %s.row_index WHERE team = ? AND bucket = ? AND distinct_id = ?"),
		scanRowIndex:    f("SELECT distinct_id FROM %s.row_index WHERE team = ? AND bucket = ? AND distinct_id > ? LIMIT ?"),
		scanRowIndexAll: f("SELECT distinct_id FROM %s.row_index WHERE team = ? AND bucket = ? LIMIT ?"),

		putGroup:         f("UPDATE %s.groups SET version = ?, state = ? WHERE team = ? AND group_type_index = ? AND group_key = ?"),
		putGroupType:     f("UPDATE %s.group_types SET name = ? WHERE team = ? AND group_type_index = ?"),
		setGroupResults:  f("UPDATE %s.groups USING TIMESTAMP ? SET results = ? WHERE team = ? AND group_type_index = ? AND group_key = ?"),
		setGroupCounters: f("UPDATE %s.groups SET counters = ? WHERE team = ? AND group_type_index = ? AND group_key = ?"),

		putGroupIndex:     f("INSERT INTO %s.group_index (team, group_type_index, bucket, group_key) VALUES (?, ?, ?, ?)"),
		scanGroupIndex:    f("SELECT group_key FROM %s.group_index WHERE team = ? AND group_type_index = ? AND bucket = ? AND group_key > ? LIMIT ?"),
		scanGroupIndexAll: f("SELECT group_key FROM %s.group_index WHERE team = ? AND group_type_index = ? AND bucket = ? LIMIT ?"),

		putExpiry:   f("INSERT INTO %s.result_expiry (shard, at, team, target) VALUES (?, ?, ?, ?) USING TTL ?"),
		delExpiry:   f("DELETE FROM %s.result_expiry WHERE shard = ? AND at = ? AND team = ? AND target = ?"),
		dueExpiries: f("SELECT at, team, target FROM %s.result_expiry WHERE shard = ? AND at <= ? LIMIT ?"),

		allPersons:  f("SELECT state FROM %s.persons"),
		allMappings: f("SELECT team, distinct_id, person_id, version FROM %s.distinct_ids"),
		allIndex:    f("SELECT team, person_id, distinct_id FROM %s.person_distinct_ids"),
		allRows:     f("SELECT team, distinct_id, person_id, person_version, revision, properties, results, WRITETIME(results), counters FROM %s.rows"),
		allGroups:   f("SELECT state, results, WRITETIME(results), counters FROM %s.groups"),
		allTypes:    f("SELECT team, group_type_index, name FROM %s.group_types"),
	}
}

// GetRow returns the row of (team, distinctID): one single-partition read.
func (s *Store) GetRow(ctx context.Context, team int64, distinctID string) (*store.Row, error) {
	if err := s.check("get row"); err != nil {
		return nil, err
	}
	start := time.Now()
	r, err := hedged(ctx, s.hedge, opGetRow, func(ctx context.Context) (*store.Row, error) {
		return s.getRow(ctx, team, distinctID)
	})
	s.m.observe(opGetRow, start, err)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get row %d/%q: %w", team, distinctID, err)
	}
	return r, nil
}

func (s *Store) getRow(ctx context.Context, team int64, distinctID string) (*store.Row, error) {
	if !utf8.ValidString(distinctID) {
		return nil, store.ErrNotFound
	}
	var (
		personID   *string
		personVer  int64
		revision   int64
		properties []byte
		stamp      *int64
		r          = &store.Row{Team: team, DistinctID: distinctID}
	)
	err := s.query(ctx, s.q.getRow, team, distinctID).Scan(&personID, &personVer, &revision, &properties, &r.Results, &stamp, &r.Counters)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, err
	case personID == nil:
		return nil, store.ErrNotFound // reserved fields only: invisible
	}
	r.PersonID, r.PersonVersion, r.Revision, r.Properties = *personID, personVer, uint64(revision), properties
	r.ResultsStamp = deref(stamp)
	normalizeRow(r)
	return r, nil
}

// deref returns *p, 0 for nil (WRITETIME of a null cell).
func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// normalizeRow maps what the driver returns to the store's conventions:
// empty reserved fields are nil, and properties are never nil.
func normalizeRow(r *store.Row) {
	if len(r.Results) == 0 {
		r.Results = nil
	}
	if len(r.Counters) == 0 {
		r.Counters = nil
	}
	if r.Properties == nil {
		r.Properties = []byte{}
	}
}

// GetGroup returns the group (team, typeIndex, key).
func (s *Store) GetGroup(ctx context.Context, team int64, typeIndex int, key string) (_ *store.Group, err error) {
	if err := s.check("get group"); err != nil {
		return nil, err
	}
	defer func(start time.Time) { s.m.observe(opGetGroup, start, err) }(time.Now())
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return nil, fmt.Errorf("scyllastore: get group: %w", err)
	}
	if !utf8.ValidString(key) {
		return nil, fmt.Errorf("scyllastore: get group %d/%d/%q: %w", team, typeIndex, key, store.ErrNotFound)
	}
	g, err := hedged(ctx, s.hedge, opGetGroup, func(ctx context.Context) (*store.Group, error) {
		return s.getGroup(ctx, team, typeIndex, key)
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get group %d/%d/%q: %w", team, typeIndex, key, err)
	}
	return g, nil
}

func (s *Store) getGroup(ctx context.Context, team int64, typeIndex int, key string) (*store.Group, error) {
	var (
		state, results, counters []byte
		stamp                    *int64
	)
	err := s.query(ctx, s.q.getGroup, team, typeIndex, key).Scan(&state, &results, &stamp, &counters)
	switch {
	case errors.Is(err, gocql.ErrNotFound), err == nil && state == nil:
		return nil, store.ErrNotFound // absent, or results only: invisible
	case err != nil:
		return nil, err
	}
	return decodeGroup(state, results, stamp, counters)
}

// decodeGroup decodes a group's state and adds its results and counters
// columns.
func decodeGroup(state, results []byte, stamp *int64, counters []byte) (*store.Group, error) {
	g := new(store.Group)
	if err := g.UnmarshalBinary(state); err != nil {
		return nil, err
	}
	g.Results, g.ResultsStamp = nilIfEmpty(results), deref(stamp)
	g.Counters = nilIfEmpty(counters)
	return g, nil
}

// GetPerson returns the canonical state of a person.
func (s *Store) GetPerson(ctx context.Context, team int64, personID string) (*store.Person, error) {
	if err := s.check("get person"); err != nil {
		return nil, err
	}
	p, err := s.getPerson(ctx, team, personID)
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get person %d/%q: %w", team, personID, err)
	}
	return p, nil
}

func (s *Store) getPerson(ctx context.Context, team int64, personID string) (*store.Person, error) {
	if !utf8.ValidString(personID) {
		return nil, store.ErrNotFound
	}
	var state []byte
	err := s.query(ctx, s.q.getPerson, team, personID).Scan(&state)
	switch {
	case errors.Is(err, gocql.ErrNotFound), err == nil && state == nil:
		return nil, store.ErrNotFound
	case err != nil:
		return nil, err
	}
	p := new(store.Person)
	if err := p.UnmarshalBinary(state); err != nil {
		return nil, err
	}
	return p, nil
}

// GetPersons reads the persons among keys in parallel point reads.
func (s *Store) GetPersons(ctx context.Context, keys []store.PersonKey) (_ map[store.PersonKey]*store.Person, err error) {
	if err := s.check("get persons"); err != nil {
		return nil, err
	}
	defer func(start time.Time) { s.m.observe(opGetPerson, start, err) }(time.Now())
	keys = dedup(keys)
	found := make([]*store.Person, len(keys))
	err = s.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		p, err := s.getPerson(ctx, keys[i].Team, keys[i].ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found[i] = p
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get persons: %w", err)
	}
	out := make(map[store.PersonKey]*store.Person, len(keys))
	for i, p := range found {
		if p != nil {
			out[keys[i]] = p
		}
	}
	return out, nil
}

// GetMapping returns a distinct id's mapping register.
func (s *Store) GetMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error) {
	if err := s.check("get mapping"); err != nil {
		return store.Mapping{}, err
	}
	m, err := s.getMapping(ctx, team, distinctID)
	if err != nil {
		return store.Mapping{}, fmt.Errorf("scyllastore: get mapping %d/%q: %w", team, distinctID, err)
	}
	return m, nil
}

func (s *Store) getMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error) {
	if !utf8.ValidString(distinctID) {
		return store.Mapping{}, store.ErrNotFound
	}
	m := store.Mapping{Team: team, DistinctID: distinctID}
	var personID *string
	err := s.query(ctx, s.q.getMapping, team, distinctID).Scan(&personID, &m.Version)
	switch {
	case errors.Is(err, gocql.ErrNotFound), err == nil && personID == nil:
		return store.Mapping{}, store.ErrNotFound
	case err != nil:
		return store.Mapping{}, err
	}
	m.PersonID = *personID
	return m, nil
}

// GetMappings reads the mappings among keys in parallel point reads.
func (s *Store) GetMappings(ctx context.Context, keys []store.DistinctKey) (_ map[store.DistinctKey]store.Mapping, err error) {
	if err := s.check("get mappings"); err != nil {
		return nil, err
	}
	defer func(start time.Time) { s.m.observe(opGetMap, start, err) }(time.Now())
	keys = dedup(keys)
	found := make([]store.Mapping, len(keys))
	ok := make([]bool, len(keys))
	err = s.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		m, err := s.getMapping(ctx, keys[i].Team, keys[i].DistinctID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found[i], ok[i] = m, err == nil
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get mappings: %w", err)
	}
	out := make(map[store.DistinctKey]store.Mapping, len(keys))
	for i := range keys {
		if ok[i] {
			out[keys[i]] = found[i]
		}
	}
	return out, nil
}

// DistinctIDs returns the index entries of a person, sorted bytewise (the
// clustering order of a text column is its UTF-8 byte order).
func (s *Store) DistinctIDs(ctx context.Context, team int64, personID string) ([]string, error) {
	if err := s.check("distinct ids"); err != nil {
		return nil, err
	}
	if !utf8.ValidString(personID) {
		return nil, nil
	}
	var (
		ids []string
		id  string
	)
	err := s.each(s.query(ctx, s.q.distinctIDs, team, personID), []any{&id}, func() error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: distinct ids of %d/%q: %w", team, personID, err)
	}
	return ids, nil
}

// GetGroupTypes returns a team's group types sorted by index (one
// partition, clustered by index).
func (s *Store) GetGroupTypes(ctx context.Context, team int64) ([]store.GroupType, error) {
	if err := s.check("get group types"); err != nil {
		return nil, err
	}
	var (
		out   []store.GroupType
		index int
		name  *string
	)
	err := s.each(s.query(ctx, s.q.groupTypes, team), []any{&index, &name}, func() error {
		if name != nil {
			out = append(out, store.GroupType{Team: team, Index: index, Name: *name})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: get group types of %d: %w", team, err)
	}
	return out, nil
}

// each runs q page by page until the paging state is empty, scanning every
// row into dest and calling row after each; an error from row stops the
// walk and is returned as is. Pages may be short or empty with more to come
// (ScyllaDB), so only the paging state decides the end.
func (s *Store) each(q *gocql.Query, dest []any, row func() error) error {
	var state []byte
	for {
		it := q.PageSize(s.cfg.PageSize).PageState(state).Iter()
		for it.Scan(dest...) {
			if err := row(); err != nil {
				_ = it.Close()
				return err
			}
		}
		state = it.PageState()
		if err := it.Close(); err != nil {
			return err
		}
		if len(state) == 0 {
			return nil
		}
	}
}

// parallel calls fn(ctx, i) for i in [0, n), at most ReadConcurrency at a
// time, and returns the first error.
func (s *Store) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.ReadConcurrency)
	for i := range n {
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}

func dedup[K comparable](keys []K) []K {
	seen := make(map[K]struct{}, len(keys))
	out := make([]K, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return slices.Clip(out)
}

// Session returns the driver session, for schema tools and tests. It is
// closed by Close.
func (s *Store) Session() *gocql.Session { return s.sess }
