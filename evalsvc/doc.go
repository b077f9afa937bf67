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
//
// Each flag is then answered from its stored result when the precompute
// workers wrote one that is still current (package precompute; package
// results says exactly when: the stamps of the row, the definitions and
// valid_until, and no request override of a property the flag reads), and
// evaluated live from the same row, the group rows and the request's
// property overrides (which win) otherwise. Flags that no single row
// decides (static cohorts, users AND groups, request-only properties) are
// always live. The stored properties are decoded only when some flag is
// live. Config.LiveOnly, or the header X-Vexil-Eval: live on a request,
// evaluates every flag live; X-Vexil-Debug asks for X-Vexil-Flag-Sources,
// the source of each answer.
//
// Static cohort membership is not in the row: a flag that reads a static
// cohort asks the catalog (Definitions.IsCohortMember), once per cohort
// and request, under the same deadline as the row read.
//
// # Answers by source
//
// Service.FlagAnswers counts each flag's answers by source (stored, or
// live and why), in memory, for the flags in the HyperCache. Prometheus
// has the totals by source only (vexil_evalsvc_flag_answers_total): every
// metric label of the package has a fixed set of values, never a team, a
// flag or a distinct id.
//
// # The gRPC API
//
// RegisterGRPC serves vexil.eval.v1.EvalService for internal services:
// Evaluate runs the evaluation of /flags (the same admission, token check,
// reads and engine) and WatchDefinitions streams a team's local-evaluation
// payload, sending a new one whenever the team's HyperCache entry is
// replaced with a different ETag (the cache closes a per-team channel on
// every replacement; nothing polls). Gateway serves Evaluate over HTTP as
// POST /api/evaluate through a client connection.
//
// # Admission
//
// Every request passes Config.Admission (package admission) before its body
// is read: /flags, /decide and Evaluate as remote evaluation, the
// definitions and WatchDefinitions (until its first payload) as polls. A
// refusal is answered at once: 503 with Retry-After, RESOURCE_EXHAUSTED on
// gRPC (errcode overloaded). Once the token names a team, the team's quota
// is taken: over it, /flags and /decide answer as PostHog does for a
// project over its flag quota (200, no flags, quotaLimited
// ["feature_flags"]), the definitions 429 with Retry-After (PostHog's 402
// would make the SDKs drop their definitions), gRPC RESOURCE_EXHAUSTED
// rate_limited.
//
// # Errors
//
// One table (errors.go) lists every way an evaluation request fails, by
// the stable code PostHog's SDKs see, with its errcode code: HTTP answers
// errcode's status and a PostHog error body ({type, code, detail, attr});
// gRPC answers errcode's status with the PostHog code in ErrorInfo
// metadata posthog_code.
//
// # Bounds
//
// What one request may cost is bounded, so that no request can take the
// node's memory or its CPU for seconds. A body whose Content-Length is over
// Config.MaxBodyBytes is refused before it is read (one without is read one
// byte past it); gzip stops at Config.MaxDecodedBytes; decoding stops at
// the first value past Config.MaxValues or longer than
// Config.MaxStringBytes (wire.Limits; 413 with the field at fault). gRPC
// Evaluate is decoded as the /flags body it stands for, within the same
// limits. A regex filter compiles to at most flags.MaxRegexProgram
// instructions, so one match costs at most that times MaxStringBytes; the
// live evaluation stops at Config.EvalTimeout (flags.Context.Deadline) and
// the flags not yet decided answer failed. New requests are shed with 503
// memory_pressure, before their body is read, while the live heap (read
// from runtime/metrics at most every Config.MemorySampleInterval) is over
// Config.MemoryShedFraction of the memory limit.
//
// # Failure
//
// Every read of a request (row, groups, static cohort membership) shares
// one deadline, Config.StoreTimeout. If the row or a group cannot be read
// before it, the flags are evaluated from the request's properties alone
// in partial mode: flags that need a missing property come back failed,
// the others with their value. A membership that cannot be read before it
// fails the flags that need it (cohort_unavailable). Either way the
// response says errorsWhileComputingFlags, and a request never waits on a
// read past its deadline, provided the store and the catalog honour their
// context. A store whose reads are local (store.LocalReader: memstore,
// pebblestore) is read under the request's own context, without the
// deadline: nothing can interrupt such a read, and the deadline's timer was
// a tenth of a request's garbage; the deadline still bounds the membership
// reads.
//
// # Usage statistics
//
// With Config.Usage set, every answered remote evaluation (/flags,
// /decide, gRPC Evaluate) is counted per flag (endpoint, value, stored or
// live, failed, the distinct id) and every definitions request or watch
// payload per team, into package usage's in-memory recorder; the node
// flushes it to the store in the background (docs/usage.md).
package evalsvc
