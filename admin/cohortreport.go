package admin

import (
	"fmt"
	"strings"

	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// How a cohort's filter runs (CohortFilterReport.mode).
const (
	modeRealtime = "realtime"
	modeProperty = "property"
	modeRefused  = "refused"
)

// filterReport says, for every filter of a cohort's property group, how it
// runs: a behavioural filter the engine accepts is counted from events and
// decided at flag check time (realtime), a person property or cohort
// filter is decided from properties (property), and a filter with a
// problem that refuses the cohort is refused with the engine's code and
// reason. ves are the engine's problems of this cohort (paths
// "filters.values[0]..."); field maps an engine path to the request's
// field.
func filterReport(g *flags.PropertyGroup, ves []*flags.ValidationError, field func(string) string) []*adminv1.CohortFilterReport {
	var out []*adminv1.CohortFilterReport
	var walk func(g *flags.PropertyGroup, path string)
	walk = func(g *flags.PropertyGroup, path string) {
		for i, n := range g.Values {
			p := fmt.Sprintf("%s.values[%d]", path, i)
			switch {
			case n.Group != nil:
				walk(n.Group, p)
			case n.Filter != nil:
				out = append(out, reportFilter(n.Filter, p, ves, field))
			}
		}
	}
	walk(g, "filters")
	return out
}

// reportFilter reports one filter at engine path p.
func reportFilter(pf *flags.PropertyFilter, p string, ves []*flags.ValidationError, field func(string) string) *adminv1.CohortFilterReport {
	r := &adminv1.CohortFilterReport{Field: field(p), Type: pf.Type, Key: pf.Key}
	if pf.Type == "cohort" {
		r.Key = strings.Trim(string(pf.Value), `"`)
	}
	for _, ve := range ves {
		if (ve.Path == p || strings.HasPrefix(ve.Path, p+".")) && refuses(ve) {
			r.Mode, r.Code, r.Message = modeRefused, ve.Code, ve.Reason
			return r
		}
	}
	switch pf.Type {
	case "behavioral":
		r.Mode = modeRealtime
		r.Message = fmt.Sprintf("%s %q%s%s: counted from the team's events and decided at flag check time; events before the cohort is saved are not counted",
			behaviorVerb(pf), pf.Key, behaviorEventFilters(pf), behaviorWindowText(pf))
	case "cohort":
		r.Mode = modeProperty
		r.Message = fmt.Sprintf("membership of cohort %s, decided at flag check time as that cohort is", r.Key)
	default:
		r.Mode = modeProperty
		r.Message = fmt.Sprintf("%s property %q, decided from the stored properties at flag check time", pf.Type, pf.Key)
	}
	if pf.Negation {
		r.Message = "negated (not): " + r.Message
	}
	return r
}

// behaviorVerb names a behavioural filter's condition.
func behaviorVerb(pf *flags.PropertyFilter) string {
	v := strings.Trim(string(pf.Value), `"`)
	switch v {
	case "performed_event_multiple":
		op := pf.Operator
		if op == "" {
			op = "gte"
		}
		return fmt.Sprintf("performed (%s %s times)", op, string(pf.OperatorValue))
	case "performed_event_first_time":
		return "performed for the first time"
	}
	return "performed"
}

// behaviorEventFilters mentions a filter's event property filters.
func behaviorEventFilters(pf *flags.PropertyFilter) string {
	if len(pf.EventFilters) == 0 {
		return ""
	}
	return fmt.Sprintf(" with %d event property filter(s)", len(pf.EventFilters))
}

// behaviorWindowText describes a behavioural filter's window as given.
func behaviorWindowText(pf *flags.PropertyFilter) string {
	if pf.TimeInterval != "" {
		return fmt.Sprintf(" within the last %s %s(s)", strings.Trim(string(pf.TimeValue), `"`), pf.TimeInterval)
	}
	if pf.ExplicitDatetime != "" {
		return fmt.Sprintf(" since %s", pf.ExplicitDatetime)
	}
	return ""
}
