// Package usage is Vexil's flag usage statistics, stale-flag detection
// and evaluation anomalies (docs/usage.md).
//
// # Counting
//
// The evaluation service counts every remote evaluation (POST /flags,
// /decide, gRPC Evaluate) per flag into a Recorder: the endpoint, the
// value answered (variant, "true" or "false"), whether precomputed
// results answered, whether it failed, and the distinct id into a
// HyperLogLog sketch (github.com/axiomhq/hyperloglog, precision 14: 0.81%
// standard error). Local-evaluation definitions requests are counted per
// team (the SDK evaluates every flag itself), and the local evaluations
// clients report (Reported: the Go client's ReportEvaluations, PostHog
// SDKs' $feature_flag_called events through capture) per flag. The
// counters are sharded by the distinct id's hash (4 × GOMAXPROCS shards,
// one uncontended lock per request), and a request that evaluates every
// flag of its team (RecordAll, against the team's Layout) inserts its
// distinct id once, into a per-team sketch, instead of once per flag, and
// is counted from the evaluation's own results (Answer, Tally), copied
// nowhere, in a table of one cache line per flag (slots.go).
// BenchmarkRecord50 and evalsvc's BenchmarkServeFlagsUsage measure the
// cost (BENCHMARKS.md).
//
// # Storing
//
// Recorder.Run flushes every FlushInterval (10 s): the shards' counts are
// added to the node's open minute, hour and day buckets of each flag, and
// every changed bucket is written whole as the node's row (store.UsageRow,
// Node in the key), with the flag's last-evaluated row. Each node writes
// only its own rows and a restarted node takes a new name, so no write
// ever reads another; readers merge the rows of every node (counts add,
// sketches union), which is how several evaluation nodes sum. Counts
// between two flushes belong to the bucket of the flush's time. Rows are
// kept MinuteRetention (48 h), HourRetention (31 days) and DayRetention
// (90 days): the rollup minute → hour → day is done as the counts are
// written, and retention deletes the older rows (TTL on ScyllaDB,
// SweepUsage elsewhere).
//
// # Reading
//
// Service answers a flag's series over a range at a resolution, a team's
// summary, last evaluated, the per-team stale_after_days setting, each
// flag's status (ACTIVE, STALE, ARCHIVED: StaleRule) and Findings, the
// stale flags and evaluation anomalies (AnomalyRule) an agent should be
// told of, which the MCP server's signals inbox takes. Routes serves them
// over REST beside the management API, with its keys and scopes.
package usage
