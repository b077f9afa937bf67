package projector

import (
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

func TestIndexCache(t *testing.T) {
	c := newIndexCache(4)
	k := func(id string) store.PersonKey { return store.PersonKey{Team: 1, ID: id} }
	op := func(person, d string, del bool) store.IndexOp {
		return store.IndexOp{Entry: store.IndexEntry{Team: 1, PersonID: person, DistinctID: d}, Delete: del}
	}
	c.put(k("p"), []string{"a", "c"})
	stored, _ := c.get(k("p"))
	c.apply(op("p", "b", false))
	c.apply(op("p", "c", true))
	c.apply(op("p", "a", false)) // already there
	c.apply(op("q", "x", false)) // not cached: ignored
	if ids, ok := c.get(k("p")); !ok || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("p = %q, %v; want [a b]", ids, ok)
	}
	if !slices.Equal(stored, []string{"a", "c"}) {
		t.Fatalf("a slice handed out earlier changed: %q", stored)
	}
	if _, ok := c.get(k("q")); ok {
		t.Fatal("q cached from an op alone")
	}
	// Bounded: filling generations evicts the oldest entries.
	for _, id := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		c.put(k(id), nil)
	}
	if _, ok := c.get(k("p")); ok {
		t.Fatal("p survived eviction")
	}
	if n := len(c.cur) + len(c.prev); n > 2*(4/2+1) {
		t.Fatalf("%d entries held, bound exceeded", n)
	}
	if _, ok := c.get(k("7")); !ok {
		t.Fatal("newest entry evicted")
	}
	c.reset()
	if _, ok := c.get(k("7")); ok {
		t.Fatal("entry survived reset")
	}
	var nilCache *indexCache
	if _, ok := nilCache.get(k("p")); ok {
		t.Fatal("nil cache hit")
	}
}
