// Package admin is Vexil's management API: the gRPC service
// vexil.admin.v1.AdminService over the catalog, served to HTTP clients by
// grpc-gateway through a real client connection, so authentication, limits
// and metrics run once, in the gRPC interceptors, for both surfaces.
//
// # Writes
//
// Every change of a flag is validated by compiling the team's whole
// definition set with the change applied (flags.Compile); any validation
// problem of the changed flag refuses the write with its field path. The
// write is a compare-and-set on the version the client read (a lost update
// is refused with version_conflict and the current version), and the
// catalog stores the activity entry (actor key id, before, after, diff)
// with it. Once committed, a change notice (package changes) goes to
// vexil.changes.<team> and a rollout signal to vexil.signals.<team>.rollout
// through the Publisher. Archiving or deleting a flag other live flags depend on is
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
// # Precompute
//
// GetPrecomputeStatus shows the progress of the team's latest precompute
// run (flag:read): state, rows done and to do, rate and estimated time
// left at the Service's clock. It reads the runs through
// Config.Precompute (cmd/vexil reads the precompute worker's run states;
// admin does not import the worker); a server without it answers
// precompute_unavailable, and a team without a run state NONE.
package admin
