package pebblestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/internal/keyenc"
)

var _ store.InboxStore = (*Store)(nil)

// Inbox keys: KindSignal, team, seq (8 bytes big-endian), so a team's
// signals are contiguous in cursor order; the value is ExpiresAt and At
// (8 bytes big-endian each), the subject (keyenc string), then the data.
// KindInbox, team, 'a' holds the acknowledged position (8 bytes);
// KindInbox, team, 'f', id marks a finding added (empty value).

func signalPrefix(team int64) []byte {
	return keyenc.AppendTeam([]byte{keyenc.KindSignal}, team)
}

func signalKey(team int64, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(signalPrefix(team), seq)
}

func ackKey(team int64) []byte {
	return append(keyenc.AppendTeam([]byte{keyenc.KindInbox}, team), 'a')
}

func findingKey(team int64, id string) []byte {
	return append(append(keyenc.AppendTeam([]byte{keyenc.KindInbox}, team), 'f'), id...)
}

// PutSignals implements store.InboxStore. Written without waiting for the
// disk: a signal lost in a crash is copied again from the stream, whose
// consumer acknowledges it only after this returned.
func (s *Store) PutSignals(ctx context.Context, sigs []store.Signal) error {
	if err := s.enter("put signals"); err != nil {
		return err
	}
	defer s.leave()
	wb := s.db.NewBatch()
	defer wb.Close()
	for _, sg := range sigs {
		if err := sg.Validate(); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(sg.Subject)+len(sg.Data)+8), uint64(sg.ExpiresAt))
		v = binary.BigEndian.AppendUint64(v, uint64(sg.At))
		v = append(keyenc.AppendString(v, sg.Subject), sg.Data...)
		if err := wb.Set(signalKey(sg.Team, sg.Seq), v, nil); err != nil {
			return fmt.Errorf("pebblestore: put signals: %w", err)
		}
	}
	if err := wb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: put signals: %w", err)
	}
	return nil
}

func (s *Store) scanSignals(ctx context.Context, team int64, after uint64, fn func(seq uint64, v []byte) bool) error {
	if after == ^uint64(0) {
		return nil
	}
	prefix := signalPrefix(team)
	return s.iterate(ctx, signalKey(team, after+1), keyenc.PrefixEnd(prefix), func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+8 {
			return false, fmt.Errorf("%w: signal key %x", store.ErrCorrupt, k)
		}
		return fn(binary.BigEndian.Uint64(k[len(prefix):]), v), nil
	})
}

// ListSignals implements store.InboxStore.
func (s *Store) ListSignals(ctx context.Context, team int64, after uint64, limit int) ([]store.Signal, bool, error) {
	if err := s.enter("list signals"); err != nil {
		return nil, false, err
	}
	defer s.leave()
	var out []store.Signal
	more := false
	var bad error
	err := s.scanSignals(ctx, team, after, func(seq uint64, v []byte) bool {
		if limit > 0 && len(out) == limit {
			more = true
			return false
		}
		if len(v) < 16 {
			bad = fmt.Errorf("%w: signal value of team %d seq %d", store.ErrCorrupt, team, seq)
			return false
		}
		subj, rest, err := keyenc.String(v[16:])
		if err != nil {
			bad = fmt.Errorf("%w: signal value of team %d seq %d", store.ErrCorrupt, team, seq)
			return false
		}
		out = append(out, store.Signal{Team: team, Seq: seq, Subject: subj, At: int64(binary.BigEndian.Uint64(v[8:])),
			Data: append([]byte(nil), rest...), ExpiresAt: int64(binary.BigEndian.Uint64(v))})
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebblestore: list signals: %w", err)
	}
	return out, more, nil
}

// CountSignals implements store.InboxStore: a walk of the team's keys
// after the position (within the retention).
func (s *Store) CountSignals(ctx context.Context, team int64, after uint64) (uint64, error) {
	if err := s.enter("count signals"); err != nil {
		return 0, err
	}
	defer s.leave()
	var n uint64
	err := s.scanSignals(ctx, team, after, func(uint64, []byte) bool { n++; return true })
	if err != nil {
		return 0, fmt.Errorf("pebblestore: count signals: %w", err)
	}
	return n, nil
}

// AckSignals implements store.InboxStore: one key per team, moved forward
// under ackMu (this store has one process).
func (s *Store) AckSignals(ctx context.Context, team int64, seq uint64, expiresAt int64) error {
	if err := store.ValidAckSeq(seq); err != nil {
		return err
	}
	if err := s.enter("ack signals"); err != nil {
		return err
	}
	defer s.leave()
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	cur, err := s.acked(team)
	if err != nil || seq <= cur {
		return err
	}
	if err := s.db.Set(ackKey(team), binary.BigEndian.AppendUint64(nil, seq), pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: ack signals: %w", err)
	}
	return nil
}

func (s *Store) acked(team int64) (uint64, error) {
	v, closer, err := s.db.Get(ackKey(team))
	if err == pebble.ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebblestore: acked signals: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: acknowledged position of team %d", store.ErrCorrupt, team)
	}
	return binary.BigEndian.Uint64(v), nil
}

// AckedSignals implements store.InboxStore.
func (s *Store) AckedSignals(ctx context.Context, team int64) (uint64, error) {
	if err := s.enter("acked signals"); err != nil {
		return 0, err
	}
	defer s.leave()
	return s.acked(team)
}

// PutFinding implements store.InboxStore.
func (s *Store) PutFinding(ctx context.Context, team int64, id string) error {
	if err := store.ValidFindingID(id); err != nil {
		return err
	}
	if err := s.enter("put finding"); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Set(findingKey(team, id), nil, pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: put finding: %w", err)
	}
	return nil
}

// HasFinding implements store.InboxStore.
func (s *Store) HasFinding(ctx context.Context, team int64, id string) (bool, error) {
	if err := s.enter("has finding"); err != nil {
		return false, err
	}
	defer s.leave()
	_, closer, err := s.db.Get(findingKey(team, id))
	if err == pebble.ErrNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pebblestore: has finding: %w", err)
	}
	closer.Close()
	return true, nil
}

// SweepSignals implements store.InboxStore: it walks every signal (within
// the retention) and deletes the expired.
func (s *Store) SweepSignals(ctx context.Context, now time.Time) (int, error) {
	return s.sweepExpired(ctx, keyenc.KindSignal, "signals", now)
}
