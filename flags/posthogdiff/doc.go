// Package posthogdiff holds Vexil's randomized differential test against
// PostHog's Python SDK. It has no code of its own outside its tests.
//
// The test generates random definition sets (every operator PostHog's
// SDKs evaluate locally, values of every kind, rollouts, multivariate
// flags with payloads, holdouts, cohorts, dependencies, group flags,
// overrides) and contexts from a seed, renders each set as the
// local-evaluation payload Vexil serves (evalsvc/wire.BuildDefinitions),
// has posthog-python evaluate it locally in one process
// (flags/testdata/posthog/oracle.py, no network), and compares every answer
// the SDK decides with flags.Set.Evaluate in partial mode: value, variant
// and payload. VEXIL_POSTHOG_PYTHON names a python with posthog installed
// (scripts/sdk-python.sh --venv makes one; scripts/test.sh sets it).
// Without it the test skips, except with CI=true, where it fails.
//
// # Rules
//
// Where PostHog's server and its SDK disagree, Vexil follows the server
// (posthog-compat §5.2, "SDK-only caution"). The generator leaves those
// inputs out: semver_wildcard is only given wildcard patterns, never a full
// version; dates without an offset are compared in UTC on both sides (the
// team time zone is UTC). Regex constructs the SDK defers to the server
// come back inconclusive and are not compared. Answers the SDK cannot give
// (inconclusive) are not compared either; Vexil may decide those. The
// oracle evaluates as the SDK's public calls do: distinct_id and $group_key
// are added to the properties unless given.
//
// # Guesses
//
// posthog-python skips a condition it cannot decide and answers the first
// later one that matches (posthog-compat §5): an answer PostHog's server,
// which may match the skipped condition, need not give. The oracle reports,
// per flag, the conditions it skipped before deciding and the dependencies
// it decided that way; such an answer is a guess, and compared by this
// rule: Vexil may be inconclusive there (it stops on a failed dependency);
// if it decides, it must agree, unless it decided from a condition the SDK
// skipped (a regex the SDK defers, a version with leading zeros) or gave a
// guessed dependency another value. Those two are counted, not compared.
// Anything else the SDK decides, Vexil must decide the same way.
package posthogdiff
