// Package scyllacatalog implements catalog.Catalog on ScyllaDB (and
// Cassandra 5.0, which the tests run against) with lightweight
// transactions, so that several nodes can write one catalog.
//
// # Tables
//
// schema/002_catalog.cql creates them; package schema applies it. Records
// are JSON in a data column beside the version that conditions check. A
// team's flags, cohorts, early access features and jobs are clustering rows
// of one partition per team: listing them and Snapshot are single-partition
// reads.
//
// # Compare-and-set
//
// A record is created with INSERT ... IF NOT EXISTS and replaced with
// UPDATE ... IF version = ?; a write that is not applied is ErrConflict
// (or ErrExists). The catalog reads the record first to check the version
// and build the new one, but only the condition decides: two nodes that
// read the same version cannot both write. Conditional writes carry no
// custom timestamp, and the catalog never asserts on the row an applied
// LWT returns (Cassandra returns none, ScyllaDB the old row). A conditional
// write that times out has an unknown outcome; the catalog returns the
// driver's error (not ErrConflict) and a retry by the caller finds out.
//
// # Flag keys
//
// A live flag's key is held by a claim row (team, key) → flag id. Creating
// a flag allocates its id, claims the key (IF NOT EXISTS), then inserts the
// flag; renaming claims the new key before the conditional update and
// releases the old one after it; deleting releases the key after the
// update. Releases are conditional on the flag id. A writer that crashes
// between these steps leaves a claim that names a missing, deleted or
// renamed flag: such a claim is taken over (conditionally on its flag id)
// once it is older than Config.ClaimGrace. A younger one is honoured, since
// it may belong to a write in progress.
//
// # Ids
//
// Team, flag and cohort ids come from LWT sequences (UPDATE ... IF value =
// ?); early access features and jobs have random UUIDs.
//
// # Keys
//
// catalog_keys is keyed by the hash of the secret, so authentication is one
// keyed read and revocation a conditional update of that same row.
// catalog_key_ids makes ids unique and resolves GetKey (two reads). PutKey
// claims the id, indexes the key under its teams, then inserts the key row
// (IF NOT EXISTS on the hash); a taken hash undoes the first two. A crash in
// between leaves an id that no key uses (ids are random) and index rows
// that ListKeys skips.
//
// # Activity
//
// The activity entry is written after the conditional write succeeded, as a
// logged batch into the per-team and per-record tables, retried a few times;
// its id is fixed before the first attempt, so retries rewrite the same
// rows. A crash (or a database outage) in the instant between the two loses
// that entry while the change stands: the loss is logged. The per-team
// activity partition grows with the team's history.
//
// # Metrics
//
// With Config.Registerer: vexil_catalog_cas_not_applied_total{kind},
// vexil_catalog_claim_takeovers_total and vexil_catalog_activity_lost_total.
//
// # Reads
//
// Multi-row reads page with the driver's paging state until it is empty,
// never assuming full pages. Snapshot reads the team, then its flags,
// cohorts and features: each list is one partition, but the three are not
// one transaction; a change landing in between is picked up by the next
// snapshot, which its change notice triggers.
package scyllacatalog
