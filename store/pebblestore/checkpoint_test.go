package pebblestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

// TestDumpFromAndCheckpoint: DumpFrom after the position of the k-th
// entity gives exactly the entities Dump gives after it; a checkpoint
// holds the writes made before it and not those after, refuses writes, and
// its tables are hard links into the live store.
func TestDumpFromAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	put := func(prefix string, n int) {
		var b store.Batch
		for i := range n {
			p := store.NewPerson(1, fmt.Sprintf("%s%03d", prefix, i))
			b.PutPerson(p)
			b.PutMapping(store.Mapping{Team: 1, DistinctID: fmt.Sprintf("%s-d%03d", prefix, i), PersonID: p.ID, Version: 1})
		}
		if err := s.Apply(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	put("p", 100)
	var all []string
	var positions [][]byte
	if err := s.DumpFrom(ctx, nil, func(e store.Entity, pos []byte) error {
		all = append(all, describe(e))
		positions = append(positions, slices.Clone(pos))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != 200 {
		t.Fatalf("dump gave %d entities, want 200", len(all))
	}
	for _, k := range []int{0, 99, 100, 150, 199} {
		var rest []string
		if err := s.DumpFrom(ctx, positions[k], func(e store.Entity, _ []byte) error {
			rest = append(rest, describe(e))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rest, all[k+1:]) {
			t.Errorf("DumpFrom after entity %d: %d entities, want the %d after it", k, len(rest), len(all)-k-1)
		}
	}

	dir := filepath.Join(t.TempDir(), "cp")
	cp, err := s.OpenCheckpoint(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	put("late", 10)
	n := 0
	if err := cp.Dump(ctx, func(store.Entity) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Errorf("checkpoint holds %d entities, want the 200 written before it", n)
	}
	var b store.Batch
	b.PutPerson(store.NewPerson(1, "x"))
	if err := cp.Apply(ctx, &b); err == nil {
		t.Error("a write into the read-only checkpoint succeeded")
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("the checkpoint holds no tables: the memtables were not flushed")
	}
	for _, f := range tables {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if nlink := linkCount(fi); nlink < 2 {
			t.Errorf("%s has %d links, want a hard link into the live store", f, nlink)
		}
	}
}

func describe(e store.Entity) string {
	switch {
	case e.Person != nil:
		return "person " + e.Person.ID
	case e.Mapping != nil:
		return "mapping " + e.Mapping.DistinctID
	}
	return fmt.Sprintf("%+v", e)
}

// linkCount is a file's number of hard links (Linux, where the tests run).
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
