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
// # Events
//
// Config.Events gives a team's compiled cohorts: the events of the
// (event, event filters) pairs their behavioural filters track are counted
// into the behavioural counters of the distinct id's row (package
// flags/counters), in the batch's overlay and its one durable write, and
// each row's counters are compacted once per batch; every other event is
// dropped after validation, before its properties are decoded. Counting is
// idempotent by the event's uuid: the row keeps the ids of the events of
// its last 24 hours (at most 512), so redelivery, duplicates and
// reordering count once (docs/cohorts.md).
//
// # After a crash
//
// What a killed run had delivered but not acknowledged stays pending on the
// durable consumer until the consumer's ack wait (AckWait) since the
// message's last delivery expires; JetStream then hands it to whichever run
// pulls next. So the ack wait is short (5 s by default), and a live run
// keeps every message it holds in progress: from the moment the NATS client
// hands a message over (the delivered queue has room for MaxAckPending, so
// none waits unseen in the client) until its batch is acknowledged, a
// message held longer than AckWait/4 gets an in-progress ack every AckWait/4
// to AckWait/2. A slow or retried store write, or a slow commit hook, thus
// causes no redelivery while its run is alive, and after a crash the
// successor applies what its predecessor held at most AckWait after the
// predecessor last touched it.
//
// Resetting the consumer when a run starts (JetStream's consumer reset to the
// ack floor) would bring those messages back at once, but a start cannot tell
// a dead predecessor from a live process consuming the same durable (several
// vexil serve on one ScyllaDB, a rolling deploy's overlap): every start would
// take the live one's in-flight messages away from it. The short ack wait is
// right whoever else is consuming, and needs nothing newer from the server.
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
// Every dead letter is published and counted, but not every one is logged:
// in each DeadLetterLogInterval (a window opened by a dead letter) the first
// DeadLetterLogBurst get a line each, and when the window is over one line
// says how many more there were ("1995 more dead letters in the last 1m0s"),
// by reason, with the first of them as a sample.
//
// # Metrics
//
// On the Registerer of Config: vexil_projector_applied_total,
// vexil_projector_dead_lettered_total{reason}, vexil_projector_batch_seconds,
// vexil_projector_batch_messages, vexil_projector_retries_total,
// vexil_projector_progress_acks_total, vexil_projector_lag_messages and
// vexil_projector_lag_seconds.
package projector
