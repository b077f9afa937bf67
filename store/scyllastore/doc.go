// Package scyllastore implements store.Store on ScyllaDB (and Cassandra 5.0,
// which the tests run against) through gocql (the scylladb/gocql fork).
//
// # Tables
//
// The CQL schema lives in package schema (001_store.cql explains every
// table). Open applies it when Config.ApplySchema is set.
//
// # Writes
//
// Apply never reads. It turns a store.Batch into CQL statements grouped by
// partition: the mapping and the row of a distinct id share the partition key
// (team, distinct_id), a person and its index entries share (team,
// person_id), the bucket entries of the team-scan index share (team,
// bucket). Each group is one UNLOGGED batch (single partition: one replica
// set, applied atomically per replica); groups run in parallel, at most
// Config.WriteConcurrency at a time. Apply returns when every statement was
// acknowledged at Config.Consistency, so a nil return is durable at that
// level; a failed Apply may have written part of the batch, which is safe:
// the projector replays the same messages and the convergence logic gives
// the same state. Large groups are split into several batches (at most
// maxBatchStatements statements, maxBatchBytes bytes), below the 1 MiB batch
// limit of ScyllaDB.
//
// # Write timestamps
//
// Every statement of one Apply carries the same client timestamp, taken from
// a process-wide clock that is strictly increasing (the wall clock in
// microseconds, or the previous value + 1), so a later Apply always wins over
// an earlier one in this process even within one microsecond, e.g. a row
// deleted and written again. It never runs more than a few microseconds
// ahead of the wall clock, far inside ScyllaDB's now + 3 days limit.
// Versions are not used as timestamps: they are arbitrary int64s, and the
// convergence logic has already decided by version before Apply. Several
// processes writing the same keys are ordered by their wall clocks, as in any
// Cassandra application: run one projector per stream partition.
//
// The exception is precomputed results (rows.results, groups.results):
// they are written USING TIMESTAMP <stamp>, the writer's hybrid logical
// clock in microseconds (near now, inside the + 3 days limit), so the
// cell's last-write-wins is the versioned write of store.ResultsWin (at
// equal timestamps both databases keep the larger value, compared as
// unsigned bytes, as the contract suite checks), and GetRow and GetGroup
// read the stamp back with WRITETIME(results). No read before write. Empty
// results are written as an empty blob, not a null, so that the cell keeps
// its timestamp. A row delete, at the Apply's timestamp, shadows the results
// stamped before it. A delete and a results write of one row in one batch
// write the new results at their stamp and delete the results cell at stamp
// - 1: results stamped at or after the new stamp that win by ResultsWin
// survive (the embedded backends, which read, keep only the new ones).
//
// # Expiry index
//
// result_expiry is sharded: ExpiryShards partitions by a hash of (team,
// target), each clustered by (at, team, target). DueExpiries reads every
// shard in parallel (at <= until, LIMIT limit) and merges. Entries are
// written with a TTL that ends ExpiryTTLGrace after At, and the table's
// gc_grace_seconds is short (schema/001_store.cql explains why).
//
// # Reads
//
// GetRow and GetGroup are single-partition reads routed to a replica by the
// token-aware policy. Multi-key reads (GetPersons, GetMappings, scans) issue
// parallel point reads, at most Config.ReadConcurrency at a time. Every
// multi-row query pages with the driver's paging state until it is empty,
// never assuming full pages (ScyllaDB may return short or empty pages).
//
// # Hedged reads
//
// GetRow and GetGroup, the reads of /flags, are hedged: when a read has
// not answered after the hedge delay, the same read is sent again to
// another host (Config.HedgeAttempts more at most, one delay apart), and
// the first answer, found or not found, wins; the others are cancelled
// and waited for. A failed attempt does not fail the read while another
// is in flight. A hedge routes around a slow coordinator (the first
// replica the driver picks, which with consistency ONE or LOCAL_ONE
// usually answers from its own data); a slow replica behind a healthy
// coordinator is the database's own speculative retry (the table option
// speculative_retry).
//
// The delay is Config.HedgePercentile (p95) of the latencies of the last
// 1,000 to 2,000 answered reads, clamped to [HedgeMinDelay, HedgeMaxDelay]
// (1 ms, 50 ms), and the maximum until 64 reads were answered. The latency
// recorded is the winning attempt's own, not the read's: reads a hedge
// answered count at the hedge's latency, so a persistently slow node does
// not drag the delay up to its own latency and switch hedging off, while a
// cluster slow everywhere raises the delay and hedges less. On top of
// that, Config.HedgeBudget (0.2) caps hedges at a fraction of reads.
//
// The attempts of one read go to distinct hosts: the store wraps the
// token-aware host selection policy, and each attempt's query context
// names the read, so the wrapper skips the hosts its other attempts have
// taken (the hedge goes to the next replica in the driver's order). With
// fewer than two hosts up there is nowhere to go and nothing is hedged.
//
// The driver's own speculative execution (gocql's
// SpeculativeExecutionPolicy) is not used: it returns whichever attempt
// finishes first, errors included, so a hedge with no other host to go to
// ("no hosts available in the pool", on a one-node cluster) or failing
// fast fails a read the first attempt would have answered, and it does
// not tell which attempt answered, which the hedge metrics need.
//
// Writes are not hedged. Every write would be safe to repeat (each carries
// a client timestamp: the Apply's, or the results' stamp with USING
// TIMESTAMP, so a second copy writes the same cells at the same timestamp,
// and the statements are marked idempotent for the driver's retries), but
// a hedge does not make a write faster: the coordinator already sends it
// to every replica and waits for the consistency level, so a slow replica
// is masked by the quorum, and a hedge would double the write load to
// save a slow coordinator's time on a path (the projector's batches) that
// is measured in throughput, not latency.
//
// # Metrics
//
// With Config.Registerer set: vexil_scyllastore_op_seconds{op} (latency of
// get_row, get_group, get_persons, get_mappings, scan_rows, scan_groups,
// due_expiries, apply),
// vexil_scyllastore_op_errors_total{op} (not-found answers excluded),
// vexil_scyllastore_applied_writes_total, and for hedged reads (op
// get_row or get_group) vexil_scyllastore_hedges_total{op} (hedges sent),
// vexil_scyllastore_hedge_wins_total{op} (reads a hedge answered),
// vexil_scyllastore_hedges_throttled_total{op} (hedges the budget refused)
// and vexil_scyllastore_hedge_delay_seconds. Driver log lines go to
// Config.Logger at Warn.
//
// # Scans
//
// ScanRows walks the team's RowBuckets index partitions in order; the cursor
// is the bucket and the last distinct id returned. The order is therefore
// (bucket, distinct id), deterministic for a given content but not the
// bytewise distinct id order of the embedded backends. ScanGroups walks
// group_index the same way: GroupBuckets partitions per (team, group type),
// written with every group put.
package scyllastore
