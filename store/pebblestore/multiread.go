package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/internal/keyenc"
)

var _ store.IndexReader = (*Store)(nil)

// DistinctIDsOf implements store.IndexReader: one iterator over the sorted
// index prefixes, moving forward from one person to the next, so that
// neighbouring persons share the data blocks read (one DistinctIDs call
// opens an iterator and seeks every level).
func (s *Store) DistinctIDsOf(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey][]string, error) {
	if err := s.enter("distinct ids of"); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[store.PersonKey][]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	type prefixed struct {
		prefix []byte
		k      store.PersonKey
	}
	ps := make([]prefixed, len(keys))
	for i, k := range keys {
		ps[i] = prefixed{keyenc.IndexPrefix(k.Team, k.ID), k}
	}
	slices.SortFunc(ps, func(a, b prefixed) int { return bytes.Compare(a.prefix, b.prefix) })
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: ps[0].prefix,
		UpperBound: keyenc.PrefixEnd(ps[len(ps)-1].prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: distinct ids of: %w", err)
	}
	valid := false
	for i, p := range ps {
		if i > 0 && bytes.Equal(p.prefix, ps[i-1].prefix) {
			continue // a duplicate key
		}
		// Index prefixes end with a terminated string, so none is a prefix
		// of another: where the walk over the previous person stopped is
		// at or before this one's first entry. Seek only when before.
		if !valid || bytes.Compare(it.Key(), p.prefix) < 0 {
			valid = it.SeekGE(p.prefix)
		}
		var ids []string
		for ; valid && bytes.HasPrefix(it.Key(), p.prefix); valid = it.Next() {
			id, _, err := keyenc.String(it.Key()[len(p.prefix):])
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("pebblestore: distinct ids of: %w: index key %x", store.ErrCorrupt, it.Key())
			}
			ids = append(ids, id)
		}
		if ids != nil {
			out[p.k] = ids
		}
		if !valid {
			if err := it.Error(); err != nil {
				it.Close()
				return nil, fmt.Errorf("pebblestore: distinct ids of: %w", err)
			}
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: distinct ids of: %w", err)
	}
	return out, nil
}
