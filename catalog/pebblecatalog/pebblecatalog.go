// Package pebblecatalog is the embedded catalog.Catalog on Pebble, for one
// node. It keeps its own directory, apart from the store's.
//
// Records are JSON values under order-preserving keys (see
// catalog/internal/kvcatalog); writes are serialized in the process and
// each is one Pebble batch committed with Sync: the record, its indexes, its
// flag key claim and its activity entry land together or not at all.
// Multi-record reads (lists, Snapshot) read one Pebble snapshot.
package pebblecatalog

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/kvcatalog"
)

// DefaultCacheSize is the default block cache size: definitions are small.
const DefaultCacheSize = 8 << 20

// Config configures a Pebble catalog.
type Config struct {
	// Dir is the data directory, created if missing. Required.
	Dir string
	// CacheSize is the block cache size in bytes. Default DefaultCacheSize.
	CacheSize int64
	// Logger receives Pebble's log lines. Default: discarded.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate reports an invalid configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pebblecatalog: Config.Dir is required")
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("pebblecatalog: Config.CacheSize %d is negative", c.CacheSize)
	}
	return nil
}

// Open opens (or creates) the catalog in cfg.Dir. Only one process may
// have it open.
func Open(cfg Config) (catalog.Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref()
	db, err := pebble.Open(cfg.Dir, &pebble.Options{
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{cfg.Logger.With("component", "pebblecatalog")},
	})
	if err != nil {
		return nil, fmt.Errorf("pebblecatalog: open %s: %w", cfg.Dir, err)
	}
	return kvcatalog.New(&kv{db: db}, cfg.Now), nil
}

type kv struct{ db *pebble.DB }

func (p *kv) View(fn func(kvcatalog.Reader) error) error {
	snap := p.db.NewSnapshot()
	defer snap.Close()
	return fn(reader{snap})
}

func (p *kv) Latest() kvcatalog.Reader { return reader{p.db} }

func (p *kv) Commit(b *kvcatalog.Batch) error {
	pb := p.db.NewBatch()
	defer pb.Close()
	for _, op := range b.Ops {
		var err error
		if op.Value == nil {
			err = pb.Delete(op.Key, nil)
		} else {
			err = pb.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	return pb.Commit(pebble.Sync)
}

func (p *kv) Close() error { return p.db.Close() }

// reader reads a snapshot or the live database.
type reader struct{ s pebble.Reader }

func (r reader) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := r.s.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	closer.Close()
	return out, true, nil
}

func (r reader) Scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		more, err := fn(it.Key(), v)
		if err != nil || !more {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// pebbleLogger adapts *slog.Logger to pebble.Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Info(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("pebblecatalog: " + msg)
}
