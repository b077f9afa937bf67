// Package admin is Vexil's management API: the gRPC service
// vexil.admin.v1.AdminService over the catalog, served to HTTP clients by
// grpc-gateway through a real client connection, so authentication, limits
// and metrics run once, in the gRPC interceptors, for both surfaces.
//
// # REST in PostHog's shape
//
// The REST surface speaks PostHog's JSON, so that scripts and tools written
// for PostHog's API work unchanged: a flag's filters, a condition's
// properties, override values and a cohort's filters are JSON objects and
// arrays (google.protobuf.Struct, ListValue and Value on gRPC); ids and
// versions are JSON numbers (restMarshaler rewrites protojson's int64
// strings, and adminv1.OpenAPI types them as integers); every route
// answers with and without a trailing slash (/api/projects/1/feature_flags/);
// unknown fields of a request body are ignored, so a flag or a cohort read
// from PostHog's API posts unchanged; lists answer "results" and "count".
// PATCH .../feature_flags/{id} (PatchFlag) takes PostHog's flag JSON, whole
// or partial: the editable fields it carries replace the flag's,
// "deleted": true deletes it, and its "version" (or If-Match) is the
// version read.
// A cohort takes PostHog's {"filters": {"properties": group}, "is_static"}
// (a bare property group is accepted too) and its kind follows from them
// unless given.
//
// Numbers: a protobuf number is a double, so a number in a property
// filter's or an override's "value" that a double would change (an id past
// 2^53, 5.0) is read as a string of its text. The engine compares property
// values by their text, so the filter means the same; a client reading it
// back sees the string. Other numbers (rollouts, 50.0 as Python writes
// it) are plain numbers.
//
// # Writes
//
// Every change of a flag is validated by compiling the team's whole
// definition set with the change applied (flags.Compile). A fatal problem
// of the changed flag, or one PostHog's own API refuses (variants that do
// not sum to 100, a condition or override naming an unknown variant, an
// unknown dependency or cohort; see refusedCodes), refuses the write with
// invalid_definition, its field path and the engine's code. Any other
// problem is a filter PostHog evaluates in a defined way (an invalid regex
// matches nothing): the write is accepted and the answer carries it in
// "warnings" (field, code, message). The
// write is a compare-and-set on the version the client read (a lost update
// is refused with version_conflict, naming the version sent and the current
// one: sent_version and current_version), and the
// catalog stores the activity entry (actor key id, before, after, diff)
// with it. Once committed, a change notice (package changes) goes to
// vexil.changes.<team> and a rollout signal to vexil.signals.<team>.rollout
// (in Config.Namespace, whose default these are) through the Publisher; a
// key's revocation also goes to every node on
// changes.InstanceSubject(ns), so a revoked key (an instance-wide one too) is
// refused at once everywhere. A new flag key, or a changed one, follows
// PostHog's rule: letters, digits, '-' and '_' (keys stored before the rule
// keep working). Archiving or deleting a flag other live flags depend on is
// refused with the list of dependents.
//
// # Keys and scopes
//
// Personal API keys (phx_) carry scopes and the teams they reach (none:
// every team). A request is authenticated (401), then the team it names
// must be reachable by the key (else 404, so that nothing of another team
// leaks), then the method's scope is checked (403). Project tokens (phc_)
// only read the public early access list; secure keys (phs_) are for the
// evaluation service. Secrets are random, shown once, stored as SHA-256.
//
// # Previews
//
// ExplainFlag evaluates a flag on a person's stored row (or on properties
// given in the request) and then each condition and each filter alone, so
// it can say condition by condition why the value is what it is. Blast
// radius jobs scan the team's rows and count the persons whose value would
// change under a proposed definition; a team that fits one scan page is
// answered at once, larger ones run as a job with progress that can be
// cancelled.
//
// # Import
//
// ImportDefinitions (POST /api/projects/{team_id}/import, body: the
// definitions; ?dry_run=true; vexil import on the command line) loads a
// team's whole definitions: PostHog's local-evaluation payload ({"flags",
// "group_type_mapping", "cohorts": {id: group}}) or lists of PostHog flags
// and cohorts as its API returns them. Flags match the team's by key and
// cohorts by name (a payload cohort, which has none, is "PostHog cohort
// <id>"); each is created, changed, left unchanged or refused. PostHog's
// cohort ids are remapped wherever they are referenced (flags and nested
// cohorts), a flag dependency named by PostHog's flag id becomes its key,
// missing group types are created, deleted flags are left out. The whole
// result is compiled at once, so flags come in any order. A dry run
// answers the report (per item: action, errors, warnings, with field
// paths into the request); an apply with any refusal writes nothing.
// Otherwise the writes go in dependency order (group types, cohorts named
// by others first, flags after their dependencies), so each state a reader
// sees on the way is itself valid; if a write fails (a concurrent change,
// a backend error), what was written is undone, newest first, and the
// import is refused. The catalog has no multi-record transaction: a
// reader may see the first records of an import that is then undone.
// Importing cohorts needs cohort:write and creating group types team:admin
// besides flag:write.
//
// # Precompute
//
// GetPrecomputeStatus shows the progress of the team's latest precompute
// run (flag:read): state, rows done and to do, rate and estimated time
// left at the Service's clock. It reads the runs through
// Config.Precompute (cmd/vexil reads the precompute worker's run states;
// admin does not import the worker); a server without it answers
// precompute_unavailable, and a team without a run state NONE.
package admin
