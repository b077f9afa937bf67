package flags

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalidDefinition is wrapped by every validation error and by the
	// evaluation error of a flag whose definition cannot be evaluated.
	ErrInvalidDefinition = errors.New("flags: invalid definition")
	// ErrInconclusive is wrapped by the evaluation error of a flag that
	// cannot be decided from the context given (see Context.Partial).
	ErrInconclusive = errors.New("flags: inconclusive")
	// ErrCohortNotFound is returned by a CohortSource that does not know a
	// cohort; the engine then treats the person as not a member.
	ErrCohortNotFound = errors.New("flags: cohort not found")
)

// Stable validation error codes. Clients and agents branch on these.
//
// Each ValidationError says with Fatal whether its flag (or the flags that
// read its cohort) can be evaluated. A fatal problem makes the active flag
// fail at evaluation; the management API refuses it. A non-fatal one is a
// warning: the flag evaluates the way PostHog defines for it, and the API
// accepts it and returns the warning, except for the few problems PostHog's
// own API refuses (see below).
//
// Fatal (refusals):
//   - invalid_key: a flag's key or a filter's property key is empty (a
//     variant's empty key is a warning).
//   - duplicate_key: another flag has the key; this one is ignored.
//   - invalid_operator: an unknown operator, or one the filter type does
//     not take.
//   - invalid_property_type: an unknown filter type; a flag or group filter
//     inside a cohort.
//   - invalid_value: a value that is not JSON, a cohort id that is not an
//     integer, a flag_evaluates_to value that is not true, false or a
//     variant, an unknown cohort kind or group type.
//   - invalid_aggregation: a group type index outside 0..MaxGroupTypes-1, a
//     group filter in a person condition without a group_type_index.
//   - dependency_cycle, cohort_cycle: flags or cohorts that depend on
//     themselves.
//   - invalid_window: a behavioural filter without a window, or one outside
//     MinWindow..MaxWindow (1 minute to 90 days).
//   - unsupported_behavioral_filter: a behavioural value the counters do
//     not answer (performed_event_regularly, stopped_performing_event,
//     restarted_performing_event, sequences) or actions instead of events.
//
// Warnings (the flag evaluates):
//   - invalid_number, invalid_date, invalid_semver: the filter's value does
//     not parse for its operator (a number for gt/gte/lt/lte, [min, max]
//     with min <= max for between, an ISO-8601 or relative date, a version
//     or version pattern). As on PostHog's server, the filter never matches,
//     negated operators (not_between, semver_neq) included, and the rest of
//     the flag, its dependents and the cohorts holding it evaluate; inside
//     a cohort, negation: true inverts that no match. The SDKs cannot
//     decide such a filter: with Context.Partial it is inconclusive.
//   - invalid_regex: the pattern does not compile; regex and not_regex both
//     match nothing.
//   - regex_too_large: the pattern compiles to more than MaxRegexProgram
//     instructions; like an unparsable value, regex and not_regex never
//     match here (with Context.Partial the filter is inconclusive), so that
//     no request can make one match cost seconds.
//   - rollout_out_of_range, variants_sum, duplicate_variant: percentages
//     and variants are used as given.
//   - unknown_variant: a condition's variant override is not a variant; the
//     variant hash decides instead.
//   - unknown_dependency: the flag depended on does not exist; the flag is
//     missing_dependency when that filter is reached.
//   - unknown_cohort: the cohort is not defined; membership is asked of the
//     Context's CohortSource.
//   - unknown_group_type, invalid_timezone (UTC is used), invalid_override,
//     invalid_holdout, invalid_bucketing_identifier,
//     invalid_evaluation_runtime.
//
// Compile does not report dependency_on_deleted (a deleted flag is an
// unknown dependency); the code is kept for clients that branch on it.
//
// PostHog's API refuses variants_sum, unknown_variant, unknown_dependency
// and unknown_cohort although they evaluate; the management API refuses
// them too.
const (
	CodeInvalidKey           = "invalid_key"
	CodeDuplicateKey         = "duplicate_key"
	CodeInvalidOperator      = "invalid_operator"
	CodeInvalidPropertyType  = "invalid_property_type"
	CodeInvalidValue         = "invalid_value"
	CodeInvalidNumber        = "invalid_number"
	CodeInvalidDate          = "invalid_date"
	CodeInvalidSemver        = "invalid_semver"
	CodeInvalidRegex         = "invalid_regex"
	CodeRegexTooLarge        = "regex_too_large"
	CodeRolloutOutOfRange    = "rollout_out_of_range"
	CodeVariantsSum          = "variants_sum"
	CodeDuplicateVariant     = "duplicate_variant"
	CodeUnknownVariant       = "unknown_variant"
	CodeUnknownGroupType     = "unknown_group_type"
	CodeDependencyCycle      = "dependency_cycle"
	CodeUnknownDependency    = "unknown_dependency"
	CodeUnknownCohort        = "unknown_cohort"
	CodeCohortCycle          = "cohort_cycle"
	CodeInvalidTimezone      = "invalid_timezone"
	CodeInvalidOverride      = "invalid_override"
	CodeInvalidHoldout       = "invalid_holdout"
	CodeInvalidAggregation   = "invalid_aggregation"
	CodeInvalidBucketing     = "invalid_bucketing_identifier"
	CodeInvalidEvalRuntime   = "invalid_evaluation_runtime"
	CodeDependencyOnInactive = "dependency_on_deleted"
	CodeInvalidWindow        = "invalid_window"
	CodeUnsupportedBehavior  = "unsupported_behavioral_filter"
)

