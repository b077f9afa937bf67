// Package web is Vexil's web UI, served by vexil serve and vexil admin at
// / (every page under /ui/): flags (list, plain-words page, editor with
// every engine feature, diff and blast radius before save, conflicts,
// explain, history), cohorts (static with CSV upload, property,
// behavioural), early access features, keys, group types and precompute
// status.
//
// # One path to the catalog
//
// The UI never reads the catalog: every page calls the management API's
// gRPC service (adminv1.AdminServiceClient over the node's own client
// connection) with the signed-in key, so authentication, scopes, teams,
// validation, limits, activity and change notices are the REST API's own.
// A key that lacks a scope sees no write controls, and a forged write is
// refused by the service (403); a team the key does not reach is 404.
//
// # Sessions
//
// One signs in with a personal API key or a single-use login link
// (vexil serve --demo prints one; vexil keys login-link makes one through
// POST /ui/login-links). The browser holds a random session id in an
// HttpOnly, SameSite=Lax cookie scoped to /ui/; the key stays in this
// node's memory, so a restart signs everyone out and several nodes behind
// a balancer need sticky sessions. Every write carries the session's CSRF
// token (form field csrf, or X-CSRF-Token from htmx) and a browser's
// Origin must be this host.
//
// # Assets
//
// Server-rendered html/template pages; htmx 2.0.11 and uPlot 1.6.32 are
// vendored unchanged from npm (static/vendor/README.md has versions,
// licences and hashes) and embedded with go:embed: nothing is built.
// Every form works without JavaScript; the scripts add as-you-type checks
// (regex through the server, JSON and patterns in the browser), polling
// of the blast radius, and charts.
//
// # Usage statistics
//
// Config.Usage plugs in per-flag usage (vexil serve: package usage's
// FlagReport, the REST answer, through an adapter); without it every page
// says "no usage data yet" rather than drawing anything (Handler.usageOf is
// the one place that reads it). The list's stale status and last
// evaluation come with the flags from the management API.
package web
