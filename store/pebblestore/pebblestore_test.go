package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/storetest"
)

func open(t *testing.T, dir string) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(pebblestore.Config{Dir: dir, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

func TestInboxContract(t *testing.T) {
	storetest.RunInbox(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

func TestDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T) (store.Store, func(t *testing.T) store.Store) {
		dir := t.TempDir()
		s := open(t, dir)
		return s, func(t *testing.T) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dir)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  pebblestore.Config
		ok   bool
	}{
		{"minimal", pebblestore.Config{Dir: "x"}, true},
		{"sizes", pebblestore.Config{Dir: "x", CacheSize: 1 << 20, MemTableSize: 8 << 20}, true},
		{"no dir", pebblestore.Config{}, false},
		{"negative cache", pebblestore.Config{Dir: "x", CacheSize: -1}, false},
		{"tiny memtable", pebblestore.Config{Dir: "x", MemTableSize: 1024}, false},
		{"1 KiB blocks", pebblestore.Config{Dir: "x", BlockSize: 1 << 10}, true},
		{"tiny blocks", pebblestore.Config{Dir: "x", BlockSize: 100}, false},
		{"huge blocks", pebblestore.Config{Dir: "x", BlockSize: 1 << 20}, false},
		{"no compression", pebblestore.Config{Dir: "x", Compression: pebblestore.CompressionNone}, true},
		{"minlz", pebblestore.Config{Dir: "x", Compression: pebblestore.CompressionMinLZ}, true},
		{"unknown compression", pebblestore.Config{Dir: "x", Compression: "zip"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := pebblestore.Open(pebblestore.Config{}); err == nil {
		t.Fatal("Open accepted an invalid config")
	}
}

// TestCloseDuringDump: Close waits for a running Dump, whose callback keeps
// reading (and sees ErrClosed once Close has begun) without deadlock.
func TestCloseDuringDump(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	var b store.Batch
	for i := range 50 {
		b.PutRow(&store.Row{Team: 1, DistinctID: fmt.Sprint(i), Properties: []byte("{}")})
	}
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	calls, closedSeen := 0, false
	err := s.Dump(ctx, func(e store.Entity) error {
		calls++
		if calls == 1 {
			go func() { closed <- s.Close() }()
		}
		_, err := s.GetRow(ctx, 1, "0")
		if errors.Is(err, store.ErrClosed) {
			closedSeen = true
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil || calls != 50 {
		t.Fatalf("Dump: %v after %d calls", err, calls)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.GetRow(ctx, 1, "0"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetRow after Close: %v", err)
	}
	t.Logf("callback saw ErrClosed: %v", closedSeen)
}

// A derived batch (committed without waiting for fsync) is applied like any
// other, and survives a clean close.
func TestDerivedBatch(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var b store.Batch
	b.PutRow(&store.Row{Team: 1, DistinctID: "d", PersonID: "p", PersonVersion: 1, Properties: []byte(`{}`)})
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var d store.Batch
	d.SetResults(1, "d", []byte("res"), 7)
	d.PutExpiry(store.Expiry{Team: 1, At: 5, Target: "r:d"})
	d.SetDerived()
	if !d.Derived() {
		t.Fatal("SetDerived did not mark the batch")
	}
	if err := s.Apply(ctx, &d); err != nil {
		t.Fatal(err)
	}
	check := func(s store.Store) {
		t.Helper()
		row, err := s.GetRow(ctx, 1, "d")
		if err != nil || string(row.Results) != "res" || row.ResultsStamp != 7 {
			t.Fatalf("row %+v, %v", row, err)
		}
		due, err := s.DueExpiries(ctx, 10, 0)
		if err != nil || len(due) != 1 || due[0].Target != "r:d" {
			t.Fatalf("due %v, %v", due, err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, dir))
}