// Inconclusive and failure codes of an EvalError.
const (
	// CodeMissingContext: a property the flag needs was not given.
	CodeMissingContext = "missing_context"
	// CodeUnsupported: the definition needs the server (a static cohort
	// with no CohortSource, for instance), or, with Context.Partial, holds a
	// filter value that does not parse, which the SDKs cannot decide.
	CodeUnsupported = "unsupported_definition"
	// CodeExperienceContinuity: a flag with experience continuity was
	// evaluated from partial properties.
	CodeExperienceContinuity = "experience_continuity"
	// CodeDependencyFailed: a flag this flag depends on could not be decided.
	CodeDependencyFailed = "dependency_failed"
	// CodeCohortUnavailable: the CohortSource failed.
	CodeCohortUnavailable = "cohort_unavailable"
	// CodeDeadlineExceeded: the evaluation passed Context.Deadline before
	// it decided the flag.
	CodeDeadlineExceeded = "deadline_exceeded"
)

// ValidationError is one problem of a definition set.
type ValidationError struct {
	// Flag is the key of the flag at fault; empty for a cohort problem.
	Flag string
	// Cohort is the id of the cohort at fault, when Flag is empty.
	Cohort int64
	// Path is the field path inside the flag or cohort, such as
	// "filters.groups[1].properties[0].value".
	Path string
	// Code is stable; see the Code* constants.
	Code string
	// Reason says what is wrong, for a person.
	Reason string
	// Fatal means the flag cannot be evaluated: an active flag fails at
	// evaluation (an inactive one is flag_disabled whatever it holds). A
	// non-fatal problem is a warning with a behaviour PostHog defines (an
	// unparsable filter value or an invalid regex matches nothing, for
	// instance); see the Code* constants for which is which.
	Fatal bool
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("flags: ")
	if e.Flag != "" {
		fmt.Fprintf(&b, "flag %q", e.Flag)
	} else {
		fmt.Fprintf(&b, "cohort %d", e.Cohort)
	}
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	fmt.Fprintf(&b, ": %s (%s)", e.Reason, e.Code)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalidDefinition) true.
func (e *ValidationError) Unwrap() error { return ErrInvalidDefinition }

// ValidationErrors is every problem Compile found, in definition order.
type ValidationErrors []*ValidationError

func (es ValidationErrors) Error() string {
	switch len(es) {
	case 0:
		return "flags: no errors"
	case 1:
		return es[0].Error()
	}
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return fmt.Sprintf("%d problems: %s", len(es), strings.Join(msgs, "; "))
}

// Unwrap returns the errors, so errors.Is and errors.As see each one.
func (es ValidationErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// EvalError says why a flag could not be decided.
type EvalError struct {
	Flag   string
	Code   string
	Detail string
	err    error
}

func (e *EvalError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("flags: flag %q: %s: %s", e.Flag, e.Code, e.Detail)
	}
	return fmt.Sprintf("flags: flag %q: %s", e.Flag, e.Code)
}

// Unwrap returns ErrInconclusive or ErrInvalidDefinition.
func (e *EvalError) Unwrap() error { return e.err }
