package scyllastore

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/store"
)

var _ store.SLOStore = (*Store)(nil)

// PutSLO implements store.SLOStore: one idempotent write per row with its
// retention as TTL (schema 005_slo.cql). A row already past its retention
// is not written.
func (s *Store) PutSLO(ctx context.Context, rows []store.SLORow) error {
	if err := s.check("put slo"); err != nil {
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
		stmt := fmt.Sprintf("INSERT INTO %s.slo_rollups (series, day, minute, node, value, expires_at) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?", s.cfg.Keyspace)
		if err := s.query(ctx, stmt, r.Series, r.Minute/86400, r.Minute, r.Node, r.Value, r.ExpiresAt, ttl).Exec(); err != nil {
			return fmt.Errorf("scyllastore: put slo: %w", err)
		}
		return nil
	})
}

// ScanSLO implements store.SLOStore: one partition per UTC day of the
// range, a clustering range in each.
func (s *Store) ScanSLO(ctx context.Context, series string, from, to int64, fn func(store.SLORow) error) error {
	if err := s.check("scan slo"); err != nil {
		return err
	}
	if from < 0 {
		from = 0
	}
	if to <= from {
		return nil
	}
	stmt := fmt.Sprintf("SELECT minute, node, value, expires_at FROM %s.slo_rollups WHERE series = ? AND day = ? AND minute >= ? AND minute < ?", s.cfg.Keyspace)
	for day := from / 86400; day <= (to-1)/86400; day++ {
		q := s.query(ctx, stmt, series, day, from, to).PageSize(1440)
		var r store.SLORow
		var exp *int64
		err := s.each(q, []any{&r.Minute, &r.Node, &r.Value, &exp}, func() error {
			return fn(store.SLORow{Series: series, Minute: r.Minute, Node: r.Node, Value: append([]byte(nil), r.Value...), ExpiresAt: deref(exp)})
		})
		if err != nil {
			return fmt.Errorf("scyllastore: scan slo: %w", err)
		}
	}
	return nil
}

// SweepSLO implements store.SLOStore: rows expire by their TTL.
func (s *Store) SweepSLO(ctx context.Context, now time.Time) (int, error) {
	return 0, s.check("sweep slo")
}
