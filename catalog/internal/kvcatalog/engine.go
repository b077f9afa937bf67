package kvcatalog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// Engine is a catalog.Catalog over a KV. Its methods sit in one file per
// entity (teams.go, keys.go, flags.go, cohorts.go, earlyaccess.go,
// activity.go, jobs.go, snapshot.go); this file holds the transaction
// frame and the generic record helpers they share.
type Engine struct {
	kv     KV
	now    func() time.Time
	ids    records.EntryIDs
	closed atomic.Bool

	// mu serializes writes: a write reads, checks and commits while
	// holding it.
	mu sync.Mutex
	// closeMu is held shared by every call and exclusively by Close, so
	// that the KV is not closed under a reader.
	closeMu sync.RWMutex
}

var _ catalog.Catalog = (*Engine)(nil)

// New returns an engine over kv; now is the clock.
func New(kv KV, now func() time.Time) *Engine {
	return &Engine{kv: kv, now: now}
}

// Close closes the KV. Later calls return catalog.ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed.Swap(true) {
		return nil
	}
	return e.kv.Close()
}

// write runs fn under the write lock with a fresh view and a batch, then
// commits the batch if fn succeeded.
func (e *Engine) write(ctx context.Context, fn func(r Reader, b *Batch, now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var b Batch
	now := e.now().UTC()
	if err := e.kv.View(func(r Reader) error { return fn(r, &b, now) }); err != nil {
		return err
	}
	if len(b.Ops) == 0 {
		return nil
	}
	return e.kv.Commit(&b)
}

func (e *Engine) view(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	return e.kv.View(fn)
}

// point runs a single-read fn on the latest state, without a snapshot.
func (e *Engine) point(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	return fn(e.kv.Latest())
}

// The generic helpers below take the engine as an argument: Go methods
// cannot have type parameters.

// writeValue runs fn as one write (see Engine.write) and returns what it
// produced, or the zero value and the error.
func writeValue[T any](e *Engine, ctx context.Context, fn func(r Reader, b *Batch, now time.Time) (T, error)) (T, error) {
	var out T
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		var err error
		out, err = fn(r, b, now)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// viewValue runs fn on a consistent view and returns what it produced, or
// the zero value and the error.
func viewValue[T any](e *Engine, ctx context.Context, fn func(Reader) (T, error)) (T, error) {
	var out T
	err := e.view(ctx, func(r Reader) error {
		var err error
		out, err = fn(r)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// pointGet reads the record at key on the latest state (see
// Engine.point): catalog.ErrNotFound when it is missing.
func pointGet[T any](e *Engine, ctx context.Context, key []byte) (T, error) {
	var out T
	err := e.point(ctx, func(r Reader) error {
		var err error
		out, err = get[T](r, key)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// viewList reads every record under prefix, in key order, on a consistent
// view.
func viewList[T any](e *Engine, ctx context.Context, prefix []byte) ([]T, error) {
	return viewValue(e, ctx, func(r Reader) ([]T, error) { return list[T](r, prefix) })
}

// get reads the record at key: catalog.ErrNotFound when it is missing.
func get[T any](r Reader, key []byte) (T, error) {
	v, ok, err := getJSON[T](r, key)
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return v, err
}

// list reads every record under prefix, in key order.
func list[T any](r Reader, prefix []byte) ([]T, error) {
	var out []T
	err := scanJSON(r, prefix, func(v T) bool { out = append(out, v); return true })
	return out, err
}

// update is the read-check-write of a versioned record: it reads the
// record at key (catalog.ErrNotFound when missing), refuses it unless its
// version is want (catalog.ErrConflict naming what), and returns what
// apply makes of it. apply writes the new record to b (with put or
// logged), and whatever else the change needs.
func update[T any](e *Engine, ctx context.Context, key []byte, what string, want int64, version func(T) int64,
	apply func(r Reader, b *Batch, now time.Time, old T) (T, error)) (T, error) {
	return writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (T, error) {
		old, err := get[T](r, key)
		if err != nil {
			return old, err
		}
		if have := version(old); have != want {
			return old, conflict(what, want, have)
		}
		return apply(r, b, now, old)
	})
}

// logged writes rec at key together with the activity entry of its
// change: action on item (of scope, in team) by ch, from before to rec. It
// returns rec as a read will return it.
func logged[T any](e *Engine, b *Batch, now time.Time, key []byte, team int64, scope catalog.Scope, item, action string,
	ch catalog.Change, before any, rec T) (T, error) {
	en, err := records.Entry(&e.ids, now, team, scope, item, action, ch, before, rec)
	if err != nil {
		return rec, err
	}
	out, err := putRecord(b, key, rec)
	if err != nil {
		return rec, err
	}
	return out, e.putEntry(b, en)
}

func getJSON[T any](r Reader, key []byte) (T, bool, error) {
	var v T
	raw, ok, err := r.Get(key)
	if err != nil || !ok {
		return v, ok, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("decode %q: %w", key, err)
	}
	return v, true, nil
}

func scanJSON[T any](r Reader, prefix []byte, fn func(T) bool) error {
	return r.Scan(prefix, upper(prefix), func(k, v []byte) (bool, error) {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return false, fmt.Errorf("decode %q: %w", k, err)
		}
		return fn(x), nil
	})
}

// putRecord writes v and returns it as a read will return it.
func putRecord[T any](b *Batch, key []byte, v T) (T, error) {
	out, raw, err := records.Encode(v)
	if err != nil {
		return v, fmt.Errorf("%q: %w", key, err)
	}
	b.Set(key, raw)
	return out, nil
}

func setJSON(b *Batch, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	b.Set(key, raw)
	return nil
}

// nextSeq allocates the next value of a sequence in b.
func nextSeq(r Reader, b *Batch, name string) (int64, error) {
	key := newKey(tagSeq).last(name)
	raw, ok, err := r.Get(key)
	if err != nil {
		return 0, err
	}
	var v uint64
	if ok {
		v = binary.BigEndian.Uint64(raw)
	}
	v++
	b.Set(key, binary.BigEndian.AppendUint64(nil, v))
	return int64(v), nil
}

// bumpSeq makes the sequence at least v.
func bumpSeq(r Reader, b *Batch, name string, v int64) error {
	key := newKey(tagSeq).last(name)
	raw, ok, err := r.Get(key)
	if err != nil {
		return err
	}
	if ok && int64(binary.BigEndian.Uint64(raw)) >= v {
		return nil
	}
	b.Set(key, binary.BigEndian.AppendUint64(nil, uint64(v)))
	return nil
}

func conflict(what string, want, have int64) error {
	return fmt.Errorf("%s: version %d, stored %d: %w", what, want, have, catalog.ErrConflict)
}
