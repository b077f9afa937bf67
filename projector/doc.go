// Package projector applies the ingest stream to the store: it reads the
// Vexil ingest subjects (docs/ingest.md) from a durable JetStream pull
// consumer, decodes and validates each message (package ingest), applies
// batches through the store's pure convergence logic and one durable store
// write per batch, and acknowledges a batch only after that write returned.
//
// # Delivery
//
// Delivery is at-least-once and may be reordered; applying a message is
// idempotent and order-independent (package store's registers), so
// redeliveries after a crash and duplicates are harmless. Messages of one
// batch are applied in order against an overlay of the state read for the
// batch, so several messages for one person compose before the one write.
//
// Three goroutines hand work on through bounded queues: one forms and
// decodes batches, one prepares them (store reads and convergence), one
// commits them (dead letters, the store write, acks). A batch is prepared
// while the one before it is being written, reading through that batch's
// overlay; at most one batch is ahead of the write.
//
// # Dead letters
//
// A message that can never be applied (undecodable, unknown kind, team
// mismatch or unknown team, wrong types, missing fields, over a size limit)
// is published with JetStream acks to DeadLetterPrefix + its subject, with
// headers carrying the reason code (ingest.Reason), the reason text, the
// original subject, stream and sequence; then it is acknowledged so the
// stream keeps moving.
//
// # Metrics
//
// On the Registerer of Config: vexil_projector_applied_total,
// vexil_projector_dead_lettered_total{reason}, vexil_projector_batch_seconds,
// vexil_projector_lag_messages and vexil_projector_lag_seconds.
package projector
