package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/internal/keyenc"
)

// Defaults of Config.
const (
	DefaultCacheSize    = 64 << 20
	DefaultMemTableSize = 32 << 20
)

// Compressions of Config.Compression.
const (
	CompressionSnappy = "snappy"
	CompressionMinLZ  = "minlz"
	CompressionNone   = "none"
)

var compressions = map[string]*sstable.CompressionProfile{
	"":                sstable.SnappyCompression,
	CompressionSnappy: sstable.SnappyCompression,
	CompressionMinLZ:  sstable.MinLZCompression,
	CompressionNone:   sstable.NoCompression,
}

// Config configures a Store.
type Config struct {
	// Dir is the data directory, created if missing. Required.
	Dir string
	// CacheSize is the block cache size in bytes. Default DefaultCacheSize.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. Default
	// DefaultMemTableSize.
	MemTableSize uint64
	// BlockSize is the target uncompressed size of a table's data block,
	// in bytes: reading one row from a block not in the cache checks and
	// decompresses the whole block. Default 0: Pebble's (4 KiB). Between
	// 512 B and 64 KiB.
	BlockSize int
	// Compression is the compression of table blocks: CompressionSnappy
	// (the default, ""), CompressionMinLZ or CompressionNone. Without
	// compression a row read from a block not in the cache skips the
	// decompression and one C allocation, at the price of more bytes on
	// disk and in the OS page cache; the block cache holds uncompressed
	// blocks either way.
	Compression string
	// Logger receives Pebble's log lines. Default: discarded.
	Logger *slog.Logger
	// FS is the filesystem holding Dir. Default: the operating system's.
	// Tests use an in-memory one (vfs.NewCrashableMem) to simulate crashes.
	FS vfs.FS
	// Registerer receives the store's metrics (vexil_pebblestore_*).
	// Default nil: not registered. One Store per Registerer.
	Registerer prometheus.Registerer
	// ReadOnly opens the database for reading only (a checkpoint: writes
	// fail, no compaction, no WAL).
	ReadOnly bool
}

// Validate reports an invalid configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("pebblestore: Config.Dir is required")
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("pebblestore: Config.CacheSize %d is negative", c.CacheSize)
	}
	if c.BlockSize != 0 && (c.BlockSize < 512 || c.BlockSize > 64<<10) {
		return fmt.Errorf("pebblestore: Config.BlockSize %d is outside 512 B to 64 KiB", c.BlockSize)
	}
	if _, ok := compressions[c.Compression]; !ok {
		return fmt.Errorf("pebblestore: Config.Compression %q is not one of %q, %q, %q", c.Compression, CompressionSnappy, CompressionMinLZ, CompressionNone)
	}
	if c.MemTableSize > 0 && c.MemTableSize < 1<<20 {
		return fmt.Errorf("pebblestore: Config.MemTableSize %d is below 1 MiB", c.MemTableSize)
	}
	return nil
}

