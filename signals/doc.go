// Package signals owns the cohort membership signals: their subject, their
// stream, their payload, and the per-row membership record from which the
// precompute worker derives them (docs/cohorts.md, "Membership signals").
//
// # Contract
//
// A Signal is published on CohortSubject (vexil.signals.<team>.cohort in
// namespace.Default) as JSON, with a JetStream message id equal to its ID.
// Stream (Names.Stream, "VEXIL_SIGNALS") captures them for the webhook
// delivery worker and for anyone else who wants to replay them; its
// duplicate window (DedupWindow) makes a republished transition one
// message.
//
// # Exactly once per transition
//
// Recorder.Observe compares the memberships the worker has just computed
// for a row with the row's membership record (a JetStream key-value entry,
// Names.Bucket), publishes one Signal per changed cohort, then replaces the
// record with a compare-and-set on the revision it read. A signal's ID is a
// hash of (team, distinct id, cohort, direction, ordinal), the ordinal
// being the number of transitions of that row and cohort so far, read from
// the record: a worker that crashes between publishing and the
// compare-and-set, a redelivered trigger, and two workers racing on one row
// all publish the same IDs from the same record, and JetStream keeps one
// message per ID. The first observation of a row and cohort records its
// baseline and publishes nothing.
//
// A group's row (group-aggregated cohorts) is observed the same way, with
// a record keyed by its type and key and signals that name the group
// (GroupType, GroupKey) instead of a person (GroupSignalID).
package signals
