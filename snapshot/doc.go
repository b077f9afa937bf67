// Package snapshot exports the projected store to Apache Parquet, verifies
// and restores such exports, replays the ingest stream over a restored
// store, and evaluates flag definitions over a snapshot (what-if).
//
// # Format
//
// A snapshot is a directory: one Parquet file set per table (persons,
// mappings, person_distinct_ids, rows, groups, group_types; Tables; and,
// from the catalog, definitions and cohort_members), each
// file of at most Options.PartRows records in row groups of
// Options.RowGroupRows (8192 by default) so that readers stream it, zstd
// compressed, and manifest.json (Manifest): the format version, the team,
// the ingest stream and the two sequences below, per table its row count
// and per file its size, row count and SHA-256. Property columns are JSON
// text, readable by DuckDB, pandas (pyarrow) and Spark; persons and groups
// also carry the store's binary encoding of their registers (column
// state), which restore needs to rebuild them exactly. The library is
// github.com/parquet-go/parquet-go: pure Go, typed rows from struct tags,
// a streaming writer with explicit row-group flushes, and a small
// dependency set; Arrow's Go module (apache/arrow-go) would bring the
// Arrow columnar runtime and its allocator for what is here a row-by-row
// stream.
//
// The manifest is written last, after every file was synced and renamed
// into place, so a directory without one is not a snapshot.
// progress.json records the tables and parts already complete: Create run
// again on the same directory resumes after a crash at the last complete
// part (Resume, below) with the first run's cut. Memory is bounded by one row group per table being
// written, whatever the store's size (BENCHMARKS.md has the measurement).
//
// # Consistency while writes continue
//
// The snapshot is one pass of Store.Dump. On Pebble it reads a checkpoint
// (Options.Checkpoint, pebblestore.Store.OpenCheckpoint) taken after the
// cut into DATA_DIR/snapshot-checkpoint-*, beside the store so that its
// tables are hard links, opened read-only and removed when the scan ends:
// one point in time. The memtables are flushed first, so the checkpoint
// links every byte and copies only Pebble's small metadata files. An
// iterator over the live database gives the same point-in-time view; the
// checkpoint is chosen because the issue asks for it and because a long
// export through a live iterator pins the memtables and every table it
// started on for the whole scan, on the serving database, while the
// checkpoint's links pin only tables (no memtable memory), and its files
// are separate from the live directory (BENCHMARKS.md, "Snapshots", has
// the time and the bytes linked and copied). On ScyllaDB the scan is a
// paged scan of each table in turn (persons, mappings, index, rows, groups,
// group types), not a point in time. Two sequences make either exact:
//
//   - CutSequence, read before the scan: the projector's durable consumer's
//     ack floor. The projector acknowledges a message only after the store
//     write holding it returned, so every message at or below the cut is
//     in the store before the scan starts.
//   - EndSequence, read after the scan: the stream's last sequence. No
//     message after it can have been applied during the scan.
//
// Claim: restore, then replay of (CutSequence, S] with the production
// projector, gives for any S >= EndSequence exactly the state production
// has after applying every message up to S.
//
// Proof. The state of a person, mapping, group or group type is a join of
// the messages applied to it (package store's convergence rules: per-key
// registers by version, idempotent, order-independent; applying any
// permutation of a multiset with duplicates gives the same bytes). Each
// such entity was read once by the scan, at some instant during it, so its
// snapshot state is the join of a set M of messages with
// {<= CutSequence} ⊆ M ⊆ {<= EndSequence} ⊆ {<= S} (restricted to that
// entity). Replay joins every message of (CutSequence, S]; the result is
// the join of {<= S}, which is production's state at S, because joining a
// message twice changes nothing.
//
// Rows and the person → distinct id index are derived: the projector
// computes them from the person and the mappings and writes them, on a
// non-atomic backend, before the sources (projector.Config.AtomicStore).
// On ScyllaDB the scan reads persons and mappings before the index and
// rows, so a source change the snapshot holds had its derived writes
// before the source scan, hence before the derived scan: the derived
// entities in the snapshot are at least as new as their sources. They may
// be newer (a message m > CutSequence derived before the scan reached the
// rows, its source written after the source scan passed): then m is in
// (CutSequence, S], its replay changes the source in the restored store,
// and the projector rewrites every derived entity of that person from the
// converged source. A derived entity whose sources no replayed message
// changes was written from those same sources. Either way every derived
// entity ends equal to production's. On Pebble the single point-in-time
// view makes this immediate (a batch is all or nothing). A resumed Create
// rescans the derived tables whenever it rescans a source, which keeps the
// order (and one reading the interrupted run's checkpoint again reads the
// same point in time). Precomputed results and behavioural counters are stamped or
// idempotent by uuid, so replay keeps them convergent too (counters are
// compacted against the clock, so a digest comparison with counters needs
// the same clock).
//
// For S < EndSequence the restored state may hold messages after S:
// Replay's caller is told (vexil snapshot restore prints a warning). The
// stream keeps messages projector.IngestMaxAge (7 days): a snapshot older
// than that cannot be replayed, and Replay says so.
//
// TestSnapshotRestoreReplayProof checks the claim with a randomized
// workload published while the snapshot is taken, on Pebble and on
// Cassandra: digest (storetest.Digest) of restore + replay equals
// production's at the same sequence, and restore + replay to an earlier S
// equals a replay of the whole stream up to S.
//
// # Replay
//
// Replay copies the messages of (From, To] from production's stream (an
// ordered consumer: production's consumers are untouched) into a private
// in-process JetStream server and runs the production projector on it
// against the restored store, so the replayed state is what the projector
// makes of the same messages, batching and dead letters included.
//
// # Object storage
//
// S3 uploads a complete snapshot to an S3-compatible bucket through
// minio-go (every part, skipping those already there with the same size
// and SHA-256, then the manifest last) and downloads one into a directory,
// verified before its manifest is put in place. No S3 service runs on the
// development machine, so TestS3 runs minio-go against gofakes3 in
// process.
//
// # Restore
//
// Restore verifies every file's size, SHA-256 and row count before it
// writes, so a corrupt or truncated snapshot is refused with the target
// untouched (ErrCorrupt, naming the table, the file and the check); the
// target must be empty. vexil snapshot restore leaves RESTORE-INCOMPLETE
// in a data directory until the restore (and replay) succeeded.
//
// RestoreDefinitions loads the definitions table into the target's catalog
// (the data directory's Pebble catalog, or the ScyllaDB catalog of the
// keyspace) through catalog.Restorer: teams with their settings, flags,
// cohorts and early access features keep production's ids and versions, so
// flags still reference the same cohorts and flags and /flags answers the
// same versions; the id sequences move past them. The teams' project
// tokens (public: the SDKs embed them) are in the table too, so the SDKs'
// token works on the restored node; secure and personal keys never are.
// A catalog that holds a team is refused unless replace is asked
// (--replace-definitions). The member lists of static cohorts are the
// cohort_members table (team, cohort_id, distinct_id), paged out of the
// catalog with the definitions and added back to the restored cohorts (on
// replace, exactly the snapshot's list: other members are removed); a
// member of a cohort the snapshot does not define as static is refused as
// corrupt.
//
// Replay refuses what production's projector refuses: given the restored
// catalog's teams (ReplayOptions.Teams), a message of another team is
// dead-lettered (ingest.ReasonUnknownTeam) in the scratch server and
// counted by reason in ReplayResult.DeadLetters. A team created in
// production after the snapshot is unknown to the restored catalog, so its
// messages are refused there.
//
// # What-if with groups
//
// A snapshot's rows carry no group keys (a request names its groups, and
// the store keeps no person → group membership), so WhatIfOptions.Groups
// (vexil whatif --groups-file, JSON lines of distinct id → groups, bounded
// in bytes, lines and entries) gives them; group-aggregated conditions are
// then evaluated against those groups' properties in the snapshot's groups
// table, and definitions without group types take the snapshot's.
//
// # Resume
//
// progress.json records the cut, the tables complete and the table being
// written with its parts complete on disk (each with its size, row count
// and SHA-256) and the store position of its last record. Create run again
// on the same directory checks every recorded part against its checksum
// and resumes:
//
//   - reading a Pebble checkpoint, it opens the interrupted run's
//     checkpoint again (kept on failure, removed on success; the next
//     snapshot on the node removes an abandoned one): the same point in
//     time, so every intact table and part is kept and the dump continues
//     after the last part's position (pebblestore.Store.DumpFrom);
//   - on another view (a new checkpoint, the live store), derived tables
//     are kept only with both sources (above), and the current table's
//     parts only when no table before them is written again and the store
//     resumes a dump at a position; ScyllaDB's paged scans run in token
//     order with a paging state, not a key, so there a crashed table is
//     written again and the loss is bounded by one table.
//
// Either way each entity is read once between the cut and the end, so the
// consistency argument holds. TestCreateResumesAtPart kills the writer
// after N parts and checks that the resumed run reads only what follows,
// keeps the parts' files, and ends with an uninterrupted run's manifest.
package snapshot
