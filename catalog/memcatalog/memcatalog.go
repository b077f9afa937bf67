// Package memcatalog is an in-memory catalog.Catalog for tests and
// single-process tools. It behaves exactly like pebblecatalog (both run the
// same engine) but keeps nothing across restarts.
package memcatalog

import (
	"bytes"
	"slices"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/kvcatalog"
)

// Config configures a memory catalog.
type Config struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports whether the config is usable (always, today).
func (c Config) Validate() error { return nil }

// New returns an empty catalog.
func New(cfg Config) catalog.Catalog {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return kvcatalog.New(&kv{data: map[string][]byte{}}, cfg.Now)
}

// kv is a map and its sorted keys, guarded by a read-write lock.
type kv struct {
	mu   sync.RWMutex
	data map[string][]byte // guarded by mu
	keys []string          // guarded by mu: the keys of data, sorted
}

func (m *kv) View(fn func(kvcatalog.Reader) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(reader{m})
}

func (m *kv) Latest() kvcatalog.Reader { return latest{m} }

// latest takes the read lock for each call.
type latest struct{ m *kv }

func (l latest) Get(key []byte) ([]byte, bool, error) {
	l.m.mu.RLock()
	defer l.m.mu.RUnlock()
	return reader(l).Get(key)
}

func (l latest) Scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	l.m.mu.RLock()
	defer l.m.mu.RUnlock()
	return reader(l).Scan(lower, upper, fn)
}

func (m *kv) Commit(b *kvcatalog.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range b.Ops {
		k := string(op.Key)
		_, exists := m.data[k]
		switch {
		case op.Value == nil && exists:
			delete(m.data, k)
			i, _ := slices.BinarySearch(m.keys, k)
			m.keys = slices.Delete(m.keys, i, i+1)
		case op.Value != nil:
			if !exists {
				i, _ := slices.BinarySearch(m.keys, k)
				m.keys = slices.Insert(m.keys, i, k)
			}
			m.data[k] = bytes.Clone(op.Value)
		}
	}
	return nil
}

func (m *kv) Close() error { return nil }

// reader reads under the kv's read lock, held by View.
type reader struct{ m *kv }

func (r reader) Get(key []byte) ([]byte, bool, error) {
	v, ok := r.m.data[string(key)]
	return bytes.Clone(v), ok, nil
}

func (r reader) Scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	keys := r.m.keys
	i, _ := slices.BinarySearch(keys, string(lower))
	for ; i < len(keys); i++ {
		k := keys[i]
		if upper != nil && k >= string(upper) {
			break
		}
		more, err := fn([]byte(k), r.m.data[k])
		if err != nil || !more {
			return err
		}
	}
	return nil
}
