// Package schema holds Vexil's CQL schema for ScyllaDB (and Cassandra 5.0,
// which the tests run against) and applies it on start.
//
// # Files
//
// bootstrap.cql creates the keyspace (NetworkTopologyStrategy with the
// 'replication_factor' shorthand, which both databases accept) and the
// schema_migrations table. The numbered files 001_*.cql, 002_*.cql ... are
// the migrations, applied in order and recorded in schema_migrations with a
// checksum. All are embedded in the binary. On a ScyllaDB with tablets the
// keyspace is created with tablets disabled (Config.Tablets), because the
// catalog tables use lightweight transactions. Statements name their tables as
// {{keyspace}}.table; the keyspace comes from Config.
//
// # Rules for migrations
//
// A migration, once released, is never edited (Apply fails with
// ErrChecksumMismatch); changes go into a new numbered file. Every statement
// must be idempotent (CREATE ... IF NOT EXISTS), so that a migration cut
// short is completed by the next Apply. Only full-line "--" comments; no ';'
// inside a statement.
//
// # Table design
//
// The tables are described in 001_store.cql. In short: each entity is one
// partition keyed by its natural key, so the hot reads (GetRow, GetGroup)
// are single-partition reads; tables written together for one key share the
// partition key, so one UNLOGGED batch updates them on one replica set; the
// store upserts state computed by package store's convergence logic without
// reading first, with versions in columns rather than in write timestamps
// (precomputed results excepted: their stamp is the write timestamp); a
// team's rows and groups are scanned through fixed-bucket clustering
// indexes rather than a cluster-wide token-range scan; and the expiry index
// of precomputed results is a sharded, time-clustered table.
package schema
