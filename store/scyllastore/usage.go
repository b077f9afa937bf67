package scyllastore

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/store"
)

var _ store.UsageStore = (*Store)(nil)

// PutUsage implements store.UsageStore: one idempotent write per row with
// its retention as TTL (schema 004_usage.cql). A row already past its
// retention is not written.
func (s *Store) PutUsage(ctx context.Context, rows []store.UsageRow) error {
	if err := s.check("put usage"); err != nil {
		return err
	}
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	now := time.Now().Unix()
	return s.parallel(ctx, len(rows), func(ctx context.Context, i int) error {
		r := rows[i]
		ttl := int64(0)
		if r.ExpiresAt != 0 {
			if ttl = r.ExpiresAt - now; ttl <= 0 {
				return nil
			}
		}
		stmt := fmt.Sprintf("INSERT INTO %s.flag_usage (team, flag, kind, bucket, node, value, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?", s.cfg.Keyspace)
		if err := s.query(ctx, stmt, r.Team, r.Flag, int8(r.Kind), r.Bucket, r.Node, r.Value, r.ExpiresAt, ttl).Exec(); err != nil {
			return fmt.Errorf("scyllastore: put usage: %w", err)
		}
		return nil
	})
}

// ScanUsage implements store.UsageStore: one partition, a clustering range.
func (s *Store) ScanUsage(ctx context.Context, team int64, flag string, kind byte, from, to int64, fn func(store.UsageRow) error) error {
	if err := s.check("scan usage"); err != nil {
		return err
	}
	if to <= from {
		return nil
	}
	stmt := fmt.Sprintf("SELECT bucket, node, value, expires_at FROM %s.flag_usage WHERE team = ? AND flag = ? AND kind = ? AND bucket >= ? AND bucket < ?", s.cfg.Keyspace)
	q := s.query(ctx, stmt, team, flag, int8(kind), from, to).PageSize(1000)
	var r store.UsageRow
	var exp *int64
	err := s.each(q, []any{&r.Bucket, &r.Node, &r.Value, &exp}, func() error {
		row := store.UsageRow{Team: team, Flag: flag, Kind: kind, Bucket: r.Bucket, Node: r.Node, Value: append([]byte(nil), r.Value...), ExpiresAt: deref(exp)}
		return fn(row)
	})
	if err != nil {
		return fmt.Errorf("scyllastore: scan usage: %w", err)
	}
	return nil
}

// SweepUsage implements store.UsageStore: rows expire by their TTL.
func (s *Store) SweepUsage(ctx context.Context, now time.Time) (int, error) {
	return 0, s.check("sweep usage")
}
