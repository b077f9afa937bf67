package store

import "context"

// IndexReader is implemented by stores that read the person → distinct ids
// index of many persons at once more cheaply than with one DistinctIDs call
// each (pebblestore: one iterator walking the sorted persons forward). It
// is optional: callers type-assert for it and fall back to DistinctIDs.
type IndexReader interface {
	// DistinctIDsOf returns the index entries of every person of keys
	// that has any, each sorted bytewise as DistinctIDs returns them;
	// persons without entries are absent from the map. The slices are the
	// caller's.
	DistinctIDsOf(ctx context.Context, keys []PersonKey) (map[PersonKey][]string, error)
}
