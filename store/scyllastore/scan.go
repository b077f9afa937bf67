package scyllastore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

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

// ScanRows returns up to limit visible rows of team in (bucket, distinct
// id) order from cursor. It reads the row_index buckets from the cursor's
// on and each row by its key; it looks one visible row ahead, so Next is ""
// exactly when nothing follows.
func (s *Store) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	if err := s.check("scan rows"); err != nil {
		return store.RowPage{}, err
	}
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	bucket, after, started := 0, "", false
	if cursor != "" {
		var err error
		if bucket, after, err = decodeCursor(cursor); err != nil {
			return store.RowPage{}, fmt.Errorf("scyllastore: scan rows: %w", err)
		}
		started = true
	}
	type found struct {
		row    *store.Row
		bucket int
	}
	var rows []found
	for ; bucket < RowBuckets && len(rows) <= limit; bucket, after, started = bucket+1, "", false {
		for len(rows) <= limit {
			want := limit + 1 - len(rows)
			ids, err := s.indexPage(ctx, team, bucket, after, started, want)
			if err != nil {
				return store.RowPage{}, fmt.Errorf("scyllastore: scan rows of %d: %w", team, err)
			}
			got := make([]*store.Row, len(ids))
			err = s.parallel(ctx, len(ids), func(ctx context.Context, i int) error {
				r, err := s.getRow(ctx, team, ids[i])
				if errors.Is(err, store.ErrNotFound) {
					return nil // index entry of a row deleted or not visible
				}
				got[i] = r
				return err
			})
			if err != nil {
				return store.RowPage{}, fmt.Errorf("scyllastore: scan rows of %d: %w", team, err)
			}
			for _, r := range got {
				if r != nil {
					rows = append(rows, found{r, bucket})
				}
			}
			if len(ids) < want {
				break // bucket exhausted
			}
			after, started = ids[len(ids)-1], true
		}
	}
	page := store.RowPage{}
	if len(rows) > limit {
		last := rows[limit-1]
		page.Next = encodeCursor(last.bucket, last.row.DistinctID)
		rows = rows[:limit]
	}
	page.Rows = make([]*store.Row, len(rows))
	for i, f := range rows {
		page.Rows[i] = f.row
	}
	return page, nil
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
