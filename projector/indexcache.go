package projector

import (
	"slices"

	"github.com/vexil-dev/vexil/store"
)

// indexCache keeps the person → distinct ids index of recently changed
// persons, so that fanning a property change out to rows need not read it
// from the store each time. The projector is the index's only writer: an
// entry read from the store stays exact as long as every index write of a
// committed batch is applied to it. Only the applier goroutine uses it.
//
// It holds at most max persons in two generations: a lookup in the older
// one promotes the entry, and when the current generation is full the
// older one is dropped.
type indexCache struct {
	max       int
	cur, prev map[store.PersonKey][]string
}

func newIndexCache(max int) *indexCache {
	c := &indexCache{max: max}
	c.reset()
	return c
}

// reset forgets everything (at the start of a run, after a failed write).
func (c *indexCache) reset() {
	c.cur, c.prev = map[store.PersonKey][]string{}, nil
}

func (c *indexCache) get(k store.PersonKey) ([]string, bool) {
	if c == nil {
		return nil, false
	}
	if ids, ok := c.cur[k]; ok {
		return ids, true
	}
	if ids, ok := c.prev[k]; ok {
		c.put(k, ids)
		return ids, true
	}
	return nil, false
}

// put records the sorted distinct ids of a person. The slice is owned by
// the cache from now on.
func (c *indexCache) put(k store.PersonKey, ids []string) {
	if c == nil {
		return
	}
	if len(c.cur) >= c.max/2+1 {
		c.prev, c.cur = c.cur, make(map[store.PersonKey][]string, len(c.cur))
	}
	c.cur[k] = ids
}

// apply updates a cached entry with a committed index write.
func (c *indexCache) apply(op store.IndexOp) {
	k := store.PersonKey{Team: op.Entry.Team, ID: op.Entry.PersonID}
	ids, ok := c.get(k)
	if !ok {
		return
	}
	i, found := slices.BinarySearch(ids, op.Entry.DistinctID)
	switch {
	case op.Delete && found:
		ids = slices.Delete(slices.Clone(ids), i, i+1)
	case !op.Delete && !found:
		ids = slices.Insert(slices.Clone(ids), i, op.Entry.DistinctID)
	default:
		return
	}
	c.put(k, ids)
}
