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
)

// Inconclusive and failure codes of an EvalError.
const (
	// CodeMissingContext: a property the flag needs was not given.
	CodeMissingContext = "missing_context"
	// CodeUnsupported: the definition needs the server (a static cohort
	// with no CohortSource, for instance).
	CodeUnsupported = "unsupported_definition"
	// CodeExperienceContinuity: a flag with experience continuity was
	// evaluated from partial properties.
	CodeExperienceContinuity = "experience_continuity"
	// CodeDependencyFailed: a flag this flag depends on could not be decided.
	CodeDependencyFailed = "dependency_failed"
	// CodeCohortUnavailable: the CohortSource failed.
	CodeCohortUnavailable = "cohort_unavailable"
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
	// Fatal means the flag cannot be evaluated: it fails at evaluation.
	// A non-fatal problem has a behaviour PostHog defines (an invalid regex
	// matches nothing, for instance); the management API still refuses it.
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
