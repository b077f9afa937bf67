// Package vexilclient is Vexil's Go client for internal services: flag
// evaluation over gRPC (vexil.eval.v1.EvalService), remote or in process.
//
// # Remote evaluation
//
// [Client.EvaluateRemote] calls EvalService.Evaluate over a small pool of
// gRPC connections (Config.Conns, used round robin) with a deadline on
// every call (Config.Timeout). The connections carry a gRPC service config
// (see [ServiceConfig]): Evaluate and the opening of WatchDefinitions are
// retried on UNAVAILABLE, with retry throttling; ReportEvaluations adds to
// counters and is never retried. Evaluate is idempotent, so it is also
// hedged: a second attempt goes out on the next connection when the first
// has not answered within Config.HedgingDelay (or failed UNAVAILABLE), the
// first success wins, and hedges stay under a tenth of the calls. The
// client hedges itself because grpc-go does not implement the service
// config's hedgingPolicy (it parses retryPolicy only).
//
// # Local evaluation
//
// With a secret key (Config.SecretKey: a secure key phs_ or a personal key
// phx_ with flag:read), the client subscribes to WatchDefinitions, compiles
// each version of the team's definitions with the same engine the server
// runs (package flags) and [Client.Evaluate] answers in process, with no
// network call. The engine runs in partial mode: it knows only what the
// call passed. A flag it cannot decide from that (a person or group
// property the call did not pass, a static or behavioural cohort, a flag
// the server marks server-only with ensure_experience_continuity) is asked
// of the server in one Evaluate call for all such flags; every
// [Result] says which path answered it (Result.Path).
//
// When the stream breaks the client reconnects with exponential backoff
// and full jitter (Config.MinBackoff to Config.MaxBackoff) and meanwhile
// keeps answering from the last good definitions; [Client.Status] and
// every [Answer] report their age: how long since they were last known to
// be current (0 while the stream is up). A payload that does not parse is
// ignored and the previous definitions kept.
//
// # Evaluation counts
//
// The server counts the evaluations it answers; the ones answered locally
// it never sees. The client counts them per flag and value and sends the
// counts in batches (ReportEvaluations, every Config.ReportInterval, and at
// Close), so usage statistics include them. A batch that fails is kept and
// merged into the next one, up to MaxPendingCounts distinct counts.
//
// The package imports only gRPC, the generated protobuf code and package
// flags, so a service can import it on its own.
package vexilclient
