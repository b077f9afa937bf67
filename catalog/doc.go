// Package catalog stores Vexil's definitions: teams and their group types,
// API keys, feature flags, cohorts (with static members), early access
// features, the activity log and blast-radius jobs. The management API
// writes it; the evaluation side reads a team at a time through Snapshot.
//
// # Versions and compare-and-set
//
// Every versioned record (team, key, flag, cohort, early access feature,
// job) is created with Version 1 and replaced only by a compare-and-set on
// the version the caller read: the backend stores Version+1 if the stored
// version is the one given, else returns ErrConflict. Two writers, in one
// process or on two nodes sharing a database, can never both win. A flag's
// version is flags.Flag.Version and a cohort's is flags.Cohort.Version, so
// the version the engine sees is the version the catalog checks.
//
// # Uniqueness
//
// A flag key is unique among the live (not deleted) flags of a team. The
// backends keep a claim per (team, key) naming the flag that holds it;
// deleting a flag or renaming its key releases the claim. A key's id and
// its hash are unique too.
//
// # Activity
//
// Each write takes a Change (who, what, an optional diff) and the catalog
// stores an ActivityEntry with it: in the same atomic batch for the
// embedded backends; right after the successful conditional write on
// ScyllaDB (see package scyllacatalog for the window this leaves). Entry
// ids are time-ordered, so the log is listed newest first with a cursor.
//
// # Markers
//
// A marker (Markers) is a small named record of the whole cluster, created
// with IF NOT EXISTS and replaced by a compare-and-set on its version: of
// several nodes starting at once on one catalog, exactly one seeds the demo
// or creates the first key, and the others read what it did.
//
// # Backends
//
// memcatalog (tests, single process), pebblecatalog (one node, its own
// directory) and scyllacatalog (a cluster, LWT). All three pass the
// contract suite in catalogtest.
package catalog
