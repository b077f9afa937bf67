// Package vexil is the root of the Vexil feature-flag platform. It holds no
// code of its own: its tests check properties of the whole tree (every package
// documented, dependency direction between the architectural layers).
//
// The architecture, top level first:
//
//   - flags: the flag model and the PostHog-compatible evaluation engine.
//   - store: the denormalized store keyed for flag evaluation, with its backends.
//   - projector: applies the ingest stream (NATS JetStream) to the store.
//   - cmd/vexil: the single binary with its subcommands.
package vexil