// Store is a store.Store on a Pebble database.
type Store struct {
	db *pebble.DB
	m  *metrics
	fs vfs.FS // Config.FS, for checkpoints
	// writeMu serializes Apply: row writes read the stored reserved fields
	// before they write.
	writeMu sync.Mutex
	// ackMu serializes AckSignals: it reads the position before moving it
	// forward.
	ackMu sync.Mutex
	// Open/closed state without a lock on the read path: calls count
	// themselves in inflight; Close sets closed, then waits for idle, which
	// the call that brings inflight to zero after closed is set closes.
	// Unlike a RWMutex, a call made from inside another (a Dump callback)
	// cannot deadlock against Close.
	inflight  atomic.Int64
	closed    atomic.Bool
	idle      chan struct{}
	idleOnce  sync.Once
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MemTableSize == 0 {
		cfg.MemTableSize = DefaultMemTableSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref()
	m := newMetrics()
	opts := &pebble.Options{
		EventListener:      m.eventListener(cfg.Logger.With("component", "pebble")),
		Cache:              cache,
		MemTableSize:       cfg.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{cfg.Logger.With("component", "pebble")},
		FS:                 cfg.FS,
		ReadOnly:           cfg.ReadOnly,
	}
	// Bloom filters on every level: GetRow misses and the projector's reads
	// of rows and persons that do not exist yet skip most tables.
	compression := compressions[cfg.Compression]
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return compression }
		if cfg.BlockSize > 0 {
			opts.Levels[i].BlockSize = cfg.BlockSize
		}
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", cfg.Dir, err)
	}
	s := &Store{db: db, m: m, idle: make(chan struct{}), fs: cfg.FS}
	if cfg.Registerer != nil {
		if err := s.m.register(cfg.Registerer, s); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// OpenCheckpoint writes a checkpoint of the database into dir, which must
// not exist and must be on the data directory's filesystem, and opens it
// read-only. The checkpoint hard-links the database's immutable tables and
// flushes the WAL first, so it costs little disk until compactions
// replace the live tables, and it is one point in time: every write that
// returned before the call is in it. Close the returned Store, then remove
// dir.
func (s *Store) OpenCheckpoint(dir string, logger *slog.Logger) (*Store, error) {
	if err := s.enter("checkpoint"); err != nil {
		return nil, err
	}
	// Flushing the memtables first turns their contents into tables the
	// checkpoint links: otherwise it copies the WAL (14 MB of 22 after
	// 100,000 persons, BENCHMARKS.md), and opening it replays that WAL into
	// memory.
	err := s.db.Flush()
	if err == nil {
		err = s.db.Checkpoint(dir, pebble.WithFlushedWAL())
	}
	s.leave()
	if err != nil {
		return nil, fmt.Errorf("pebblestore: checkpoint into %s: %w", dir, err)
	}
	// A one-pass scan gains nothing from a large block cache.
	return Open(Config{Dir: dir, ReadOnly: true, Logger: logger, CacheSize: 8 << 20, FS: s.fs})
}

// Close waits for calls in flight, then closes the database. Calls after
// Close return store.ErrClosed.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return fmt.Errorf("pebblestore: close: %w", store.ErrClosed)
	}
	s.closed.Store(true)
	if s.inflight.Load() != 0 {
		<-s.idle
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// enter registers a call, keeping the database open until leave.
func (s *Store) enter(op string) error {
	s.inflight.Add(1)
	if s.closed.Load() {
		s.leave()
		return fmt.Errorf("pebblestore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

func (s *Store) leave() {
	if s.inflight.Add(-1) == 0 && s.closed.Load() {
		s.idleOnce.Do(func() { close(s.idle) })
	}
}

// get returns a copy of the value of key, or nil, false if absent.
func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
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

// LocalReads implements store.LocalReader: a read is a Pebble Get on
// this node's files (it takes no context: nothing can interrupt it).
func (s *Store) LocalReads() bool { return true }

var _ store.LocalReader = (*Store)(nil)

// rowBox holds a returned row and, in the same allocation, the buffer its
// key is built in: GetRow allocates the box and one buffer for the value
// (the key's when both fit).
type rowBox struct {
	row store.Row
	key [64]byte
}

var _ store.RowBufferReader = (*Store)(nil)

// GetRow implements store.Reader: one Get, one copy, one decode in place.
func (s *Store) GetRow(ctx context.Context, team int64, distinctID string) (*store.Row, error) {
	box := new(rowBox)
	if _, err := s.GetRowBuffer(ctx, team, distinctID, &box.row, box.key[:0]); err != nil {
		return nil, err
	}
	return &box.row, nil
}

// GetRowBuffer implements store.RowBufferReader: the row's key, then a copy
// of its value, are appended to buf[:0], and the row decoded in place.
// Pebble's own buffer is released before it returns (decoding from it
// would pin its block in the cache for as long as the caller keeps row).
func (s *Store) GetRowBuffer(ctx context.Context, team int64, distinctID string, row *store.Row, buf []byte) ([]byte, error) {
	if err := s.enter("get row"); err != nil {
		return buf, err
	}
	defer s.leave()
	buf = keyenc.AppendRow(buf[:0], team, distinctID)
	nk := len(buf)
	v, closer, err := s.db.Get(buf)
	found := err == nil
	if found {
		buf = append(buf, v...)
		_ = closer.Close() // releases a cache reference: nothing to report
	} else if errors.Is(err, pebble.ErrNotFound) {
		err = nil
	}
	var rv rowValue
	if err == nil && found {
		err = decodeRowValue(buf[nk:], &rv)
	}
	if err != nil {
		s.m.observeError("get_row", err)
		return buf, fmt.Errorf("pebblestore: get row %d/%q: %w", team, distinctID, err)
	}
	if !rv.present {
		s.m.rowMisses.Inc()
		return buf, fmt.Errorf("pebblestore: get row %d/%q: %w", team, distinctID, store.ErrNotFound)
	}
	s.m.rowHits.Inc()
	*row = rv.row
	row.Team, row.DistinctID = team, distinctID
	return buf, nil
}

// GetGroup implements store.Reader.
func (s *Store) GetGroup(ctx context.Context, team int64, typeIndex int, key string) (*store.Group, error) {
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return nil, fmt.Errorf("pebblestore: get group: %w", err)
	}
	if err := s.enter("get group"); err != nil {
		return nil, err
	}
	defer s.leave()
	buf, ok, err := s.get(keyenc.Group(team, uint8(typeIndex), key))
	var (
		g       *store.Group
		present bool
	)
	if err == nil && ok {
		g, present, err = decodeGroupValue(buf)
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get group %d/%d/%q: %w", team, typeIndex, key, err)
	}
	if !present {
		return nil, fmt.Errorf("pebblestore: get group %d/%d/%q: %w", team, typeIndex, key, store.ErrNotFound)
	}
	return g, nil
}

func (s *Store) person(k store.PersonKey) (*store.Person, error) {
	buf, ok, err := s.get(keyenc.Person(k.Team, k.ID))
	if err != nil || !ok {
		return nil, err
	}
	p := new(store.Person)
	if err := p.UnmarshalBinary(buf); err != nil {
		return nil, err
	}
	return p, nil
}

// GetPerson implements store.Store.
func (s *Store) GetPerson(ctx context.Context, team int64, personID string) (*store.Person, error) {
	if err := s.enter("get person"); err != nil {
		return nil, err
	}
	defer s.leave()
	p, err := s.person(store.PersonKey{Team: team, ID: personID})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get person %d/%q: %w", team, personID, err)
	}
	if p == nil {
		return nil, fmt.Errorf("pebblestore: get person %d/%q: %w", team, personID, store.ErrNotFound)
	}
	return p, nil
}

// GetPersons implements store.Store: one iterator over the sorted keys.
func (s *Store) GetPersons(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey]*store.Person, error) {
	if err := s.enter("get persons"); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[store.PersonKey]*store.Person, len(keys))
	enc := make([][]byte, len(keys))
	for i, k := range keys {
		enc[i] = keyenc.Person(k.Team, k.ID)
	}
	err := s.multiGet(enc, func(i int, v []byte) error {
		p := new(store.Person)
		if err := p.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("%d/%q: %w", keys[i].Team, keys[i].ID, err)
		}
		out[keys[i]] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get persons: %w", err)
	}
	return out, nil
}

