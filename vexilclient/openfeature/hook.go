package openfeature

import (
	"context"

	of "github.com/open-feature/go-sdk/openfeature"
)

// reportingHook reports every evaluation to Options.OnEvaluation.
type reportingHook struct {
	of.UnimplementedHook
	report func(Evaluation)
}

func (h reportingHook) Finally(_ context.Context, hc of.HookContext, d of.InterfaceEvaluationDetails, _ of.HookHints) {
	e := Evaluation{Flag: hc.FlagKey(), Type: hc.FlagType(), Value: d.Value, Variant: d.Variant, Reason: d.Reason, ErrorCode: d.ErrorCode}
	if path, err := d.FlagMetadata.GetString(MetaPath); err == nil {
		e.Path = path
	}
	if d.ErrorCode != "" {
		e.Err = of.NewGeneralResolutionError(d.ErrorMessage)
	}
	h.report(e)
}
