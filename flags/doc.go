// Package flags is Vexil's flag model and its PostHog-compatible evaluation
// engine. It is pure: no I/O, no clock reads in the hot path (the caller
// passes the time; only an evaluation deadline, Context.Deadline, reads a
// clock, every DeadlineCheckEvery filters), no transport or storage code.
//
// # Model
//
// A [Flag] carries PostHog's definition shape: the same JSON serves Vexil's
// management API and the local-evaluation payload that PostHog's SDKs
// download. Beyond PostHog, each condition set may choose its own
// aggregation (persons or a group type), so one flag can target users AND
// groups, and a flag may carry explicit [Override] lists checked before its
// conditions.
//
// # Compile, then evaluate
//
// [Compile] validates a team's whole definition set ([Definitions]) and
// returns an immutable [Set]: regexes compiled once, numbers, dates and
// semvers parsed once, dependency order fixed, and for each flag the
// properties and cohorts it reads ([Set.Info]). Problems come back as
// [ValidationErrors], each naming the flag, the field path and a stable code.
// The set is returned even then: a flag whose problem PostHog defines a
// behaviour for still evaluates that way (a filter whose number, date,
// semver or regex does not parse never matches, as on PostHog's server,
// while the rest of the flag, its dependents and its cohorts evaluate;
// variants that do not sum to 100 are used as given); an active flag that
// cannot be decided at all (unknown operator, dependency cycle) evaluates
// to a failed [Result]. An inactive flag is always flag_disabled. The
// Code* constants say which problems are which.
//
// [Set.Evaluate] takes a [Context] and returns one [Result] per flag: enabled,
// variant, payload, reason and, for the precompute worker, ValidUntil: the
// first instant at which the result may change with nothing else changing
// (relative-date filters, time-windowed cohorts).
//
// # Behavioural cohorts
//
// A cohort's tree may hold behavioural filters (type "behavioral": performed
// an event, at least / at most / exactly N times, for the first time, or
// not, within a window of 1 minute to 90 days, with event property
// filters). The engine answers them from [Context.Events], the subject's
// counted events ([EventHistory], stored in the row by the projector), at
// the Context's Now, and sets ValidUntil to when the oldest counted event
// in the window ages out. [Set.EventPairs] lists the (event, filters) pairs
// to count and [Set.MatchEvent] matches an event against them. In partial
// mode they are inconclusive. See docs/cohorts.md.
//
// # Inconclusive results
//
// The server holds the whole person, so a missing property is a definite
// answer there (PostHog's server rules: exact is false, is_not is true, ...).
// When [Context.Partial] is set, the properties are only what a caller
// passed (as in an SDK's local evaluation, or when the store could not be
// read): a condition that needs a missing property is then inconclusive, as
// PostHog's SDKs define it. A flag that cannot be decided comes back with
// Enabled false and Err set to an [*EvalError] that wraps [ErrInconclusive]
// (or [ErrInvalidDefinition] for a broken definition); the HTTP layer turns
// that into failed: true and errorsWhileComputingFlags.
package flags