// multiGet calls fn(i, value) for every keys[i] that exists, in key
// order, reading through one iterator that seeks forward: cheaper than a
// Get per key. value is valid only during the call.
func (s *Store) multiGet(keys [][]byte, fn func(i int, v []byte) error) error {
	if len(keys) == 0 {
		return nil
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: keys[order[0]],
		UpperBound: keyenc.Successor(keys[order[len(order)-1]]),
	})
	if err != nil {
		return err
	}
	for _, i := range order {
		if !it.SeekPrefixGE(keys[i]) || !bytes.Equal(it.Key(), keys[i]) {
			continue
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(i, v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// The mapping value: varint version, then the person id.
func appendMappingValue(b []byte, m store.Mapping) []byte {
	return append(binary.AppendVarint(b, m.Version), m.PersonID...)
}

func decodeMappingValue(buf []byte, m *store.Mapping) error {
	v, n := binary.Varint(buf)
	if n <= 0 {
		return fmt.Errorf("%w: bad mapping value", store.ErrCorrupt)
	}
	m.Version, m.PersonID = v, string(buf[n:])
	return nil
}

func (s *Store) mapping(k store.DistinctKey) (store.Mapping, bool, error) {
	buf, ok, err := s.get(keyenc.Mapping(k.Team, k.DistinctID))
	if err != nil || !ok {
		return store.Mapping{}, false, err
	}
	m := store.Mapping{Team: k.Team, DistinctID: k.DistinctID}
	if err := decodeMappingValue(buf, &m); err != nil {
		return store.Mapping{}, false, err
	}
	return m, true, nil
}

// GetMapping implements store.Store.
func (s *Store) GetMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error) {
	if err := s.enter("get mapping"); err != nil {
		return store.Mapping{}, err
	}
	defer s.leave()
	m, ok, err := s.mapping(store.DistinctKey{Team: team, DistinctID: distinctID})
	if err != nil {
		return store.Mapping{}, fmt.Errorf("pebblestore: get mapping %d/%q: %w", team, distinctID, err)
	}
	if !ok {
		return store.Mapping{}, fmt.Errorf("pebblestore: get mapping %d/%q: %w", team, distinctID, store.ErrNotFound)
	}
	return m, nil
}

// GetMappings implements store.Store: one iterator over the sorted keys.
func (s *Store) GetMappings(ctx context.Context, keys []store.DistinctKey) (map[store.DistinctKey]store.Mapping, error) {
	if err := s.enter("get mappings"); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[store.DistinctKey]store.Mapping, len(keys))
	enc := make([][]byte, len(keys))
	for i, k := range keys {
		enc[i] = keyenc.Mapping(k.Team, k.DistinctID)
	}
	err := s.multiGet(enc, func(i int, v []byte) error {
		m := store.Mapping{Team: keys[i].Team, DistinctID: keys[i].DistinctID}
		if err := decodeMappingValue(v, &m); err != nil {
			return fmt.Errorf("%d/%q: %w", keys[i].Team, keys[i].DistinctID, err)
		}
		out[keys[i]] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get mappings: %w", err)
	}
	return out, nil
}

// iterate calls fn for every key in [lower, upper) in order until fn
// returns false or an error.
func (s *Store) iterate(ctx context.Context, lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
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
	return it.Close()
}

// DistinctIDs implements store.Store.
func (s *Store) DistinctIDs(ctx context.Context, team int64, personID string) ([]string, error) {
	if err := s.enter("distinct ids"); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := keyenc.IndexPrefix(team, personID)
	var ids []string
	err := s.iterate(ctx, prefix, keyenc.PrefixEnd(prefix), func(k, _ []byte) (bool, error) {
		id, _, err := keyenc.String(k[len(prefix):])
		if err != nil {
			return false, fmt.Errorf("%w: index key %x", store.ErrCorrupt, k)
		}
		ids = append(ids, id)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: distinct ids %d/%q: %w", team, personID, err)
	}
	return ids, nil
}

// GetGroupTypes implements store.Store.
func (s *Store) GetGroupTypes(ctx context.Context, team int64) ([]store.GroupType, error) {
	if err := s.enter("get group types"); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := keyenc.Prefix(keyenc.KindGroupType, team)
	var out []store.GroupType
	err := s.iterate(ctx, prefix, keyenc.PrefixEnd(prefix), func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+1 {
			return false, fmt.Errorf("%w: group type key %x", store.ErrCorrupt, k)
		}
		out = append(out, store.GroupType{Team: team, Index: int(k[len(prefix)]), Name: string(v)})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get group types %d: %w", team, err)
	}
	return out, nil
}

// ScanRows implements store.Store: visible rows in distinct id byte order.
func (s *Store) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	prefix := keyenc.Prefix(keyenc.KindRow, team)
	lower := prefix
	if cursor != "" {
		after, err := keyenc.DecodeCursor(cursor)
		if err != nil {
			return store.RowPage{}, fmt.Errorf("pebblestore: scan rows: cursor %q: %w", cursor, store.ErrInvalid)
		}
		lower = keyenc.Successor(keyenc.Row(team, after))
	}
	if err := s.enter("scan rows"); err != nil {
		return store.RowPage{}, err
	}
	defer s.leave()
	var page store.RowPage
	err := s.iterate(ctx, lower, keyenc.PrefixEnd(prefix), func(k, v []byte) (bool, error) {
		// Decode the flags byte before copying: invisible rows are skipped.
		if len(v) < 2 || v[1]&flagPresent == 0 {
			return true, nil
		}
		if len(page.Rows) == limit {
			page.Next = keyenc.EncodeCursor(page.Rows[limit-1].DistinctID)
			return false, nil
		}
		did, _, err := keyenc.String(k[len(prefix):])
		if err != nil {
			return false, fmt.Errorf("%w: row key %x", store.ErrCorrupt, k)
		}
		var rv rowValue
		if err := decodeRowValue(slices.Clone(v), &rv); err != nil {
			return false, fmt.Errorf("row %q: %w", did, err)
		}
		r := new(store.Row)
		*r = rv.row
		r.Team, r.DistinctID = team, did
		page.Rows = append(page.Rows, r)
		return true, nil
	})
	if err != nil {
		return store.RowPage{}, fmt.Errorf("pebblestore: scan rows %d: %w", team, err)
	}
	return page, nil
}

// ScanGroups implements store.Store: groups in key byte order.
func (s *Store) ScanGroups(ctx context.Context, team int64, typeIndex int, cursor string, limit int) (store.GroupPage, error) {
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return store.GroupPage{}, fmt.Errorf("pebblestore: scan groups: %w", err)
	}
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	prefix := keyenc.GroupPrefix(team, uint8(typeIndex))
	lower := prefix
	if cursor != "" {
		after, err := keyenc.DecodeCursor(cursor)
		if err != nil {
			return store.GroupPage{}, fmt.Errorf("pebblestore: scan groups: cursor %q: %w", cursor, store.ErrInvalid)
		}
		lower = keyenc.Successor(keyenc.Group(team, uint8(typeIndex), after))
	}
	if err := s.enter("scan groups"); err != nil {
		return store.GroupPage{}, err
	}
	defer s.leave()
	var page store.GroupPage
	err := s.iterate(ctx, lower, keyenc.PrefixEnd(prefix), func(k, v []byte) (bool, error) {
		g, present, err := decodeGroupValue(slices.Clone(v))
		if err != nil {
			return false, fmt.Errorf("group key %x: %w", k, err)
		}
		if !present {
			return true, nil
		}
		if len(page.Groups) == limit {
			page.Next = keyenc.EncodeCursor(page.Groups[limit-1].Key)
			return false, nil
		}
		page.Groups = append(page.Groups, g)
		return true, nil
	})
	if err != nil {
		return store.GroupPage{}, fmt.Errorf("pebblestore: scan groups %d/%d: %w", team, typeIndex, err)
	}
	return page, nil
}

// DueExpiries implements store.Store: one range scan of the expiry keys,
// which sort by (at, team, target).
func (s *Store) DueExpiries(ctx context.Context, until int64, limit int) ([]store.Expiry, error) {
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	if err := s.enter("due expiries"); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []store.Expiry
	err := s.iterate(ctx, []byte{keyenc.KindExpiry}, keyenc.ExpiryUntil(until), func(k, _ []byte) (bool, error) {
		if len(out) == limit {
			return false, nil
		}
		at, team, target, err := keyenc.DecodeExpiry(k)
		if err != nil {
			return false, fmt.Errorf("%w: expiry key %x", store.ErrCorrupt, k)
		}
		out = append(out, store.Expiry{Team: team, At: at, Target: target})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: due expiries: %w", err)
	}
	return out, nil
}

// Apply implements store.Store: one Pebble batch committed with Sync.
func (s *Store) Apply(ctx context.Context, b *store.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("pebblestore: apply: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: apply: %w", err)
	}
	if err := s.enter("apply"); err != nil {
		return err
	}
	defer s.leave()
	if b.Len() == 0 {
		return nil
	}
	start := time.Now()
	err := s.apply(b)
	s.m.observeApply(start, b.Len(), err)
	return err
}

// apply holds writeMu from the reads of stored rows and groups (fillRows,
// fillGroups) to the commit, so the versioned results compare of one Apply
// sees the commits of every earlier one: racing SetResults converge on the
// winner. A merge operator would avoid the read, but the row value mixes
// the versioned results with person fields that replace and the reads are
// cheap; one mutex keeps it simple.
func (s *Store) apply(b *store.Batch) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	if err := s.fill(wb, b); err != nil {
		return fmt.Errorf("pebblestore: apply: %w", err)
	}
	opts := pebble.Sync
	if b.Derived() {
		opts = pebble.NoSync // recomputed by its writer if a crash loses it
	}
	if err := wb.Commit(opts); err != nil {
		return fmt.Errorf("pebblestore: apply: commit: %w", err)
	}
	return nil
}

