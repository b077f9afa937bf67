package pebblestore_test

import (
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
