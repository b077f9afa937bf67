package store

import "context"

// CountersReader is implemented by stores that read the behavioural
// counters of many rows at once more cheaply than with one GetRow each
// (pebblestore: one iterator walking the sorted keys forward, copying only
// the counters). It is optional: the projector type-asserts for it and
// falls back to GetRow.
type CountersReader interface {
	// CountersOf returns the Counters of every row of keys that exists
	// (nil for a row without counters); rows that do not exist are
	// absent from the map. The slices are the caller's.
	CountersOf(ctx context.Context, keys []DistinctKey) (map[DistinctKey][]byte, error)
}
