// Package store is the denormalized store that flag evaluation reads: its
// interface, entity types, sentinel errors and the pure convergence logic that
// every backend and the projector share.
//
// # Entities
//
//   - Person, keyed (team, person id): the canonical property state as per-key
//     registers plus a delete tombstone. Only the projector reads it.
//   - Mapping, keyed (team, distinct id): which person a distinct id belongs
//     to, a last-writer-wins register by version.
//   - IndexEntry, keyed (team, person id, distinct id): the person → distinct
//     ids index the projector uses to fan a property change out to rows.
//   - Row, keyed (team, distinct id): the unit of evaluation, denormalized on
//     purpose. It carries the person's effective properties and version, a
//     properties revision, and the opaque Results and Counters that later
//     stages fill and that person rewrites keep.
//   - Group, keyed (team, group type index, group key), and GroupType,
//     keyed (team, index). A group carries opaque Results too.
//   - Expiry, keyed (team, at, target): the time-ordered index of when
//     precomputed results must be recomputed (Store.DueExpiries).
//
// # Convergence
//
// Ingest delivery is at-least-once and may be reordered, so the state is a
// CRDT: applying any permutation of the same multiset of messages, duplicates
// included, gives the same Person, Mapping and Group values, byte for byte.
// The rules live here as methods (Person.ApplyUpdate, Person.ApplyDelete,
// Mapping.Merge, Group.ApplyUpdate, MergeGroupTypeName) and DeriveRow, so the
// backends stay dumb storage: they persist what they are given in one durable
// Batch and read it back.
//
// Person property rules, per key:
//
//   - The S register holds the $set or $unset with the highest version (an
//     $unset is a tombstone). At equal versions a set beats a tombstone and
//     the bytewise larger value wins.
//   - The O register holds the $set_once with the lowest version. At equal
//     versions the bytewise smaller value wins.
//   - Effective value: S set → S's value; S tombstone at version vu → O's
//     value if O's version > vu, else absent; no S → O's value if any.
//   - A delete at version vd drops S registers with version <= vd and blanks
//     O registers with version <= vd (they keep their version, lose their
//     value); mappings with version <= vd to that person are dead, so their
//     rows disappear. Registers that arrive later with version <= vd are
//     treated the same way.
//
// Deviations from applying the messages one by one in version order, the
// price of order independence with one register per key:
//
//   - After an $unset, a $set_once does not resurrect the key if an older
//     $set_once of that key exists: with $set_once(v1, a), $unset(v2),
//     $set_once(v3, b) the key is absent, where sequential application gives b.
//   - Likewise after a delete at vd: a $set_once with version > vd does not
//     take effect for a key that had a $set_once at version <= vd.
//
// # Precomputed results
//
// Row and group Results are written by the precompute worker with a stamp
// (Batch.SetResults, Batch.SetGroupResults): microseconds since the Unix
// epoch from the writer's hybrid logical clock, always > 0. A write takes
// effect iff its stamp is larger than the stored ResultsStamp (0 when none),
// or equal with bytewise larger results (ResultsWin), so racing writers
// converge on the same value in any order, and every backend compares
// atomically. Person rewrites (PutRow) and group writes (PutGroup) keep the
// stored results and stamp; DeleteRow drops them. On scyllastore the stamp
// is the cell's write timestamp, so a DeleteRow shadows the results stamped
// before the delete's wall-clock time, and results stamped before a
// DeleteRow but written after it are dropped too: stamps are taken near
// now, so this only drops results computed before the row was deleted.
//
// # Expiry index
//
// Batch.PutExpiry and Batch.DeleteExpiry maintain entries (Team, At,
// Target), At in Unix milliseconds and Target opaque to the store;
// Store.DueExpiries returns the entries due by a time, across teams, in
// (At, Team, Target) order, so the precompute worker finds the results to
// recompute without scanning rows. Entries are scheduling data, not state:
// Dump does not visit them.
//
// # Digest
//
// Store.Dump visits every entity; storetest.Digest hashes their canonical
// encodings (the MarshalBinary methods, results stamps included) so that
// two stores can be compared.
package store
