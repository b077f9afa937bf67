// Package evalsvc answers flag evaluation: PostHog's /flags and /decide
// (through the wire package), the local-evaluation definitions, and the
// same evaluation for internal callers.
//
// # The read path
//
// Each node keeps a HyperCache: every team's definitions compiled for
// evaluation ([flags.Set]) and the local-evaluation payload pre-serialized
// with its ETag. Change notices on NATS (vexil.changes.<team>) refresh a
// team; a periodic full reload backs them up. A request costs one keyed
// read of the (team, distinct_id) row, plus one read per group named in the
// request when the team's flags target that group type, done in parallel.
// Every flag is evaluated live from the row, the group rows and the
// request's property overrides, which win over stored properties.
//
// # The gRPC API
//
// RegisterGRPC serves vexil.eval.v1.EvalService for internal services:
// Evaluate runs the evaluation of /flags (the same admission, token check,
// reads and engine) and WatchDefinitions streams a team's local-evaluation
// payload, sending a new one whenever the team's HyperCache entry is
// replaced with a different ETag (the cache closes a per-team channel on
// every replacement; nothing polls). Gateway serves Evaluate over HTTP as
// POST /api/evaluate through a client connection. Errors follow package
// errcode's table.
//
// # Failure
//
// If the store cannot be read before its deadline, the flags are evaluated
// from the request's properties alone in partial mode: flags that need a
// missing property come back failed, the others with their value, and the
// response says errorsWhileComputingFlags. A request never waits past its
// deadline.
package evalsvc
