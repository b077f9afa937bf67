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

var _ store.UsageStore = (*Store)(nil)

type usageKey struct {
	team   int64
	flag   string
	kind   byte
	bucket int64
	node   string
}

type usageTable struct {
	mu   sync.Mutex
	rows map[usageKey]store.UsageRow
}

// PutUsage implements store.UsageStore.
func (s *Store) PutUsage(ctx context.Context, rows []store.UsageRow) error {
	if err := s.usageOpen(); err != nil {
		return err
	}
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	t := &s.usage
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rows == nil {
		t.rows = map[usageKey]store.UsageRow{}
	}
	for _, r := range rows {
		r.Value = slices.Clone(r.Value)
		t.rows[usageKey{r.Team, r.Flag, r.Kind, r.Bucket, r.Node}] = r
	}
	return nil
}

// ScanUsage implements store.UsageStore.
func (s *Store) ScanUsage(ctx context.Context, team int64, flag string, kind byte, from, to int64, fn func(store.UsageRow) error) error {
	if err := s.usageOpen(); err != nil {
		return err
	}
	t := &s.usage
	t.mu.Lock()
	var out []store.UsageRow
	for k, r := range t.rows {
		if k.team == team && k.flag == flag && k.kind == kind && k.bucket >= from && k.bucket < to {
			r.Value = slices.Clone(r.Value)
			out = append(out, r)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b store.UsageRow) int {
		return cmp.Or(cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.Node, b.Node))
	})
	for _, r := range out {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// SweepUsage implements store.UsageStore.
func (s *Store) SweepUsage(ctx context.Context, now time.Time) (int, error) {
	if err := s.usageOpen(); err != nil {
		return 0, err
	}
	t := &s.usage
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, r := range t.rows {
		if r.Expired(now) {
			delete(t.rows, k)
			n++
		}
	}
	return n, nil
}

func (s *Store) usageOpen() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mu.closed {
		return fmt.Errorf("memstore: usage: %w", store.ErrClosed)
	}
	return nil
}
