package projector

import (
	"context"
	"fmt"
	"slices"

	"github.com/vexil-dev/vexil/store"
)

// CheckIndexCache reports the first person whose cached distinct ids
// differ from st's index (nil when every cached entry is exact). Call it
// only after p's run ended with every batch it prepared written.
func CheckIndexCache(ctx context.Context, p *Projector, st store.Store) error {
	if p.cache == nil {
		return nil
	}
	for _, gen := range []map[store.PersonKey][]string{p.cache.cur, p.cache.prev} {
		for k, cached := range gen {
			ids, err := st.DistinctIDs(ctx, k.Team, k.ID)
			if err != nil {
				return err
			}
			if !slices.Equal(ids, cached) && len(ids)+len(cached) > 0 {
				return fmt.Errorf("index cache of %d/%s = %q, the store has %q", k.Team, k.ID, cached, ids)
			}
		}
	}
	return nil
}
