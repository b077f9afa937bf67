// Package streams creates the JetStream streams of Vexil's roles: the
// projector's ingest and dead-letter streams, the precompute worker's work
// and change-notice streams. Each role owns its stream's default
// configuration; this package owns what happens when the stream exists.
//
// # Policy
//
// Ensure applies one policy to every stream:
//
//   - a stream that does not exist is created with the role's defaults;
//   - a stream that exists is left exactly as its operator configured it
//     (retention, limits, replicas, even subjects), and each of its settings
//     that differs from the role's defaults is logged in one warning, so a
//     deliberate choice stays and an accidental one is visible.
//
// Nothing updates an existing stream: a newer Vexil whose defaults changed
// warns about an older stream instead of rewriting it. Differences is the
// comparison behind the warning.
//
// # Namespaces
//
// Environments sharing one NATS each have a namespace (package namespace)
// from which their names derive. Claim binds a namespace to the store it
// serves, so a node configured with one environment's store and another's
// namespace refuses to start instead of taking that namespace's messages.
//
// # Waiting for work
//
// A role that pulls from a consumer waits for its next message with Next:
// one long pull request (IdlePoll) that a shutdown ends at once, not a
// short one asked again and again, which on an idle node was most of its
// garbage and a steady load on the NATS server.
package streams
