// Package kvcatalog implements catalog.Catalog over an ordered key-value
// store with atomic batches: Pebble in pebblecatalog, a sorted map in
// memcatalog. Writes are serialized by one mutex, so each write reads,
// checks and commits its batch (the record, its indexes, its key claim and
// its activity entry) with no other write in between.
package kvcatalog

import (
	"bytes"
	"encoding/binary"
)

// Reader reads a consistent view of the store.
type Reader interface {
	// Get returns a copy of the value of key, and whether it exists.
	Get(key []byte) ([]byte, bool, error)
	// Scan calls fn for the keys in [lower, upper) in ascending order until
	// fn returns false or an error. k and v are valid during the call only.
	Scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error
}

// KV is the store under the engine.
type KV interface {
	// View calls fn with a consistent, read-only view.
	View(fn func(Reader) error) error
	// Latest returns a reader of the latest committed state, cheaper than
	// View for a single read: each call sees what was committed before it.
	Latest() Reader
	// Commit applies b atomically and durably.
	Commit(b *Batch) error
	// Close releases the store.
	Close() error
}

// Op is one write of a Batch: Delete when Value is nil.
type Op struct {
	Key   []byte
	Value []byte
}

// Batch is an ordered list of writes.
type Batch struct {
	Ops []Op
}

// Set writes key = value (value must not be nil; use []byte{}).
func (b *Batch) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	b.Ops = append(b.Ops, Op{Key: key, Value: value})
}

// Delete removes key.
func (b *Batch) Delete(key []byte) { b.Ops = append(b.Ops, Op{Key: key}) }

// Key tags: the first byte of every key.
const (
	tagTeam         = 't' // t team → Team
	tagSeq          = 'q' // q name → uint64
	tagKey          = 'K' // K id → APIKey
	tagKeyHash      = 'H' // H hash → id
	tagKeyTeam      = 'T' // T team id → ""
	tagFlag         = 'f' // f team id → FlagRecord
	tagFlagKey      = 'F' // F team key → flag id (the claim)
	tagCohort       = 'c' // c team id → CohortRecord
	tagMember       = 'm' // m team cohort distinct_id → ""
	tagEarly        = 'e' // e team id → EarlyAccessFeature
	tagActivity     = 'a' // a team ^id → ActivityEntry
	tagItemActivity = 'i' // i team scope 0 item 0 ^id → ActivityEntry
	tagJob          = 'j' // j team id → BlastRadiusJob
	tagMarker       = 'M' // M name → Marker
)

// keyBuf builds order-preserving keys: fixed-width big-endian integers,
// NUL-terminated strings in the middle, raw strings at the end.
type keyBuf []byte

func newKey(tag byte) keyBuf { return keyBuf{tag} }

func (k keyBuf) int(v int64) keyBuf {
	return binary.BigEndian.AppendUint64(k, uint64(v))
}

func (k keyBuf) str(s string) keyBuf { return append(append(k, s...), 0) }

func (k keyBuf) last(s string) keyBuf { return append(k, s...) }

// inverted appends s with every byte complemented, so that ascending key
// order is descending order of s (s has a fixed length).
func (k keyBuf) inverted(s string) keyBuf {
	for i := 0; i < len(s); i++ {
		k = append(k, ^s[i])
	}
	return k
}

// upper returns the smallest key greater than every key with prefix k.
func upper(prefix []byte) []byte {
	u := bytes.Clone(prefix)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] != 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil // no upper bound
}

// after returns the smallest key greater than k.
func after(k []byte) []byte { return append(bytes.Clone(k), 0) }
