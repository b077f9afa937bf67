package memstore

import (
	"context"
	"slices"

	"github.com/vexil-dev/vexil/store"
)

var _ store.IndexReader = (*Store)(nil)

// DistinctIDsOf implements store.IndexReader.
func (s *Store) DistinctIDsOf(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey][]string, error) {
	if err := s.rlock("distinct ids of"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make(map[store.PersonKey][]string, len(keys))
	for _, k := range keys {
		set := s.mu.index[k]
		if len(set) == 0 {
			continue
		}
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		out[k] = ids
	}
	return out, nil
}
