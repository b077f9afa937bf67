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
// The driver's speculative execution is not used for hedged reads: gocql
// returns whichever attempt finishes first, errors included, so a hedge with
// no other host to go to ("no hosts available in the pool", seen on a
// one-node cluster) fails a read the first attempt would have answered.
// Hedging belongs above the store, keeping the first successful answer.
//
// # Metrics
//
// With Config.Registerer set: vexil_scyllastore_op_seconds{op} (latency of
// get_row, get_group, get_persons, get_mappings, scan_rows, scan_groups,
// due_expiries, apply),
// vexil_scyllastore_op_errors_total{op} (not-found answers excluded) and
// vexil_scyllastore_applied_writes_total. Driver log lines go to
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
