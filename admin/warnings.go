package admin

import (
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// refusedCodes are the engine's non-fatal problems that the API refuses
// anyway, because PostHog's own API refuses them or because they are
// Vexil's own rules: variants that do not sum to 100, a duplicate or
// empty variant key, a rollout outside 0..100, a condition or an override
// naming an unknown variant, an unknown flag dependency or cohort, and
// runtime or bucketing names outside their lists. Every other non-fatal
// problem is accepted and answered as a warning: the definition evaluates
// as PostHog defines it (an invalid regex matches nothing, a group type
// without a name is never sent by the SDKs ...). Fatal problems always
// refuse.
var refusedCodes = map[string]bool{
	flags.CodeVariantsSum:        true,
	flags.CodeDuplicateVariant:   true,
	flags.CodeInvalidKey:         true,
	flags.CodeRolloutOutOfRange:  true,
	flags.CodeUnknownVariant:     true,
	flags.CodeInvalidOverride:    true,
	flags.CodeUnknownDependency:  true,
	flags.CodeUnknownCohort:      true,
	flags.CodeInvalidEvalRuntime: true,
	flags.CodeInvalidBucketing:   true,
	flags.CodeDependencyCycle:    true,
	flags.CodeCohortCycle:        true,
}

// refuses reports whether a validation problem refuses the write.
func refuses(ve *flags.ValidationError) bool {
	return ve.Fatal || refusedCodes[ve.Code]
}

// judge splits the problems of one definition into the first that
// refuses it (as an errcode error on field) and the warnings. field maps
// an engine path to the request's field path.
func judge(ves []*flags.ValidationError, field func(string) string) ([]*adminv1.Warning, *errcode.Error) {
	var warns []*adminv1.Warning
	for _, ve := range ves {
		if refuses(ve) {
			e := errcode.FromValidation(ve, "")
			e.Field = field(ve.Path)
			return nil, e
		}
		warns = append(warns, &adminv1.Warning{Field: field(ve.Path), Code: ve.Code, Message: ve.Reason})
	}
	return warns, nil
}
