package scyllastore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/store"
)

// cursorVersion is the first byte of every scan cursor.
const cursorVersion = 's'

// encodeCursor returns the cursor that resumes a scan after id in bucket.
func encodeCursor(bucket int, id string) string {
	b := append([]byte{cursorVersion, byte(bucket)}, id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string, buckets int) (bucket int, after string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != cursorVersion || int(b[1]) >= buckets {
		return 0, "", fmt.Errorf("%w: malformed cursor %q", store.ErrInvalid, c)
	}
	return int(b[1]), string(b[2:]), nil
}

// maxScanWindow and scanWindowIDs bound how many index buckets one scan
// round reads in parallel: up to maxScanWindow (a small team's scan takes
// RowBuckets/maxScanWindow rounds, not RowBuckets), fewer for big pages so
// that one round reads at most about scanWindowIDs index entries.
const (
	maxScanWindow = 16
	scanWindowIDs = 4096
)

// ScanRows returns up to limit visible rows of team in (bucket, distinct
// id) order from cursor, through row_index (see scanIndex).
func (s *Store) ScanRows(ctx context.Context, team int64, cursor string, limit int) (_ store.RowPage, err error) {
	if err := s.check("scan rows"); err != nil {
		return store.RowPage{}, err
	}
	defer func(start time.Time) { s.m.observe(opScan, start, err) }(time.Now())
	idx := bucketIndex{
		buckets: RowBuckets,
		page: func(ctx context.Context, bucket int, after string, started bool, n int) *gocql.Query {
			if started {
				return s.query(ctx, s.q.scanRowIndex, team, bucket, after, n)
			}
			return s.query(ctx, s.q.scanRowIndexAll, team, bucket, n)
		},
	}
	rows, next, err := scanIndex(ctx, s, idx, cursor, limit, func(ctx context.Context, id string) (*store.Row, error) {
		return s.getRow(ctx, team, id)
	})
	if err != nil {
		return store.RowPage{}, fmt.Errorf("scyllastore: scan rows of %d: %w", team, err)
	}
	return store.RowPage{Rows: rows, Next: next}, nil
}

// ScanGroups returns up to limit groups of (team, typeIndex) in (bucket,
// group key) order from cursor, through group_index (see scanIndex).
func (s *Store) ScanGroups(ctx context.Context, team int64, typeIndex int, cursor string, limit int) (_ store.GroupPage, err error) {
	if err := s.check("scan groups"); err != nil {
		return store.GroupPage{}, err
	}
	defer func(start time.Time) { s.m.observe(opScanGroup, start, err) }(time.Now())
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return store.GroupPage{}, fmt.Errorf("scyllastore: scan groups: %w", err)
	}
	idx := bucketIndex{
		buckets: GroupBuckets,
		page: func(ctx context.Context, bucket int, after string, started bool, n int) *gocql.Query {
			if started {
				return s.query(ctx, s.q.scanGroupIndex, team, typeIndex, bucket, after, n)
			}
			return s.query(ctx, s.q.scanGroupIndexAll, team, typeIndex, bucket, n)
		},
	}
	groups, next, err := scanIndex(ctx, s, idx, cursor, limit, func(ctx context.Context, key string) (*store.Group, error) {
		return s.getGroup(ctx, team, typeIndex, key)
	})
	if err != nil {
		return store.GroupPage{}, fmt.Errorf("scyllastore: scan groups of %d/%d: %w", team, typeIndex, err)
	}
	return store.GroupPage{Groups: groups, Next: next}, nil
}

// bucketIndex is a bucketed clustering index (row_index, group_index):
// buckets partitions of ids, each in clustering order.
type bucketIndex struct {
	buckets int
	// page returns the query of up to n ids of bucket after after (from
	// the bucket's start when !started: "" is a valid id).
	page func(ctx context.Context, bucket int, after string, started bool, n int) *gocql.Query
}

// scanIndex returns up to limit items in (bucket, id) order from cursor,
// and the cursor of the next page ("" after the last). Each round reads
// the next few buckets in parallel, takes the first ids in order, and reads
// those items in parallel with get, skipping those for which get returns
// store.ErrNotFound (index entries of deleted or invisible items). It looks
// one item ahead, so the next cursor is "" exactly when nothing follows.
func scanIndex[T any](ctx context.Context, s *Store, idx bucketIndex, cursor string, limit int, get func(context.Context, string) (T, error)) ([]T, string, error) {
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	pos := scanPos{}
	if cursor != "" {
		var err error
		if pos.bucket, pos.after, err = decodeCursor(cursor, idx.buckets); err != nil {
			return nil, "", err
		}
		pos.started = true
	}
	var items []found[T]
	for pos.bucket < idx.buckets && len(items) <= limit {
		var (
			cands []found[T]
			err   error
		)
		cands, pos, err = scanIDs[T](ctx, s, idx, pos, limit+1-len(items))
		if err != nil {
			return nil, "", err
		}
		err = s.parallel(ctx, len(cands), func(ctx context.Context, i int) error {
			v, err := get(ctx, cands[i].id)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			cands[i].item, cands[i].ok = v, err == nil
			return err
		})
		if err != nil {
			return nil, "", err
		}
		for _, c := range cands {
			if c.ok {
				items = append(items, c)
			}
		}
	}
	next := ""
	if len(items) > limit {
		last := items[limit-1]
		next = encodeCursor(last.bucket, last.id)
		items = items[:limit]
	}
	out := make([]T, len(items))
	for i, f := range items {
		out[i] = f.item
	}
	return out, next, nil
}

