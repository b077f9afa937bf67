package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

// RunIndexReader checks a store's store.IndexReader against its
// DistinctIDs: persons whose ids are prefixes of one another, other teams,
// duplicates and unknown persons in one call, random index contents, and
// a closed store.
func RunIndexReader(t *testing.T, newStore NewStore) {
	t.Run("Edges", func(t *testing.T) {
		s := newStore(t)
		ir := indexReader(t, s)
		ctx := context.Background()
		if got, err := ir.DistinctIDsOf(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("DistinctIDsOf(nil) = %v, %v", got, err)
		}
		var b store.Batch
		put := func(team int64, pid string, dids ...string) {
			for _, d := range dids {
				b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: d})
			}
		}
		put(1, "p", "z", "a", "a\x00", "ü")
		put(1, "p2", "x")    // p is a prefix of p2
		put(1, "p\x00", "y") // and of p\x00 in raw bytes
		put(1, "q", "gone")
		put(2, "p", "other-team")
		put(-1, "p", "negative-team")
		mustApply(t, s, &b)
		b.Reset()
		b.DeleteIndex(store.IndexEntry{Team: 1, PersonID: "q", DistinctID: "gone"})
		mustApply(t, s, &b)
		keys := []store.PersonKey{
			{Team: 2, ID: "p"}, {Team: 1, ID: "p2"}, {Team: 1, ID: "p"}, {Team: 1, ID: "p\x00"},
			{Team: 1, ID: "p"}, {Team: 1, ID: "q"}, {Team: 1, ID: "missing"}, {Team: 3, ID: "p"},
			{Team: -1, ID: "p"},
		}
		checkIndexReader(t, s, ir, keys)
		got, _ := ir.DistinctIDsOf(ctx, keys)
		for _, k := range []store.PersonKey{{Team: 1, ID: "q"}, {Team: 1, ID: "missing"}, {Team: 3, ID: "p"}} {
			if _, ok := got[k]; ok {
				t.Errorf("DistinctIDsOf has %v, which has no entries", k)
			}
		}
		if want := []string{"a", "a\x00", "z", "ü"}; !slices.Equal(got[store.PersonKey{Team: 1, ID: "p"}], want) {
			t.Errorf("DistinctIDsOf[1/p] = %q, want %q", got[store.PersonKey{Team: 1, ID: "p"}], want)
		}
	})
	t.Run("Random", func(t *testing.T) {
		s := newStore(t)
		ir := indexReader(t, s)
		r := rand.New(rand.NewPCG(7, 11))
		const persons = 300
		var b store.Batch
		for range 2000 {
			e := store.IndexEntry{Team: int64(r.IntN(3)), PersonID: fmt.Sprintf("p%d", r.IntN(persons)), DistinctID: fmt.Sprintf("d%d", r.IntN(5000))}
			if r.IntN(4) == 0 {
				b.DeleteIndex(e)
			} else {
				b.PutIndex(e)
			}
			if b.Len() == 100 {
				mustApply(t, s, &b)
				b.Reset()
			}
		}
		mustApply(t, s, &b)
		for range 20 {
			keys := make([]store.PersonKey, r.IntN(200))
			for i := range keys {
				keys[i] = store.PersonKey{Team: int64(r.IntN(4)), ID: fmt.Sprintf("p%d", r.IntN(persons+20))}
			}
			checkIndexReader(t, s, ir, keys)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t)
		ir := indexReader(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := ir.DistinctIDsOf(context.Background(), []store.PersonKey{{Team: 1, ID: "p"}}); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("DistinctIDsOf after Close = %v, want ErrClosed", err)
		}
	})
}

func indexReader(t *testing.T, s store.Store) store.IndexReader {
	t.Helper()
	ir, ok := s.(store.IndexReader)
	if !ok {
		t.Fatalf("%T does not implement store.IndexReader", s)
	}
	return ir
}

// checkIndexReader compares DistinctIDsOf(keys) with DistinctIDs of each.
func checkIndexReader(t *testing.T, s store.Store, ir store.IndexReader, keys []store.PersonKey) {
	t.Helper()
	ctx := context.Background()
	got, err := ir.DistinctIDsOf(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[store.PersonKey]bool{}
	for _, k := range keys {
		seen[k] = true
		want, err := s.DistinctIDs(ctx, k.Team, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[k], want) {
			t.Fatalf("DistinctIDsOf[%d/%q] = %q, DistinctIDs = %q", k.Team, k.ID, got[k], want)
		}
	}
	for k := range got {
		if !seen[k] {
			t.Fatalf("DistinctIDsOf returned %v, not asked for", k)
		}
	}
}