func (s *Store) fill(wb *pebble.Batch, b *store.Batch) error {
	var buf []byte
	var err error
	for _, p := range b.Persons() {
		if buf, err = p.AppendBinary(buf[:0]); err != nil {
			return err
		}
		if err := wb.Set(keyenc.Person(p.Team, p.ID), buf, nil); err != nil {
			return err
		}
	}
	for _, m := range b.Mappings() {
		buf = appendMappingValue(buf[:0], m)
		if err := wb.Set(keyenc.Mapping(m.Team, m.DistinctID), buf, nil); err != nil {
			return err
		}
	}
	for _, op := range b.Index() {
		if err := setOrDelete(wb, keyenc.Index(op.Entry.Team, op.Entry.PersonID, op.Entry.DistinctID), op.Delete); err != nil {
			return err
		}
	}
	if buf, err = s.fillRows(wb, b.Rows(), buf); err != nil {
		return err
	}
	if buf, err = s.fillGroups(wb, b, buf); err != nil {
		return err
	}
	for _, gt := range b.GroupTypes() {
		if err := wb.Set(keyenc.GroupType(gt.Team, uint8(gt.Index)), []byte(gt.Name), nil); err != nil {
			return err
		}
	}
	for _, op := range b.Expiries() {
		if err := setOrDelete(wb, keyenc.Expiry(op.Expiry.At, op.Expiry.Team, op.Expiry.Target), op.Delete); err != nil {
			return err
		}
	}
	return nil
}

