// Package precompute materialises per-row flag results into the store, so
// that /flags is a single keyed read: the evaluation service takes a flag's
// stored result when it is current (docs/design.md §2; package results says
// exactly when) and evaluates it live from the same row otherwise. Stored
// results only make answers faster; they never make them different.
//
// # Triggers
//
// Every trigger goes through NATS JetStream, so any number of workers share
// the work:
//
//   - Row triggers (Names.RowSubjectPrefix + team, in the namespace of
//     Config.Namespace: NamesOf): the projector publishes the
//     rows and groups of each durable batch before it acknowledges the
//     batch (projector.Config.OnCommit → Publisher.Publish); the evaluation
//     service asks for the rows it found stale (Publisher.Repair); the
//     expiry loop turns due valid_until entries into triggers. A worker
//     waits for a trigger (one long pull request: an idle worker asks
//     NATS nothing), gathers more for Config.Coalesce from it, and
//     recomputes each row once, however many writes named it.
//   - Runs: the management API's change notices (changes.Subject) are
//     captured by ChangeStream; the worker that receives one compiles the
//     team, compares its plan with the last run's stamps, and starts a run
//     for the flags that changed (a flag, a cohort it reads, a flag it
//     depends on). It scans the team's rows and groups and publishes pages
//     (PageSubjectPrefix + team) that any worker computes. The run state in
//     RunBucket is the checkpoint (a scan resumes from its cursor when the
//     notice is redelivered after a crash) and the progress (rows done and
//     total, rate, ETA: logs and the management API through
//     Status). A newer change replaces the state, which supersedes the
//     older run: its remaining pages are skipped and its flags join the
//     new run. Workers reconcile every team on start and every
//     ReloadInterval, so a team never materialised gets its first run.
//   - valid_until: a result that time alone changes (relative dates, a
//     behavioural cohort's window: docs/cohorts.md)
//     carries valid_until; the store's time-ordered expiry index
//     (store.Batch.PutExpiry, Store.DueExpiries) brings it back at that
//     instant, without a scan. Until then, and if the worker is late, the
//     read path checks valid_until itself.
//   - Membership signals: a row recompute of a team with behavioural
//     cohorts also compares the row's memberships with its membership
//     record and publishes the transitions (package signals); a
//     membership that time alone will change puts the row in the expiry
//     index too (Config.NoSignals turns this off).
//
// # Sharing the CPU
//
// Computations are background work beside the requests the node answers.
// With Config.Arrivals (the evaluation service's count of requests) they
// pause between rows after each slice of about a millisecond while
// requests arrive, so that a server with one P reads and answers them
// instead of leaving them in their sockets for a whole batch (pacer).
// vexil_precompute_backlog says what no worker has finished yet (row
// triggers, pages, change notices, runs): all zero, precompute is idle,
// which is when a benchmark measures steady state.
//
// # Versioned writes
//
// A computation takes its stamp (wall-clock microseconds, strictly
// increasing per process) before it reads, and writes with
// store.Batch.SetResults(…, stamp): the store keeps the result with the
// larger stamp, so a slow worker never overwrites a newer result and two
// workers racing on a row converge to the one that read the newer state.
// Correctness never depends on it: every stored entry is checked against
// what it was computed from (the row's version and revision in the
// results' header; its flag's definitions stamp through the digest of its
// stamp group, precompute/results/codec.go), and the read path checks them.
package precompute
