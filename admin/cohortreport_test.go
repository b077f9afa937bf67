package admin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/flags"
)

type jfilterReport struct {
	Field, Type, Key, Mode, Code, Message string
}

// TestImportBehavioralCohortReport imports PostHog cohorts with behavioural
// filters (the list API's shape) in a dry run: every filter is reported as
// counted in real time, decided from properties, or refused with the
// engine's code and its field in the request.
func TestImportBehavioralCohortReport(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	var r struct {
		Refused, Created int
		Items            []struct {
			Key, Action string
			Errors      []struct{ Field, Code, Message string }
			Filters     []jfilterReport
		}
	}
	path := fmt.Sprintf("/api/projects/%d/import?dry_run=true", team.GetId())
	if code := e.do("POST", path, e.root, readTestdata(t, "posthog_behavioral_cohorts.json"), &r); code != 200 {
		t.Fatalf("dry run: %d", code)
	}
	type want struct{ field, mode, code string }
	const c0, c1, c2 = "definitions.cohorts[0].filters.properties", "definitions.cohorts[1].filters.properties", "definitions.cohorts[2].filters.properties"
	wants := map[string]struct {
		action  string
		filters []want
	}{
		"Recent buyers": {"create", []want{
			{c0 + ".values[0].values[0]", modeRealtime, ""},
			{c0 + ".values[0].values[1]", modeProperty, ""},
			{c0 + ".values[1].values[0]", modeRealtime, ""},
			{c0 + ".values[1].values[1]", modeRealtime, ""},
			{c0 + ".values[1].values[2]", modeRealtime, ""},
		}},
		"Engaged then lapsed": {"refuse", []want{
			{c1 + ".values[0].values[0]", modeRefused, flags.CodeUnsupportedBehavior},
			{c1 + ".values[0].values[1]", modeRefused, flags.CodeUnsupportedBehavior},
			{c1 + ".values[1].values[0]", modeRefused, flags.CodeUnsupportedBehavior},
			{c1 + ".values[1].values[1]", modeRefused, flags.CodeInvalidWindow},
			{c1 + ".values[1].values[2]", modeRefused, flags.CodeUnsupportedBehavior},
			{c1 + ".values[1].values[3]", modeProperty, ""},
		}},
		"Recent buyers in Europe": {"create", []want{
			{c2 + ".values[0]", modeProperty, ""},
			{c2 + ".values[1]", modeProperty, ""},
		}},
	}
	if len(r.Items) != len(wants) || r.Refused != 1 || r.Created != 2 {
		t.Fatalf("dry run: %d items, %d refused, %d created: %+v", len(r.Items), r.Refused, r.Created, r)
	}
	for _, it := range r.Items {
		w, ok := wants[it.Key]
		if !ok {
			t.Errorf("unexpected item %q", it.Key)
			continue
		}
		if it.Action != w.action {
			t.Errorf("%s: action %q, want %q (%+v)", it.Key, it.Action, w.action, it.Errors)
		}
		if len(it.Filters) != len(w.filters) {
			t.Errorf("%s: %d filters reported, want %d: %+v", it.Key, len(it.Filters), len(w.filters), it.Filters)
			continue
		}
		for i, f := range it.Filters {
			if g := (want{f.Field, f.Mode, f.Code}); g != w.filters[i] {
				t.Errorf("%s filter %d: %+v, want %+v", it.Key, i, g, w.filters[i])
			}
			if f.Message == "" {
				t.Errorf("%s filter %d: no message", it.Key, i)
			}
		}
	}
	// The refusals are the item's errors too, each at its filter.
	for _, it := range r.Items {
		if it.Key != "Engaged then lapsed" {
			continue
		}
		if len(it.Errors) != 5 {
			t.Errorf("refused cohort: %d errors, want 5: %+v", len(it.Errors), it.Errors)
		}
		for _, er := range it.Errors {
			if !strings.HasPrefix(er.Field, c1+".values[") {
				t.Errorf("error field %q is not a filter's", er.Field)
			}
		}
	}
}

// TestCreateCohortFilterReport: the answer of a cohort's create says how
// each filter runs; a refused behavioural filter refuses the create with
// its code and field.
func TestCreateCohortFilterReport(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	path := fmt.Sprintf("/api/projects/%d/cohorts", team.GetId())
	var c struct {
		ID           int64 `json:"id"`
		Kind         string
		FilterReport []jfilterReport `json:"filter_report"`
	}
	body := `{"name": "checkout twice", "filters": {"properties": {"type": "AND", "values": [
	  {"key": "checkout", "type": "behavioral", "value": "performed_event_multiple", "operator": "gte", "operator_value": 2,
	   "time_value": 5, "time_interval": "minute", "event_type": "events"},
	  {"key": "plan", "type": "person", "value": "pro"}]}}}`
	if code := e.do("POST", path, e.root, body, &c); code != 201 && code != 200 {
		t.Fatalf("create: %d", code)
	}
	if len(c.FilterReport) != 2 || c.FilterReport[0].Mode != modeRealtime || c.FilterReport[0].Key != "checkout" ||
		c.FilterReport[0].Field != "cohort.filters.properties.values[0]" || c.FilterReport[1].Mode != modeProperty {
		t.Fatalf("filter report %+v", c.FilterReport)
	}
	var je jerr
	bad := strings.Replace(body, `"time_interval": "minute"`, `"time_interval": "year"`, 1)
	if code := e.do("POST", path, e.root, bad, &je); code != 400 {
		t.Fatalf("year window: %d", code)
	}
	if je.meta("field") != "cohort.filters.properties.values[0]" || je.meta("engine_code") != flags.CodeInvalidWindow {
		t.Errorf("year window error %+v", je)
	}
}
