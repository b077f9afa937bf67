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

var _ store.CountersReader = (*Store)(nil)

// CountersOf implements store.CountersReader: the keys sorted, one
// iterator seeking forward from one to the next (a point Get per key
// builds and seeks an iterator each), and only the counters copied out.
func (s *Store) CountersOf(ctx context.Context, keys []store.DistinctKey) (map[store.DistinctKey][]byte, error) {
	if err := s.enter("counters of"); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[store.DistinctKey][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	type keyed struct {
		key []byte
		k   store.DistinctKey
	}
	ks := make([]keyed, len(keys))
	for i, k := range keys {
		ks[i] = keyed{keyenc.Row(k.Team, k.DistinctID), k}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: ks[0].key,
		UpperBound: keyenc.Successor(ks[len(ks)-1].key),
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: counters of: %w", err)
	}
	defer it.Close()
	for _, k := range ks {
		if !it.SeekPrefixGE(k.key) || !bytes.Equal(it.Key(), k.key) {
			if err := it.Error(); err != nil {
				return nil, fmt.Errorf("pebblestore: counters of: %w", err)
			}
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("pebblestore: counters of: %w", err)
		}
		var v rowValue
		if err := decodeRowValue(val, &v); err != nil {
			s.m.observeError("counters_of", err)
			return nil, fmt.Errorf("pebblestore: counters of %d/%q: %w", k.k.Team, k.k.DistinctID, err)
		}
		if v.present {
			out[k.k] = bytes.Clone(v.row.Counters)
		}
	}
	return out, nil
}
