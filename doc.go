// Package vexil is the root of the Vexil feature-flag platform. It holds no
// code of its own: its tests check properties of the whole tree (every package
// documented, dependency direction between the architectural layers: an
// allow-list per layer in deps_test.go).
//
// The architecture, top level first:
//
//   - flags: the flag model and the PostHog-compatible evaluation engine.
//   - store: the denormalized store keyed for flag evaluation (memory,
//     Pebble, ScyllaDB) and schema, its CQL.
//   - changes and streams: the change-notice contract (subjects and
//     payload), and the one policy for the JetStream streams every role
//     creates.
//   - projector: applies the ingest stream (NATS JetStream) to the store.
//   - catalog: definitions (teams, keys, flags, cohorts, early access,
//     activity) with compare-and-set writes.
//   - admin and errcode: the management API and its error table.
//   - evalsvc: evaluation (/flags, definitions, gRPC) from one row read.
//   - precompute: the worker that materialises flag results into rows.
//   - loadtest: the load generator behind vexil loadtest.
//   - cmd/vexil: the single binary with its subcommands.
//   - natstest and polltest: test support (NATS with JetStream in process,
//     polling until a condition holds), imported only by tests.
package vexil