// setOrDelete adds a key without a value (an index entry) to wb, or its
// deletion.
func setOrDelete(wb *pebble.Batch, k []byte, del bool) error {
	if del {
		return wb.Delete(k, nil)
	}
	return wb.Set(k, nil, nil)
}

// keyedRowOp is a row operation with its key.
type keyedRowOp struct {
	key []byte
	op  *store.RowOp
}

// fillRows adds the merged row operations to wb in key order. Operations
// that keep stored fields read the stored row first, through one iterator
// seeking forward, which is cheaper than a Get per row.
func (s *Store) fillRows(wb *pebble.Batch, ops []store.RowOp, buf []byte) ([]byte, error) {
	if len(ops) == 0 {
		return buf, nil
	}
	keyed := make([]keyedRowOp, len(ops))
	for i := range ops {
		keyed[i] = keyedRowOp{keyenc.Row(ops[i].Team, ops[i].DistinctID), &ops[i]}
	}
	slices.SortFunc(keyed, func(a, b keyedRowOp) int { return bytes.Compare(a.key, b.key) })
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			it.Close()
		}
	}()
	for _, k := range keyed {
		op := k.op
		if op.Put == nil && !op.SetResults && !op.SetCounters {
			if err := wb.Delete(k.key, nil); err != nil { // a plain delete
				return buf, err
			}
			continue
		}
		var v rowValue
		// Read unless the op replaces everything: a delete, or a put with
		// counters (results are versioned: always compared).
		if !op.Delete && (op.Put == nil || op.SetResults || !op.SetCounters) {
			if it == nil {
				var err error
				if it, err = s.db.NewIter(&pebble.IterOptions{
					LowerBound: keyed[0].key,
					UpperBound: keyenc.Successor(keyed[len(keyed)-1].key),
				}); err != nil {
					return buf, err
				}
			}
			if it.SeekPrefixGE(k.key) && bytes.Equal(it.Key(), k.key) {
				old, err := it.ValueAndErr()
				if err != nil {
					return buf, err
				}
				if err := decodeRowValue(slices.Clone(old), &v); err != nil {
					return buf, fmt.Errorf("row %d/%q: %w", op.Team, op.DistinctID, err)
				}
			} else if err := it.Error(); err != nil {
				return buf, err
			}
		}
		if op.Put != nil {
			v.present = true
			v.row.PersonID = op.Put.PersonID
			v.row.PersonVersion = op.Put.PersonVersion
			v.row.Revision = op.Put.Revision
			v.row.Properties = op.Put.Properties
		}
		if op.SetResults && store.ResultsWin(op.ResultsStamp, op.Results, v.row.ResultsStamp, v.row.Results) {
			v.row.Results, v.row.ResultsStamp = op.Results, op.ResultsStamp
		}
		if op.SetCounters {
			v.row.Counters = op.Counters
		}
		buf = slices.Grow(buf[:0], rowValueSize(&v))
		buf = appendRowValue(buf, &v)
		if err := wb.Set(k.key, buf, nil); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// fillGroups adds the group puts and versioned group results writes to
// wb. Both keep or compare the stored results, so every touched group is
// read first (one iterator, key order).
func (s *Store) fillGroups(wb *pebble.Batch, b *store.Batch, buf []byte) ([]byte, error) {
	type pending struct {
		key []byte
		put *store.Group
		res *store.GroupResultsOp
		ctr *store.GroupCountersOp
		old *store.Group // nil: none stored
		was bool         // old is a put group
	}
	var (
		all   []*pending
		byKey = map[store.GroupKey]*pending{}
	)
	at := func(k store.GroupKey) *pending {
		p, ok := byKey[k]
		if !ok {
			p = &pending{key: keyenc.Group(k.Team, uint8(k.TypeIndex), k.Key)}
			byKey[k] = p
			all = append(all, p)
		}
		return p
	}
	for _, g := range b.Groups() {
		at(store.GroupKey{Team: g.Team, TypeIndex: g.TypeIndex, Key: g.Key}).put = g
	}
	for i := range b.GroupResults() {
		op := &b.GroupResults()[i]
		at(op.Group).res = op
	}
	for i := range b.GroupCounters() {
		op := &b.GroupCounters()[i]
		at(op.Group).ctr = op
	}
	if len(all) == 0 {
		return buf, nil
	}
	keys := make([][]byte, len(all))
	for i, p := range all {
		keys[i] = p.key
	}
	err := s.multiGet(keys, func(i int, v []byte) error {
		var err error
		all[i].old, all[i].was, err = decodeGroupValue(slices.Clone(v))
		return err
	})
	if err != nil {
		return buf, err
	}
	for _, p := range all {
		g := p.old
		if p.put != nil {
			q := *p.put
			if g != nil {
				q.Results, q.ResultsStamp, q.Counters = g.Results, g.ResultsStamp, g.Counters
			} else {
				q.Results, q.ResultsStamp, q.Counters = nil, 0, nil
			}
			g = &q
		}
		if g == nil {
			g = &store.Group{} // results only, no state
		}
		if r := p.res; r != nil && store.ResultsWin(r.Stamp, r.Results, g.ResultsStamp, g.Results) {
			if g == p.old {
				q := *g
				g = &q
			}
			g.Results, g.ResultsStamp = r.Results, r.Stamp
		}
		if c := p.ctr; c != nil {
			// A results-only record keeps no counters: they are dropped
			// for a group never put (store.Group.Counters).
			if g == p.old {
				q := *g
				g = &q
			}
			g.Counters = c.Counters
		}
		if buf, err = appendGroupValue(buf[:0], g, p.put != nil || p.was); err != nil {
			return buf, err
		}
		if err := wb.Set(p.key, buf, nil); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// Dump implements store.Store: every entity in key order (persons,
// mappings, index entries, rows, groups, group types by their kind byte).
func (s *Store) Dump(ctx context.Context, fn func(store.Entity) error) error {
	return s.DumpFrom(ctx, nil, func(e store.Entity, _ []byte) error { return fn(e) })
}

// DumpFrom is Dump starting after the position after (nil: from the
// start), giving fn each entity's position: its key, valid only during
// the call (clone it to keep it). Positions order entities as Dump does,
// so a dump stopped after position p resumes with DumpFrom(p) and reads
// every later entity once.
func (s *Store) DumpFrom(ctx context.Context, after []byte, fn func(e store.Entity, pos []byte) error) error {
	if err := s.enter("dump"); err != nil {
		return err
	}
	defer s.leave()
	var lower []byte
	if after != nil {
		lower = append(slices.Clone(after), 0) // the first key after it
	}
	var fnErr error
	err := s.iterate(ctx, lower, nil, func(k, v []byte) (bool, error) {
		e, skip, err := decodeEntity(k, v)
		if err != nil {
			return false, err
		}
		if skip {
			return true, nil
		}
		if fnErr = fn(e, k); fnErr != nil {
			return false, nil
		}
		return true, nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("pebblestore: dump: %w", err)
	}
	return nil
}

// decodeEntity decodes one key/value pair; skip is set for rows without a
// person part, group results without a group, and expiry entries.
func decodeEntity(k, v []byte) (e store.Entity, skip bool, err error) {
	corrupt := func(what string) error { return fmt.Errorf("%w: %s key %x", store.ErrCorrupt, what, k) }
	if len(k) > 0 && k[0] == keyenc.KindSLO {
		return e, true, nil // SLO rollups, not entities
	}
	if len(k) < 9 {
		return e, false, corrupt("short")
	}
	team, rest, _ := keyenc.Team(k[1:])
	v = slices.Clone(v)
	switch k[0] {
	case keyenc.KindPerson:
		p := new(store.Person)
		if err := p.UnmarshalBinary(v); err != nil {
			return e, false, err
		}
		e.Person = p
	case keyenc.KindMapping:
		did, _, err := keyenc.String(rest)
		if err != nil {
			return e, false, corrupt("mapping")
		}
		m := &store.Mapping{Team: team, DistinctID: did}
		if err := decodeMappingValue(v, m); err != nil {
			return e, false, err
		}
		e.Mapping = m
	case keyenc.KindIndex:
		pid, rest, err := keyenc.String(rest)
		if err != nil {
			return e, false, corrupt("index")
		}
		did, _, err := keyenc.String(rest)
		if err != nil {
			return e, false, corrupt("index")
		}
		e.Index = &store.IndexEntry{Team: team, PersonID: pid, DistinctID: did}
	case keyenc.KindRow:
		did, _, err := keyenc.String(rest)
		if err != nil {
			return e, false, corrupt("row")
		}
		var rv rowValue
		if err := decodeRowValue(v, &rv); err != nil {
			return e, false, err
		}
		if !rv.present {
			return e, true, nil
		}
		r := new(store.Row)
		*r = rv.row
		r.Team, r.DistinctID = team, did
		e.Row = r
	case keyenc.KindGroup:
		g, present, err := decodeGroupValue(v)
		if err != nil {
			return e, false, err
		}
		if !present {
			return e, true, nil
		}
		e.Group = g
	case keyenc.KindExpiry, keyenc.KindUsage, keyenc.KindSignal, keyenc.KindInbox:
		return e, true, nil // scheduling data, usage and inbox rows, not entities
	case keyenc.KindGroupType:
		if len(rest) != 1 {
			return e, false, corrupt("group type")
		}
		e.GroupType = &store.GroupType{Team: team, Index: int(rest[0]), Name: string(v)}
	default:
		return e, false, corrupt("unknown kind")
	}
	return e, false, nil
}

// pebbleLogger adapts *slog.Logger to pebble.Logger.
type pebbleLogger struct{ l *slog.Logger }

// Infof logs at info level.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf logs at error level and panics: Pebble expects it not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("pebble: " + msg)
}
