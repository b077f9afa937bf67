// Package pebblestore is the embedded store.Store on Pebble, Vexil's
// default for one machine.
//
// # Keys
//
// Keys are built by store/internal/keyenc: a kind byte, the team, then the
// entity's key components, encoded so that byte order is component order.
// A team's rows therefore sort by distinct id (ScanRows walks them in that
// order) and a person's index entries share one prefix (DistinctIDs is one
// short range scan). Every level has a bloom filter, so reads of absent
// keys (a GetRow miss, the projector's reads of new persons and rows) skip
// most tables.
//
// # Values
//
// A row, read on every evaluation, is a compact binary record (rowvalue.go):
// GetRow is one Get, one copy of the value and an in-place decode, two
// allocations in all. Its properties stay the JSON object bytes they were
// written as; its results stamp is one more varint. Persons and groups use
// the canonical encodings of package store (a group's results and stamp
// included); results written to a group never put are a small results-only
// record (groupvalue.go). A mapping is its version and person id.
//
// Expiry index entries are keys without values: kind 'x', the due time,
// the team, the target, so DueExpiries is one range scan from the start of
// the kind up to the due time. Dump skips them.
//
// # Writes
//
// Apply writes one Pebble batch committed with pebble.Sync: it is atomic,
// and durable when Apply returns (TestCrashRecovery checks both on crash
// images of an in-memory filesystem). Row writes that keep the stored
// Results and Counters, or compare results stamps, read the stored row
// first, in key order through one iterator; so do group writes (they keep
// or compare the group's results). Apply calls are serialized by a mutex
// held from those reads to the commit, which makes the versioned results
// compare atomic: racing SetResults converge on the winner.
package pebblestore