// scanPos is a position in an index: after id after in bucket (from the
// bucket's start when !started: "" is a valid id).
type scanPos struct {
	bucket  int
	after   string
	started bool
}

// found is a scan candidate and, once read, its item.
type found[T any] struct {
	bucket int
	id     string
	item   T
	ok     bool
}

// scanIDs returns up to want index entries in order from pos, reading a
// window of buckets in parallel, and the position after the last returned.
func scanIDs[T any](ctx context.Context, s *Store, idx bucketIndex, pos scanPos, want int) ([]found[T], scanPos, error) {
	window := min(maxScanWindow, max(1, scanWindowIDs/want), idx.buckets-pos.bucket)
	ids := make([][]string, window)
	err := s.parallel(ctx, window, func(ctx context.Context, i int) error {
		var q *gocql.Query
		if i == 0 {
			q = idx.page(ctx, pos.bucket, pos.after, pos.started, want)
		} else {
			q = idx.page(ctx, pos.bucket+i, "", false, want)
		}
		bucketIDs := make([]string, 0, want)
		var id string
		err := s.each(q, []any{&id}, func() error {
			bucketIDs = append(bucketIDs, id)
			return nil
		})
		ids[i] = bucketIDs
		return err
	})
	if err != nil {
		return nil, pos, err
	}
	var cands []found[T]
	for i, bucketIDs := range ids {
		for _, id := range bucketIDs {
			cands = append(cands, found[T]{bucket: pos.bucket + i, id: id})
			if len(cands) == want {
				return cands, scanPos{bucket: pos.bucket + i, after: id, started: true}, nil
			}
		}
	}
	return cands, scanPos{bucket: pos.bucket + window}, nil
}

// DueExpiries reads every result_expiry shard in parallel (at <= until,
// LIMIT limit, in clustering order (at, team, target)) and merges them.
func (s *Store) DueExpiries(ctx context.Context, until int64, limit int) (_ []store.Expiry, err error) {
	if err := s.check("due expiries"); err != nil {
		return nil, err
	}
	defer func(start time.Time) { s.m.observe(opDue, start, err) }(time.Now())
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	shards := make([][]store.Expiry, ExpiryShards)
	err = s.parallel(ctx, ExpiryShards, func(ctx context.Context, shard int) error {
		var e store.Expiry
		return s.each(s.query(ctx, s.q.dueExpiries, shard, until, limit), []any{&e.At, &e.Team, &e.Target}, func() error {
			shards[shard] = append(shards[shard], e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("scyllastore: due expiries: %w", err)
	}
	all := slices.Concat(shards...)
	slices.SortFunc(all, store.CompareExpiry)
	return all[:min(len(all), limit)], nil
}

// Dump visits every stored entity with full-table scans (paged): persons,
// mappings, index entries, visible rows, groups, group types (not the
// expiry index: scheduling data). An error from fn is returned as is.
func (s *Store) Dump(ctx context.Context, fn func(store.Entity) error) error {
	if err := s.check("dump"); err != nil {
		return err
	}
	var fnErr error
	emit := func(e store.Entity) error {
		fnErr = fn(e)
		return fnErr
	}
	walk := func(what, cql string, dest []any, row func() error) error {
		err := s.each(s.query(ctx, cql), dest, row)
		switch {
		case fnErr != nil:
			return fnErr
		case err != nil:
			return fmt.Errorf("scyllastore: dump %s: %w", what, err)
		}
		return nil
	}
	var (
		team, version, revision      int64
		id, id2                      string
		personID, name               *string
		index                        int
		state, props, res, cnt, gcnt []byte
		stamp                        *int64
	)
	steps := []func() error{
		func() error {
			return walk("persons", s.q.allPersons, []any{&state}, func() error {
				if state == nil {
					return nil
				}
				p := new(store.Person)
				if err := p.UnmarshalBinary(state); err != nil {
					return err
				}
				return emit(store.Entity{Person: p})
			})
		},
		func() error {
			return walk("mappings", s.q.allMappings, []any{&team, &id, &personID, &version}, func() error {
				if personID == nil {
					return nil
				}
				return emit(store.Entity{Mapping: &store.Mapping{Team: team, DistinctID: id, PersonID: *personID, Version: version}})
			})
		},
		func() error {
			return walk("index", s.q.allIndex, []any{&team, &id, &id2}, func() error {
				return emit(store.Entity{Index: &store.IndexEntry{Team: team, PersonID: id, DistinctID: id2}})
			})
		},
		func() error {
			return walk("rows", s.q.allRows, []any{&team, &id, &personID, &version, &revision, &props, &res, &stamp, &cnt}, func() error {
				if personID == nil {
					return nil // reserved fields only: not visible
				}
				r := &store.Row{Team: team, DistinctID: id, PersonID: *personID, PersonVersion: version,
					Revision: uint64(revision), Properties: props, Results: res, ResultsStamp: deref(stamp), Counters: cnt}
				normalizeRow(r)
				return emit(store.Entity{Row: r})
			})
		},
		func() error {
			return walk("groups", s.q.allGroups, []any{&state, &res, &stamp, &gcnt}, func() error {
				if state == nil {
					return nil // results only: not visible
				}
				g, err := decodeGroup(state, res, stamp, gcnt)
				if err != nil {
					return err
				}
				return emit(store.Entity{Group: g})
			})
		},
		func() error {
			return walk("group types", s.q.allTypes, []any{&team, &index, &name}, func() error {
				if name == nil {
					return nil
				}
				return emit(store.Entity{GroupType: &store.GroupType{Team: team, Index: index, Name: *name}})
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
