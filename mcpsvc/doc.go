// Package mcpsvc is Vexil's MCP (Model Context Protocol) server: AI coding
// agents run a flag's whole lifecycle through it, and are told what changed.
//
// # Same rules as REST
//
// Every tool calls the management API's service layer through
// admin.Service.Invoke: admission, authentication of the bearer personal
// key, the team check (a team the key does not reach is "not found", so a
// tool naming another team's flag reveals nothing), the method's scope,
// errors with stable codes, optimistic concurrency on version and the
// activity log run exactly as for a REST or gRPC call. An agent can do
// nothing its key could not do over REST. Tools the key's scopes do not
// allow are left out of tools/list, and refused by the service if named.
//
// # Two protocol eras on one endpoint
//
// The go-sdk serves the 2026-07-28 revision (SEP-2575: no initialize
// handshake, per-request _meta, subscriptions/listen) only on a stateless
// handler, and the 2025 revisions (initialize, Mcp-Session-Id, the GET
// stream, resources/subscribe, elicitation) only on a stateful one. Handler
// routes each request: a request with Mcp-Session-Id, a GET or DELETE, or
// an "initialize" goes to the stateful handler; a POST whose
// Mcp-Protocol-Version header (or _meta protocol version) is 2026-07-28 or
// later, or a "server/discover", goes to the stateless one.
//
// One MCP server (the tools of one key and its options) is built per key
// and options and cached: the go-sdk asks for it on every request.
//
// # stdio
//
// vexil mcp serves one session on stdin/stdout: with --url, Bridge relays
// it to a running node's /mcp (both eras; a 2025 session's GET stream is
// relayed too, so updates are pushed); with --data-dir, ServeStdio serves
// it in process on a stopped node's data directory.
//
// # Narrowing
//
// ?features=flags,cohorts keeps the tools of those features (flags,
// cohorts, early_access, activity, signals); ?tools=a,b keeps the named
// tools; ?team_id=N sets the default team of tools and resources (default:
// the key's only team). List tools answer slim rows; get tools answer the
// full definition.
//
// # Safety
//
// Every mutation takes dry_run: the answer is the diff (path, before,
// after) and, for flags, the exact blast radius (admin's blast radius: the
// persons whose value would change, and for group-aggregated conditions the
// groups), and nothing is saved. Deletes, bulk
// changes (more than BulkLimit ids) and any jump of a condition to 100%
// need confirmation: an elicitation where the client declared it (during
// the call in a 2025 session; in 2026-07-28 a multi-round-trip request,
// SEP-2322: the result asks for input, the client calls again with the
// answer and the request state that binds it to the same arguments),
// otherwise a short-lived single-use confirm token bound to the key, the
// tool and its exact arguments.
//
// # Signals
//
// Inbox is a durable per-team inbox kept in Vexil's store
// (store.InboxStore: memstore, pebblestore, scyllastore). Signals still
// flow on NATS: a JetStream stream captures the rollout signals admin
// publishes, the cohort membership signals (a source of the signals
// package's stream) and findings added through Inbox.Append, and
// Inbox.Run (started by Server.Run) copies it into the store through one
// durable consumer per store (InboxConfig.StoreID: the nodes sharing a
// ScyllaDB keyspace share it, a Pebble node has its own). The copy is
// keyed by (team, stream sequence), so a repeated copy (a redelivery,
// another node, Append's own copy) is the same upsert, and that sequence
// is the cursor of signals_list. A message is acknowledged to JetStream
// only once the store holds it. The acknowledged position of a team only
// moves forward; on ScyllaDB each acknowledgement is a (team, seq) row and
// the reader takes the highest, so no write needs a lightweight
// transaction. Retention (InboxMaxAge) is a TTL on ScyllaDB and an hourly
// sweep on Pebble and memory. Reads wait (at most two seconds) for the
// copy to catch up with the stream, so a signal published before a call
// is in its answer. Without JetStream the inbox is read only: vexil mcp
// --data-dir answers signals_list, signals_ack and the pending note from a
// stopped server's store. The key-value bucket of acknowledged positions
// and finding ids that earlier versions kept ("vexil_signal_acks") is
// imported into the store when the inbox opens (idempotent; delete it once
// every store has imported it).
//
// Stale flags and evaluation anomalies are not detected here: the usage
// statistics find them (Config.Usage, an adapter over package usage in
// the wiring) and FindingsJob, run by vexil serve, adds every team's
// findings with AppendOnce: once per finding id (kind, team, flag,
// reason, since), remembered in the store, so a stale flag is one signal
// across runs, restarts and nodes (two nodes adding the same finding at
// once publish under the same JetStream message id, which JetStream
// keeps once). The usage tools
// (feature "usage": usage_flag, usage_summary, usage_findings,
// usage_settings_get, usage_settings_set) answer what the REST routes
// answer, with their scopes; flag list rows carry the statistics' STALE
// status and last_evaluated_at.
// Resources vexil://flags/{key} and vexil://signals can be subscribed to in
// both eras; Run pushes notifications/resources/updated from the change
// notices and signals on NATS, so a change made over REST by someone else
// reaches a subscribed agent at once.
package mcpsvc
