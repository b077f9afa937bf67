package storetest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/storetest"
)

// reversed is a store whose Dump visits entities in reverse order.
type reversed struct{ store.Store }

func (r reversed) Dump(ctx context.Context, fn func(store.Entity) error) error {
	var all []store.Entity
	if err := r.Store.Dump(ctx, func(e store.Entity) error { all = append(all, e); return nil }); err != nil {
		return err
	}
	slices.Reverse(all)
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func TestDigestIgnoresDumpOrder(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	var b store.Batch
	p := store.NewPerson(1, "p")
	p.ApplyUpdate(store.PersonUpdate{Version: 1, Set: map[string][]byte{"a": []byte("1")}})
	b.PutPerson(p)
	b.PutMapping(store.Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: 1})
	b.PutIndex(store.IndexEntry{Team: 1, PersonID: "p", DistinctID: "d"})
	r, _ := store.DeriveRow(store.Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: 1}, p)
	b.PutRow(r)
	b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "company"})
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	d1, err := storetest.Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := storetest.Digest(ctx, reversed{s})
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatal("digest depends on the Dump order")
	}
	empty, _ := storetest.Digest(ctx, memstore.New())
	if empty == d1 {
		t.Fatal("digest of content equals the empty digest")
	}
	n, err := storetest.Counts(ctx, s)
	if err != nil || n["person"] != 1 || n["mapping"] != 1 || n["index"] != 1 || n["row"] != 1 || n["grouptype"] != 1 || n["group"] != 0 {
		t.Fatalf("Counts = %v, %v", n, err)
	}
}
