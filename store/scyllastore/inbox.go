package scyllastore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/store"
)

var _ store.InboxStore = (*Store)(nil)

// PutSignals implements store.InboxStore: one idempotent write per signal
// with its retention as TTL (schema 007_inbox.cql). A signal already past
// its retention is not written.
func (s *Store) PutSignals(ctx context.Context, sigs []store.Signal) error {
	if err := s.check("put signals"); err != nil {
		return err
	}
	for _, sg := range sigs {
		if err := sg.Validate(); err != nil {
			return err
		}
	}
	now := time.Now().Unix()
	stmt := fmt.Sprintf("INSERT INTO %s.inbox_signals (team, seq, subject, at, data, expires_at) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?", s.cfg.Keyspace)
	return s.parallel(ctx, len(sigs), func(ctx context.Context, i int) error {
		sg := sigs[i]
		ttl, ok := ttlOf(sg.ExpiresAt, now)
		if !ok {
			return nil
		}
		if err := s.query(ctx, stmt, sg.Team, int64(sg.Seq), sg.Subject, sg.At, sg.Data, sg.ExpiresAt, ttl).Exec(); err != nil {
			return fmt.Errorf("scyllastore: put signals: %w", err)
		}
		return nil
	})
}

// ttlOf turns an expiry (Unix seconds, 0: none) into a TTL; ok is false
// for an expiry already past.
func ttlOf(expiresAt, now int64) (int64, bool) {
	if expiresAt == 0 {
		return 0, true
	}
	ttl := expiresAt - now
	return ttl, ttl > 0
}

func clampSeq(after uint64) int64 {
	return int64(min(after, math.MaxInt64))
}

// ListSignals implements store.InboxStore: one partition, a clustering
// range, limit+1 rows to tell whether more follow.
func (s *Store) ListSignals(ctx context.Context, team int64, after uint64, limit int) ([]store.Signal, bool, error) {
	if err := s.check("list signals"); err != nil {
		return nil, false, err
	}
	stmt := fmt.Sprintf("SELECT seq, subject, at, data, expires_at FROM %s.inbox_signals WHERE team = ? AND seq > ?", s.cfg.Keyspace)
	args := []any{team, clampSeq(after)}
	if limit > 0 {
		stmt += " LIMIT ?"
		args = append(args, limit+1)
	}
	var out []store.Signal
	var seq, at int64
	var subject string
	var data []byte
	var exp *int64
	err := s.each(s.query(ctx, stmt, args...), []any{&seq, &subject, &at, &data, &exp}, func() error {
		out = append(out, store.Signal{Team: team, Seq: uint64(seq), Subject: subject, At: at,
			Data: append([]byte(nil), data...), ExpiresAt: deref(exp)})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("scyllastore: list signals: %w", err)
	}
	if limit > 0 && len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// CountSignals implements store.InboxStore: a count over one partition's
// clustering range (the team's signals within the retention).
func (s *Store) CountSignals(ctx context.Context, team int64, after uint64) (uint64, error) {
	if err := s.check("count signals"); err != nil {
		return 0, err
	}
	var n int64
	stmt := fmt.Sprintf("SELECT COUNT(*) FROM %s.inbox_signals WHERE team = ? AND seq > ?", s.cfg.Keyspace)
	if err := s.query(ctx, stmt, team, clampSeq(after)).Scan(&n); err != nil {
		return 0, fmt.Errorf("scyllastore: count signals: %w", err)
	}
	return uint64(n), nil
}

// AckSignals implements store.InboxStore: each acknowledgement is its own
// clustering row (team, seq) and AckedSignals reads the highest, so
// concurrent writers need no lightweight transaction and a position never
// moves back. The row's TTL is the retention of the signals it covers.
func (s *Store) AckSignals(ctx context.Context, team int64, seq uint64, expiresAt int64) error {
	if err := s.check("ack signals"); err != nil {
		return err
	}
	if err := store.ValidAckSeq(seq); err != nil {
		return err
	}
	ttl, ok := ttlOf(expiresAt, time.Now().Unix())
	if !ok {
		return nil
	}
	stmt := fmt.Sprintf("INSERT INTO %s.inbox_acks (team, seq) VALUES (?, ?) USING TTL ?", s.cfg.Keyspace)
	if err := s.query(ctx, stmt, team, int64(seq), ttl).Exec(); err != nil {
		return fmt.Errorf("scyllastore: ack signals: %w", err)
	}
	return nil
}

// AckedSignals implements store.InboxStore: the first row of the
// partition, in descending order.
func (s *Store) AckedSignals(ctx context.Context, team int64) (uint64, error) {
	if err := s.check("acked signals"); err != nil {
		return 0, err
	}
	var seq int64
	stmt := fmt.Sprintf("SELECT seq FROM %s.inbox_acks WHERE team = ? LIMIT 1", s.cfg.Keyspace)
	err := s.query(ctx, stmt, team).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("scyllastore: acked signals: %w", err)
	}
	return uint64(seq), nil
}

// PutFinding implements store.InboxStore.
func (s *Store) PutFinding(ctx context.Context, team int64, id string) error {
	if err := s.check("put finding"); err != nil {
		return err
	}
	if err := store.ValidFindingID(id); err != nil {
		return err
	}
	stmt := fmt.Sprintf("INSERT INTO %s.inbox_findings (team, id) VALUES (?, ?)", s.cfg.Keyspace)
	if err := s.query(ctx, stmt, team, id).Exec(); err != nil {
		return fmt.Errorf("scyllastore: put finding: %w", err)
	}
	return nil
}

// HasFinding implements store.InboxStore.
func (s *Store) HasFinding(ctx context.Context, team int64, id string) (bool, error) {
	if err := s.check("has finding"); err != nil {
		return false, err
	}
	var got string
	stmt := fmt.Sprintf("SELECT id FROM %s.inbox_findings WHERE team = ? AND id = ?", s.cfg.Keyspace)
	err := s.query(ctx, stmt, team, id).Scan(&got)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("scyllastore: has finding: %w", err)
	}
	return true, nil
}

// SweepSignals implements store.InboxStore: signals expire by their TTL.
func (s *Store) SweepSignals(ctx context.Context, now time.Time) (int, error) {
	return 0, s.check("sweep signals")
}
