// Package canary is Vexil's side canary: it sends the same evaluation
// requests (PostHog's /flags and /decide, the local-evaluation
// definitions) to a baseline and a candidate, compares every answer
// (status, flag values, variants and payloads; definitions' filters) and
// their latencies, and reports each divergence with the request that
// caused it. The requests come from a recorded request log (JSON lines,
// ReadLog) or are generated like vexil loadtest's (Generator); a share of
// them is mirrored. Result.Gate is the deploy pipeline's verdict: any
// divergence, or a p99 regression beyond a threshold, fails it.
//
// The candidate may be another environment with its own keys: the
// baseline's project token and personal key in a request are replaced by
// the candidate's. Answers are compared on what a client sees, not on
// what differs between two catalogs by construction (flag ids, versions,
// team ids, cohort ids).
package canary
