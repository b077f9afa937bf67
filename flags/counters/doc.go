// Package counters is the compact encoding of a row's behavioural
// counters (store.Row.Counters): for each tracked (event, event filters)
// pair ([flags.EventPair]) the events counted, in buckets, and the ids of
// the recent events, so that an event counts once. [Row] implements
// [flags.EventHistory].
//
// # Tiers
//
// One-second buckets within ExactSpan (24 h) of the row's newest counted
// event, at most MaxExact per pair (older seconds of that day by minute);
// hour buckets beyond, where an event counts as at the start of its hour
// (up to 3599 s less long); nothing older than MaxWindow (90 days). Compact
// gives one layout for one set of events, whatever their order.
//
// # Counting once
//
// Add skips an event whose uuid is among the ids kept (those of the
// DedupSpan, 24 h, before the newest event, at most MaxSeen) and does not
// count one too old to be checked. docs/cohorts.md has the rules and the
// measured sizes.
package counters
