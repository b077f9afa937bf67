package scyllastore

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/store"
)

// RowBuckets is the number of row_index partitions per team (see
// schema/001_store.cql). Fixed forever: stored data depends on it.
const RowBuckets = 64

// Limits of one UNLOGGED batch: well below the 128 KiB warning and 1 MiB
// failure thresholds of ScyllaDB (and of the test Cassandra's yaml).
const (
	maxBatchStatements = 100
	maxBatchBytes      = 96 << 10
)

// GroupBuckets is the number of group_index partitions per (team, group
// type), ExpiryShards the number of result_expiry partitions (see
// schema/001_store.cql). Fixed forever: stored data depends on them.
const (
	GroupBuckets = 16
	ExpiryShards = 32
)

// ExpiryTTLGrace is how long an expiry entry outlives its At: entries
// nobody deletes vanish then (the TTL of the write).
const ExpiryTTLGrace = 7 * 24 * time.Hour

// maxTTL is the largest TTL both databases accept (20 years).
const maxTTL = 20 * 365 * 24 * 3600

// rowBucket returns the row_index bucket of a distinct id.
func rowBucket(distinctID string) int {
	return int(xxhash.Sum64String(distinctID) % RowBuckets)
}

// groupBucket returns the group_index bucket of a group key.
func groupBucket(key string) int {
	return int(xxhash.Sum64String(key) % GroupBuckets)
}

// expiryShard returns the result_expiry partition of an entry.
func expiryShard(team int64, target string) int {
	d := xxhash.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(team))
	d.Write(b[:])
	d.WriteString(target)
	return int(d.Sum64() % ExpiryShards)
}

// expiryTTL returns the TTL in seconds of an entry due at (Unix ms) written
// at now: until at, plus ExpiryTTLGrace.
func expiryTTL(at int64, now time.Time) int {
	var until int64 // seconds until at, 0 when due
	if ms := now.UnixMilli(); at > ms {
		until = min((at-ms)/1000, maxTTL) // at-ms cannot overflow: ms > 0
	}
	return int(min(until+int64(ExpiryTTLGrace/time.Second), maxTTL))
}

// clock is the process-wide source of write timestamps (µs): strictly
// increasing, and equal to the wall clock unless more than one timestamp was
// taken within one microsecond. Process-wide rather than per Store so that a
// store reopened in the same process (a restarted projector) still writes
// after the one it replaces.
var clock atomic.Int64

func nextTimestamp() int64 {
	for {
		last := clock.Load()
		ts := max(time.Now().UnixMicro(), last+1)
		if clock.CompareAndSwap(last, ts) {
			return ts
		}
	}
}

// stmt is one statement of a partition group.
type stmt struct {
	cql  string
	args []any
	size int // approximate bytes, for batch splitting
}

// partition is the set of statements that go to one partition.
type partition struct {
	key   string // table family and key, for grouping only
	stmts []stmt
}

