package scyllastore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/store"
)

// cursorVersion is the first byte of every ScanRows cursor.
const cursorVersion = 's'

// encodeCursor returns the cursor that resumes a scan after distinctID in
// bucket.
func encodeCursor(bucket int, distinctID string) string {
	b := append([]byte{cursorVersion, byte(bucket)}, distinctID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string) (bucket int, after string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != cursorVersion || int(b[1]) >= RowBuckets {
		return 0, "", fmt.Errorf("%w: malformed cursor %q", store.ErrInvalid, c)
	}
	return int(b[1]), string(b[2:]), nil
}

// maxScanWindow and scanWindowIDs bound how many row_index buckets one scan
// round reads in parallel: up to maxScanWindow (a small team's scan takes
// RowBuckets/maxScanWindow rounds, not RowBuckets), fewer for big pages so
// that one round reads at most about scanWindowIDs index entries.
const (
	maxScanWindow = 16
	scanWindowIDs = 4096
)

// ScanRows returns up to limit visible rows of team in (bucket, distinct
// id) order from cursor. Each round reads the next few row_index buckets in
// parallel, takes the first ids in order, and reads those rows in parallel,
// skipping rows that are not visible. It looks one visible row ahead, so
// Next is "" exactly when nothing follows.
func (s *Store) ScanRows(ctx context.Context, team int64, cursor string, limit int) (_ store.RowPage, err error) {
	if err := s.check("scan rows"); err != nil {
		return store.RowPage{}, err
	}
	defer func(start time.Time) { s.m.observe(opScan, start, err) }(time.Now())
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	pos := scanPos{}
	if cursor != "" {
		var err error
		if pos.bucket, pos.after, err = decodeCursor(cursor); err != nil {
			return store.RowPage{}, fmt.Errorf("scyllastore: scan rows: %w", err)
		}
		pos.started = true
	}
	var rows []found
	for pos.bucket < RowBuckets && len(rows) <= limit {
		var (
			cands []found
			err   error
		)
		cands, pos, err = s.scanIDs(ctx, team, pos, limit+1-len(rows))
		if err != nil {
			return store.RowPage{}, fmt.Errorf("scyllastore: scan rows of %d: %w", team, err)
		}
		err = s.parallel(ctx, len(cands), func(ctx context.Context, i int) error {
			r, err := s.getRow(ctx, team, cands[i].id)
			if errors.Is(err, store.ErrNotFound) {
				return nil // index entry of a row deleted or not visible
			}
			cands[i].row = r
			return err
		})
		if err != nil {
			return store.RowPage{}, fmt.Errorf("scyllastore: scan rows of %d: %w", team, err)
		}
		for _, c := range cands {
			if c.row != nil {
				rows = append(rows, c)
			}
		}
	}
	page := store.RowPage{}
	if len(rows) > limit {
		last := rows[limit-1]
		page.Next = encodeCursor(last.bucket, last.id)
		rows = rows[:limit]
	}
	page.Rows = make([]*store.Row, len(rows))
	for i, f := range rows {
		page.Rows[i] = f.row
	}
	return page, nil
}

// scanPos is a position in a team's row_index: after distinct id after in
// bucket (from the bucket's start when !started: "" is a valid id).
type scanPos struct {
	bucket  int
	after   string
	started bool
}

// found is a scan candidate and, once read, its visible row.
type found struct {
	bucket int
	id     string
	row    *store.Row
}

// scanIDs returns up to want index entries in order from pos, reading a
// window of buckets in parallel, and the position after the last returned.
func (s *Store) scanIDs(ctx context.Context, team int64, pos scanPos, want int) ([]found, scanPos, error) {
	window := min(maxScanWindow, max(1, scanWindowIDs/want), RowBuckets-pos.bucket)
	ids := make([][]string, window)
	err := s.parallel(ctx, window, func(ctx context.Context, i int) error {
		var err error
		if i == 0 {
			ids[i], err = s.indexPage(ctx, team, pos.bucket, pos.after, pos.started, want)
		} else {
			ids[i], err = s.indexPage(ctx, team, pos.bucket+i, "", false, want)
		}
		return err
	})
	if err != nil {
		return nil, pos, err
	}
	var cands []found
	for i, bucketIDs := range ids {
		for _, id := range bucketIDs {
			cands = append(cands, found{bucket: pos.bucket + i, id: id})
			if len(cands) == want {
				return cands, scanPos{bucket: pos.bucket + i, after: id, started: true}, nil
			}
		}
	}
	return cands, scanPos{bucket: pos.bucket + window}, nil
}

// indexPage returns up to n distinct ids of one row_index bucket after
// after (from the start when !started: "" is a valid distinct id).
func (s *Store) indexPage(ctx context.Context, team int64, bucket int, after string, started bool, n int) ([]string, error) {
	var q *gocql.Query
	if started {
		q = s.query(ctx, s.q.scanRowIndex, team, bucket, after, n)
	} else {
		q = s.query(ctx, s.q.scanRowIndexAll, team, bucket, n)
	}
	ids := make([]string, 0, n)
	var id string
	err := s.each(q, []any{&id}, func() error {
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// Dump visits every stored entity with full-table scans (paged): persons,
// mappings, index entries, visible rows, groups, group types. An error from
// fn is returned as is.
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
		team, version, revision int64
		id, id2                 string
		personID, name          *string
		index                   int
		state, props, res, cnt  []byte
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
			return walk("rows", s.q.allRows, []any{&team, &id, &personID, &version, &revision, &props, &res, &cnt}, func() error {
				if personID == nil {
					return nil // reserved fields only: not visible
				}
				r := &store.Row{Team: team, DistinctID: id, PersonID: *personID, PersonVersion: version,
					Revision: uint64(revision), Properties: props, Results: res, Counters: cnt}
				normalizeRow(r)
				return emit(store.Entity{Row: r})
			})
		},
		func() error {
			return walk("groups", s.q.allGroups, []any{&state}, func() error {
				if state == nil {
					return nil
				}
				g := new(store.Group)
				if err := g.UnmarshalBinary(state); err != nil {
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
