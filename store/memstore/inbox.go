package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/store"
)

var _ store.InboxStore = (*Store)(nil)

type inboxTable struct {
	mu       sync.Mutex
	signals  map[int64]map[uint64]store.Signal // team → seq → signal
	acked    map[int64]uint64
	findings map[int64]map[string]struct{}
}

func (s *Store) inboxOpen(op string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.closed {
		return fmt.Errorf("memstore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// PutSignals implements store.InboxStore.
func (s *Store) PutSignals(ctx context.Context, sigs []store.Signal) error {
	if err := s.inboxOpen("put signals"); err != nil {
		return err
	}
	for _, sg := range sigs {
		if err := sg.Validate(); err != nil {
			return err
		}
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.signals == nil {
		t.signals = map[int64]map[uint64]store.Signal{}
	}
	for _, sg := range sigs {
		m := t.signals[sg.Team]
		if m == nil {
			m = map[uint64]store.Signal{}
			t.signals[sg.Team] = m
		}
		sg.Data = slices.Clone(sg.Data)
		m[sg.Seq] = sg
	}
	return nil
}

// ListSignals implements store.InboxStore.
func (s *Store) ListSignals(ctx context.Context, team int64, after uint64, limit int) ([]store.Signal, bool, error) {
	if err := s.inboxOpen("list signals"); err != nil {
		return nil, false, err
	}
	t := &s.inbox
	t.mu.Lock()
	var out []store.Signal
	for seq, sg := range t.signals[team] {
		if seq > after {
			sg.Data = slices.Clone(sg.Data)
			out = append(out, sg)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Signal) int { return cmp.Compare(a.Seq, b.Seq) })
	if limit > 0 && len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// CountSignals implements store.InboxStore.
func (s *Store) CountSignals(ctx context.Context, team int64, after uint64) (uint64, error) {
	if err := s.inboxOpen("count signals"); err != nil {
		return 0, err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for seq := range t.signals[team] {
		if seq > after {
			n++
		}
	}
	return n, nil
}

// AckSignals implements store.InboxStore.
func (s *Store) AckSignals(ctx context.Context, team int64, seq uint64, expiresAt int64) error {
	if err := s.inboxOpen("ack signals"); err != nil {
		return err
	}
	if err := store.ValidAckSeq(seq); err != nil {
		return err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.acked == nil {
		t.acked = map[int64]uint64{}
	}
	t.acked[team] = max(t.acked[team], seq)
	return nil
}

// AckedSignals implements store.InboxStore.
func (s *Store) AckedSignals(ctx context.Context, team int64) (uint64, error) {
	if err := s.inboxOpen("acked signals"); err != nil {
		return 0, err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked[team], nil
}

// PutFinding implements store.InboxStore.
func (s *Store) PutFinding(ctx context.Context, team int64, id string) error {
	if err := s.inboxOpen("put finding"); err != nil {
		return err
	}
	if err := store.ValidFindingID(id); err != nil {
		return err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.findings == nil {
		t.findings = map[int64]map[string]struct{}{}
	}
	if t.findings[team] == nil {
		t.findings[team] = map[string]struct{}{}
	}
	t.findings[team][id] = struct{}{}
	return nil
}

// HasFinding implements store.InboxStore.
func (s *Store) HasFinding(ctx context.Context, team int64, id string) (bool, error) {
	if err := s.inboxOpen("has finding"); err != nil {
		return false, err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.findings[team][id]
	return ok, nil
}

// SweepSignals implements store.InboxStore.
func (s *Store) SweepSignals(ctx context.Context, now time.Time) (int, error) {
	if err := s.inboxOpen("sweep signals"); err != nil {
		return 0, err
	}
	t := &s.inbox
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.signals {
		for seq, sg := range m {
			if sg.Expired(now) {
				delete(m, seq)
				n++
			}
		}
	}
	return n, nil
}