// Apply writes b: one UNLOGGED batch per partition (split when large),
// partitions in parallel, all at one timestamp. It returns when every
// statement was acknowledged at the configured consistency.
func (s *Store) Apply(ctx context.Context, b *store.Batch) (err error) {
	if err := s.check("apply"); err != nil {
		return err
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	parts, err := s.plan(b)
	if err != nil {
		return fmt.Errorf("scyllastore: apply: %w", err)
	}
	start := time.Now()
	defer func() { s.m.observe(opApply, start, err) }()
	ts := nextTimestamp()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.WriteConcurrency)
	for _, p := range parts {
		for _, chunk := range split(p.stmts) {
			g.Go(func() error { return s.exec(gctx, chunk, ts) })
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("scyllastore: apply %d writes: %w", b.Len(), err)
	}
	s.m.writes.Add(float64(b.Len()))
	return nil
}

// exec runs the statements of one partition: alone, or as an UNLOGGED batch
// (single partition, so no batch log is needed for atomicity per replica).
func (s *Store) exec(ctx context.Context, stmts []stmt, ts int64) error {
	if len(stmts) == 1 {
		return s.query(ctx, stmts[0].cql, stmts[0].args...).WithTimestamp(ts).Exec()
	}
	batch := s.sess.Batch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(ts)
	batch.SetConsistency(s.cfg.Consistency)
	for _, st := range stmts {
		batch.Entries = append(batch.Entries, gocql.BatchEntry{Stmt: st.cql, Args: st.args, Idempotent: true})
	}
	return batch.Exec()
}

// split cuts a partition's statements into batches within the limits.
func split(stmts []stmt) [][]stmt {
	var out [][]stmt
	start, bytes := 0, 0
	for i, st := range stmts {
		if i > start && (i-start >= maxBatchStatements || bytes+st.size > maxBatchBytes) {
			out = append(out, stmts[start:i])
			start, bytes = i, 0
		}
		bytes += st.size
	}
	return append(out, stmts[start:])
}

// plan turns the batch into statements grouped by partition. It checks that
// every identifier is valid UTF-8 (CQL text), so that nothing is written
// when one is not.
func (s *Store) plan(b *store.Batch) ([]*partition, error) {
	var (
		parts []*partition
		byKey = map[string]*partition{}
	)
	add := func(key string, cql string, size int, args ...any) {
		p, ok := byKey[key]
		if !ok {
			p = &partition{key: key}
			byKey[key] = p
			parts = append(parts, p)
		}
		p.stmts = append(p.stmts, stmt{cql: cql, args: args, size: size + 64})
	}
	personKey := func(team int64, id string) string { return fmt.Sprintf("p%d\x00%s", team, id) }
	distinctKey := func(team int64, id string) string { return fmt.Sprintf("d%d\x00%s", team, id) }
	bucketKey := func(team int64, bucket int) string { return fmt.Sprintf("b%d\x00%d", team, bucket) }

	for _, p := range b.Persons() {
		if err := checkText("person id", p.ID); err != nil {
			return nil, err
		}
		state, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		// A person is never undeleted, so an alive person's write leaves
		// delete_version alone instead of writing a null (a tombstone).
		if p.Deleted {
			add(personKey(p.Team, p.ID), s.q.putDeletedPerson, len(state), p.Version, p.DeleteVersion, state, p.Team, p.ID)
		} else {
			add(personKey(p.Team, p.ID), s.q.putPerson, len(state), p.Version, state, p.Team, p.ID)
		}
	}
	for _, op := range b.Index() {
		e := op.Entry
		if err := checkText("index entry", e.PersonID, e.DistinctID); err != nil {
			return nil, err
		}
		if op.Delete {
			add(personKey(e.Team, e.PersonID), s.q.delIndex, len(e.DistinctID), e.Team, e.PersonID, e.DistinctID)
		} else {
			add(personKey(e.Team, e.PersonID), s.q.putIndex, len(e.DistinctID), e.Team, e.PersonID, e.DistinctID)
		}
	}
	for _, m := range b.Mappings() {
		if err := checkText("mapping", m.DistinctID, m.PersonID); err != nil {
			return nil, err
		}
		add(distinctKey(m.Team, m.DistinctID), s.q.putMapping, len(m.PersonID), m.PersonID, m.Version, m.Team, m.DistinctID)
	}
	for _, op := range b.Rows() {
		if err := s.planRow(op, add, distinctKey, bucketKey); err != nil {
			return nil, err
		}
	}
	groupKey := func(team int64, typeIndex int, key string) string {
		return fmt.Sprintf("g%d\x00%d\x00%s", team, typeIndex, key)
	}
	for _, g := range b.Groups() {
		if err := checkText("group key", g.Key); err != nil {
			return nil, err
		}
		// The state carries no results or counters: they live in their
		// own columns.
		q := *g
		q.Results, q.ResultsStamp, q.Counters = nil, 0, nil
		state, err := q.MarshalBinary()
		if err != nil {
			return nil, err
		}
		add(groupKey(g.Team, g.TypeIndex, g.Key), s.q.putGroup, len(state), g.Version, state, g.Team, g.TypeIndex, g.Key)
		bucket := groupBucket(g.Key)
		add(fmt.Sprintf("G%d\x00%d\x00%d", g.Team, g.TypeIndex, bucket), s.q.putGroupIndex, len(g.Key), g.Team, g.TypeIndex, bucket, g.Key)
	}
	for _, op := range b.GroupResults() {
		k := op.Group
		if err := checkText("group key", k.Key); err != nil {
			return nil, err
		}
		add(groupKey(k.Team, k.TypeIndex, k.Key), s.q.setGroupResults, len(op.Results), op.Stamp, resultsValue(op.Results), k.Team, k.TypeIndex, k.Key)
	}
	for _, op := range b.GroupCounters() {
		k := op.Group
		if err := checkText("group key", k.Key); err != nil {
			return nil, err
		}
		add(groupKey(k.Team, k.TypeIndex, k.Key), s.q.setGroupCounters, len(op.Counters), nilIfEmpty(op.Counters), k.Team, k.TypeIndex, k.Key)
	}
	now := time.Now()
	for _, op := range b.Expiries() {
		e := op.Expiry
		if err := checkText("expiry target", e.Target); err != nil {
			return nil, err
		}
		shard := expiryShard(e.Team, e.Target)
		if op.Delete {
			add(fmt.Sprintf("x%d", shard), s.q.delExpiry, len(e.Target), shard, e.At, e.Team, e.Target)
		} else {
			add(fmt.Sprintf("x%d", shard), s.q.putExpiry, len(e.Target), shard, e.At, e.Team, e.Target, expiryTTL(e.At, now))
		}
	}
	for _, gt := range b.GroupTypes() {
		if err := checkText("group type name", gt.Name); err != nil {
			return nil, err
		}
		add(fmt.Sprintf("t%d", gt.Team), s.q.putGroupType, len(gt.Name), gt.Name, gt.Team, gt.Index)
	}
	return parts, nil
}

// planRow adds the statements of one merged row operation (see
// store.RowOp for the order Delete, Put, SetResults, SetCounters).
func (s *Store) planRow(op store.RowOp, add func(string, string, int, ...any), distinctKey func(int64, string) string, bucketKey func(int64, int) string) error {
	if err := checkText("row distinct id", op.DistinctID); err != nil {
		return err
	}
	if op.Put != nil {
		if err := checkText("row person id", op.Put.PersonID); err != nil {
			return err
		}
	}
	key := distinctKey(op.Team, op.DistinctID)
	bucket := rowBucket(op.DistinctID)
	counters := nilIfEmpty(op.Counters)
	switch {
	case op.Delete && op.Put == nil && !op.SetResults && !op.SetCounters:
		add(key, s.q.delRow, 0, op.Team, op.DistinctID)
		add(bucketKey(op.Team, bucket), s.q.delRowIndex, len(op.DistinctID), op.Team, bucket, op.DistinctID)
		return nil
	case op.Delete:
		// Delete, then writes: every column is written at this Apply's
		// timestamp (null where the delete leaves nothing), which replaces
		// the row exactly like a delete followed by the writes would. A
		// row DELETE at the same timestamp would shadow the writes.
		var (
			personID            *string
			personVer, revision *int64
			props               []byte
		)
		if op.Put != nil {
			rev := int64(op.Put.Revision)
			personID, personVer, revision, props = &op.Put.PersonID, &op.Put.PersonVersion, &rev, op.Put.Properties
		}
		if !op.SetCounters {
			counters = nil
		}
		if op.SetResults {
			// Results are versioned: the delete drops the results stamped
			// before the new ones, which are written at their stamp. Results
			// stamped at or after it survive when they win by ResultsWin
			// (knowing more needs a read): a delete and a results write of
			// one row in one batch keep the winner of the old and the new.
			add(key, s.q.replaceRowPerson, len(props)+len(counters), personID, personVer, revision, props, counters, op.Team, op.DistinctID)
			add(key, s.q.delResults, 0, op.ResultsStamp-1, op.Team, op.DistinctID)
			add(key, s.q.setResults, len(op.Results), op.ResultsStamp, resultsValue(op.Results), op.Team, op.DistinctID)
		} else {
			add(key, s.q.replaceRow, len(props)+len(counters), personID, personVer, revision, props, nil, counters, op.Team, op.DistinctID)
		}
		if op.Put != nil {
			add(bucketKey(op.Team, bucket), s.q.putRowIndex, len(op.DistinctID), op.Team, bucket, op.DistinctID)
		} else {
			add(bucketKey(op.Team, bucket), s.q.delRowIndex, len(op.DistinctID), op.Team, bucket, op.DistinctID)
		}
		return nil
	}
	if op.Put != nil {
		r := op.Put
		props := r.Properties
		if props == nil {
			props = []byte{}
		}
		add(key, s.q.putRowPerson, len(props), r.PersonID, r.PersonVersion, int64(r.Revision), props, op.Team, op.DistinctID)
		add(bucketKey(op.Team, bucket), s.q.putRowIndex, len(op.DistinctID), op.Team, bucket, op.DistinctID)
	}
	if op.SetResults {
		add(key, s.q.setResults, len(op.Results), op.ResultsStamp, resultsValue(op.Results), op.Team, op.DistinctID)
	}
	if op.SetCounters {
		add(key, s.q.setCounters, len(counters), counters, op.Team, op.DistinctID)
	}
	return nil
}

// resultsValue is the value of a results write: never null, so that the
// cell keeps its timestamp (a null is a tombstone, and WRITETIME of a
// tombstone reads as null): empty results are an empty blob.
func resultsValue(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nilIfEmpty stores empty reserved fields as null: the store does not tell
// an empty Results from an absent one.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// checkText rejects identifiers that CQL text cannot hold.
func checkText(what string, vals ...string) error {
	for _, v := range vals {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: %s %q is not valid UTF-8", store.ErrInvalid, what, v)
		}
	}
	return nil
}
