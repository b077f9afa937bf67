package admin

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestPostHogFlagJSON: a flag as PostHog's API returns it (read-only
// fields, a created_by object, nulls) posts unchanged, with the trailing
// slash PostHog's clients use, and comes back in PostHog's shape: numbers
// for ids and versions, filters as an object.
func TestPostHogFlagJSON(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	base := fmt.Sprintf("/api/projects/%d/feature_flags/", team.GetId())
	// The flag names cohort 9: create it from PostHog's cohort JSON (the
	// team's first cohort gets id 1, so the flag's filter is rewritten).
	var co struct {
		ID       int64           `json:"id"`
		Kind     string          `json:"kind"`
		IsStatic bool            `json:"is_static"`
		Filters  json.RawMessage `json:"filters"`
		Version  int64           `json:"version"`
	}
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/cohorts/", team.GetId()), e.root, readTestdata(t, "posthog_cohort.json"), &co); code != 200 {
		t.Fatalf("cohort: %d", code)
	}
	if co.ID <= 0 || co.Kind != "COHORT_KIND_PROPERTY" || co.IsStatic || co.Version != 1 ||
		!strings.HasPrefix(string(co.Filters), `{"properties":{"type":"OR","values":[{"type":"AND"`) {
		t.Fatalf("cohort %+v %s", co, co.Filters)
	}
	// A cohort filter that never matches is accepted with a warning.
	var warned struct {
		Warnings []struct{ Field, Code string } `json:"warnings"`
	}
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/cohorts", team.GetId()), e.root,
		`{"name":"adults","filters":{"properties":{"type":"AND","values":[{"key":"age","type":"person","operator":"gt","value":"x"}]}}}`, &warned); code != 200 ||
		len(warned.Warnings) != 1 || warned.Warnings[0].Field != "cohort.filters.properties.values[0].value" || warned.Warnings[0].Code != flags.CodeInvalidNumber {
		t.Errorf("cohort warning: %d %+v", code, warned)
	}
	flagJSON := strings.Replace(readTestdata(t, "posthog_flag.json"), `"value": 9}`, fmt.Sprintf(`"value": %d}`, co.ID), 1)

	var f struct {
		jflag
		Name                       string `json:"name"`
		EnsureExperienceContinuity bool   `json:"ensure_experience_continuity"`
		EvaluationRuntime          string `json:"evaluation_runtime"`
	}
	if code := e.do("POST", base, e.root, flagJSON, &f); code != 200 {
		t.Fatalf("create: %d", code)
	}
	if f.ID <= 0 || f.Key != "new-checkout" || f.Version != 1 || !f.Active || f.EvaluationRuntime != "all" ||
		f.Name != "New checkout for corporate users, then 30% of everyone" || strings.Join(f.Tags, ",") != "checkout,web" || len(f.Warnings) != 0 {
		t.Fatalf("created %+v", f)
	}
	var filters flags.Filters
	if err := json.Unmarshal(f.Filters, &filters); err != nil {
		t.Fatal(err)
	}
	if len(filters.Groups) != 2 || *filters.Groups[0].Variant != "test" || *filters.Groups[1].RolloutPercentage != 30 ||
		string(filters.Groups[1].Properties[0].Value) != fmt.Sprint(co.ID) || len(filters.Multivariate.Variants) != 2 ||
		string(filters.Payloads["test"]) != `"{\"price\": 9}"` {
		t.Errorf("filters %s", f.Filters)
	}
	// Reading it back, with and without the slash.
	var got jflag
	if code := e.do("GET", fmt.Sprintf("%s%d/", base, f.ID), e.root, nil, &got); code != 200 || got.ID != f.ID || got.Version != 1 {
		t.Errorf("get with slash: %d %+v", code, got)
	}
	var list struct {
		Results []jflag `json:"results"`
		Count   int     `json:"count"`
	}
	if code := e.do("GET", base+"?search=checkout", e.root, nil, &list); code != 200 || list.Count != 1 || len(list.Results) != 1 || list.Results[0].ID != f.ID {
		t.Errorf("list: %d %+v", code, list)
	}
	// PATCH as PostHog's clients send it: only the fields to change, the
	// version read in If-Match or in the body; targeting is kept.
	var patched jflag
	item := fmt.Sprintf("%s%d/", base, f.ID)
	if code := e.do("PATCH", item, e.root, `{"active":false}`, &patched, "If-Match", "1"); code != 200 ||
		patched.Active || patched.Version != 2 || string(patched.Filters) != string(f.Filters) || strings.Join(patched.Tags, ",") != "checkout,web" {
		t.Errorf("patch active: %d %+v", code, patched)
	}
	// The whole object read back, changed and sent again (unknown and
	// read-only fields included): its version is the concurrency check.
	var whole map[string]any
	if code := e.do("GET", item, e.root, nil, &whole); code != 200 {
		t.Fatalf("get: %d", code)
	}
	whole["name"], whole["tags"], whole["created_by"] = "renamed", []string{"web"}, map[string]any{"id": 1}
	if code := e.do("PATCH", item, e.root, whole, &patched); code != 200 || patched.Version != 3 || patched.Active ||
		strings.Join(patched.Tags, ",") != "web" {
		t.Errorf("patch whole: %d %+v", code, patched)
	}
	var je jerr
	if code := e.do("PATCH", item, e.root, whole, &je); code != 409 || je.meta("current_version") != "3" {
		t.Errorf("patch with a stale version: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("PATCH", item, e.root, `{"filters":{"groups":[{"properties":[],"rollout_percentage":150}]},"version":3}`, &je); code != 400 ||
		je.meta("field") != "flag.filters.groups[0].rollout_percentage" {
		t.Errorf("patch refused: %d %+v", code, je)
	}
	if code := e.do("PATCH", item, e.root, `{"deleted":true,"version":3}`, &patched); code != 200 || !patched.Deleted {
		t.Errorf("patch deleted: %d %+v", code, patched)
	}

	// The OpenAPI document types ids as integers, as they are written.
	var doc struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				Type   string `json:"type"`
				Format string `json:"format"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if code := e.do("GET", "/api/openapi.json", "", nil, &doc); code != 200 {
		t.Fatalf("openapi: %d", code)
	}
	if p := doc.Definitions["v1FeatureFlag"].Properties["id"]; p.Type != "integer" || p.Format != "int64" {
		t.Errorf("FeatureFlag.id in the OpenAPI document: %+v", p)
	}
	if p := doc.Definitions["v1FeatureFlag"].Properties["filters"]; p.Type != "object" {
		t.Errorf("FeatureFlag.filters in the OpenAPI document: %+v", p)
	}
}

// TestWarningsAndRefusals: what PostHog refuses is refused with the field
// path and the engine's code; a filter that will never match is accepted
// with a warning.
func TestWarningsAndRefusals(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	base := fmt.Sprintf("/api/projects/%d/feature_flags", team.GetId())
	var dep jflag
	if code := e.do("POST", base, e.root, `{"key":"base","active":true,"filters":{"groups":[{"properties":[]}]}}`, &dep); code != 200 {
		t.Fatalf("base flag: %d", code)
	}
	mv := `"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":50}]}`
	for _, c := range []struct {
		name, body, field, code string
	}{
		{"variants do not sum to 100", `{"key":"r1","filters":{"groups":[],"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":40}]}}}`,
			"flag.filters.multivariate.variants", flags.CodeVariantsSum},
		{"condition names an unknown variant", `{"key":"r2","filters":{"groups":[{"properties":[],"variant":"c"}],` + mv + `}}`,
			"flag.filters.groups[0].variant", flags.CodeUnknownVariant},
		{"override names an unknown variant", `{"key":"r3","filters":{"groups":[],` + mv + `},"overrides":[{"distinct_ids":["u1"],"value":"c"}]}`,
			"flag.overrides[0].value", flags.CodeInvalidOverride},
		{"unknown dependency", `{"key":"r4","filters":{"groups":[{"properties":[{"key":"nope","type":"flag","operator":"flag_evaluates_to","value":true}]}]}}`,
			"flag.filters.groups[0].properties[0].key", flags.CodeUnknownDependency},
		{"unknown cohort", `{"key":"r5","filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":404}]}]}}`,
			"flag.filters.groups[0].properties[0].value", flags.CodeUnknownCohort},
		{"unknown operator", `{"key":"r6","filters":{"groups":[{"properties":[{"key":"a","type":"person","operator":"nope","value":"x"}]}]}}`,
			"flag.filters.groups[0].properties[0].operator", flags.CodeInvalidOperator},
	} {
		t.Run(c.name, func(t *testing.T) {
			var je jerr
			if code := e.do("POST", base+"/", e.root, c.body, &je); code != 400 || je.reason() != string(errcode.InvalidDefinition) ||
				je.meta("field") != c.field || je.meta("engine_code") != c.code {
				t.Errorf("%d %+v", code, je)
			}
		})
	}

	// Python writes floats as 50.0: outside property values such numbers
	// are plain numbers.
	var py jflag
	if code := e.do("POST", base, e.root, `{"key":"py","active":true,"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"exact","value":[1.0,2]}],"rollout_percentage":50.0}],"multivariate":{"variants":[{"key":"a","rollout_percentage":50.0},{"key":"b","rollout_percentage":50.0}]},"aggregation_group_type_index":null}}`, &py); code != 200 ||
		!strings.Contains(string(py.Filters), `"rollout_percentage":50`) || !strings.Contains(string(py.Filters), `"value":["1.0",2]`) {
		t.Errorf("floats written by Python: %d %s", code, py.Filters)
	}

	// Accepted with a warning: an invalid regex matches nothing.
	var f jflag
	if code := e.do("POST", base, e.root, `{"key":"w1","active":true,"filters":{"groups":[{"properties":[{"key":"email","type":"person","operator":"regex","value":"(unclosed"}]}]}}`, &f); code != 200 {
		t.Fatalf("invalid regex: %d", code)
	}
	if len(f.Warnings) != 1 || f.Warnings[0].Field != "flag.filters.groups[0].properties[0].value" || f.Warnings[0].Code != flags.CodeInvalidRegex {
		t.Errorf("invalid regex warnings %+v", f.Warnings)
	}
	// An override naming a real variant, and a dependency that exists.
	f = jflag{}
	if code := e.do("POST", base, e.root, `{"key":"ok","active":true,"filters":{"groups":[{"properties":[{"key":"base","type":"flag","operator":"flag_evaluates_to","value":true}]}],`+mv+`},"overrides":[{"distinct_ids":["u1"],"value":"b"}]}`, &f); code != 200 || len(f.Warnings) != 0 {
		t.Errorf("valid flag: %d %+v", code, f)
	}

	// An unparsable number for gt: PostHog's server counts the filter as
	// no match, so the API accepts it with a warning.
	t.Run("unparsable number is a warning", func(t *testing.T) {
		var f jflag
		if code := e.do("POST", base, e.root, `{"key":"w2","active":true,"filters":{"groups":[{"properties":[{"key":"age","type":"person","operator":"gt","value":"abc"}]}]}}`, &f); code != 200 {
			t.Fatalf("unparsable number: %d", code)
		}
		if len(f.Warnings) != 1 || f.Warnings[0].Field != "flag.filters.groups[0].properties[0].value" || f.Warnings[0].Code != flags.CodeInvalidNumber {
			t.Errorf("warnings %+v", f.Warnings)
		}
	})
}
