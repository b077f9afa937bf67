package pebblestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/storetest"
)

// randomBatch returns a batch of mixed writes over a small key space, so
// that later batches overwrite and delete what earlier ones wrote.
func randomBatch(r *rand.Rand) *store.Batch {
	var b store.Batch
	for range 1 + r.IntN(40) {
		team := int64(1 + r.IntN(2))
		did := fmt.Sprintf("d%d", r.IntN(60))
		pid := fmt.Sprintf("p%d", r.IntN(20))
		v := int64(r.IntN(1000))
		switch r.IntN(8) {
		case 0:
			p := store.NewPerson(team, pid)
			p.ApplyUpdate(store.PersonUpdate{Version: v, Set: map[string][]byte{"k": fmt.Appendf(nil, "%d", v)}})
			if r.IntN(4) == 0 {
				p.ApplyDelete(v + 1)
			}
			b.PutPerson(p)
		case 1:
			b.PutMapping(store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: v})
		case 2:
			b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
		case 3:
			b.DeleteIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
		case 4:
			props := fmt.Appendf(nil, `{"v":%d}`, v)
			b.PutRow(&store.Row{Team: team, DistinctID: did, PersonID: pid, PersonVersion: v, Properties: props, Revision: store.Revision(props)})
		case 5:
			b.SetResults(team, did, fmt.Appendf(nil, "r%d", v), v+1)
		case 6:
			b.DeleteRow(team, did)
		default:
			g := store.NewGroup(team, r.IntN(5), fmt.Sprintf("g%d", r.IntN(5)))
			g.ApplyUpdate(store.GroupUpdate{Version: v, Set: map[string][]byte{"v": fmt.Appendf(nil, "%d", v)}})
			b.PutGroup(g)
			b.PutGroupType(store.GroupType{Team: team, Index: g.TypeIndex, Name: fmt.Sprintf("t%d", r.IntN(2))})
		}
	}
	return &b
}

// TestCrashRecovery takes crash images of the filesystem (with a random
// share of unsynced data kept) while batches are being applied. Each image
// must recover to the state after exactly some prefix of the batches, and
// that prefix must include every batch whose Apply had returned: batches
// are atomic, and durable when Apply returns.
func TestCrashRecovery(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	const n = 80
	batches := make([]*store.Batch, n)
	for i := range batches {
		batches[i] = randomBatch(r)
	}
	// The digest after each prefix, from the reference store.
	ref := memstore.New()
	prefix := map[[32]byte]int{}
	d, _ := storetest.Digest(ctx, ref)
	prefix[d] = 0
	for i, b := range batches {
		if err := ref.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		d, err := storetest.Digest(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := prefix[d]; !dup {
			prefix[d] = i + 1
		}
	}

	fs := vfs.NewCrashableMem()
	s, err := pebblestore.Open(pebblestore.Config{Dir: "db", FS: fs, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	check := func(clone *vfs.MemFS, lo, hi int) {
		t.Helper()
		c, err := pebblestore.Open(pebblestore.Config{Dir: "db", FS: clone})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		d, err := storetest.Digest(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		k, ok := prefix[d]
		if !ok {
			t.Fatalf("a crash image recovered to a state that is no prefix of the batches (expected %d..%d)", lo, hi)
		}
		if k < lo || k > hi {
			t.Fatalf("a crash image recovered the first %d batches, want %d..%d", k, lo, hi)
		}
	}
	// For each batch: start its Apply, take a crash image while it runs
	// (anywhere between two filesystem operations), wait for it, take
	// another.
	start, done := make(chan *store.Batch), make(chan error)
	go func() {
		for b := range start {
			done <- s.Apply(ctx, b)
		}
	}()
	defer close(start)
	for i, b := range batches {
		start <- b
		during := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: rand.New(rand.NewPCG(uint64(i), 1))})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		after := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: rand.New(rand.NewPCG(uint64(i), 2))})
		check(during, i, i+1)
		check(after, i+1, i+1)
	}
}
