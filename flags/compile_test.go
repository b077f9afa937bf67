package flags

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCompileReportsEachProblem(t *testing.T) {
	cases := []struct {
		name  string
		flag  string // JSON of one flag, "KEY" replaced by the key
		path  string
		code  string
		fatal bool
	}{
		{"bad regex", `{"filters":{"groups":[{"properties":[{"key":"e","type":"person","operator":"regex","value":"(["}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidRegex, false},
		{"unknown operator", `{"filters":{"groups":[{"properties":[{"key":"e","type":"person","operator":"almost","value":"x"}]}]}}`,
			"filters.groups[0].properties[0].operator", CodeInvalidOperator, true},
		{"variants not summing to 100", `{"filters":{"groups":[{"properties":[]}],"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":20}]}}}`,
			"filters.multivariate.variants", CodeVariantsSum, false},
		{"rollout above 100", `{"filters":{"groups":[{"properties":[],"rollout_percentage":150}]}}`,
			"filters.groups[0].rollout_percentage", CodeRolloutOutOfRange, false},
		{"rollout below 0", `{"filters":{"groups":[{"properties":[],"rollout_percentage":-1}]}}`,
			"filters.groups[0].rollout_percentage", CodeRolloutOutOfRange, false},
		{"unknown group type", `{"filters":{"aggregation_group_type_index":3,"groups":[{"properties":[]}]}}`,
			"filters.aggregation_group_type_index", CodeUnknownGroupType, false},
		{"unknown group type on a condition", `{"filters":{"groups":[{"aggregation_group_type_index":4,"properties":[]}]}}`,
			"filters.groups[0].aggregation_group_type_index", CodeUnknownGroupType, false},
		{"non-numeric gt", `{"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"gt","value":"ten"}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidNumber, false},
		{"between with min above max", `{"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"between","value":[10,5]}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidNumber, false},
		{"bad date", `{"filters":{"groups":[{"properties":[{"key":"d","type":"person","operator":"is_date_after","value":"soon"}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidDate, false},
		{"date that is a number", `{"filters":{"groups":[{"properties":[{"key":"d","type":"person","operator":"is_date_after","value":20240101}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidDate, false},
		{"bad semver", `{"filters":{"groups":[{"properties":[{"key":"v","type":"person","operator":"semver_gt","value":"one"}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidSemver, false},
		{"bad semver pattern", `{"filters":{"groups":[{"properties":[{"key":"v","type":"person","operator":"semver_wildcard","value":"1.*.3"}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidSemver, false},
		{"unknown filter type", `{"filters":{"groups":[{"properties":[{"key":"v","type":"planet","value":"x"}]}]}}`,
			"filters.groups[0].properties[0].type", CodeInvalidPropertyType, true},
		{"unknown variant override", `{"filters":{"groups":[{"properties":[],"variant":"zz"}],"multivariate":{"variants":[{"key":"a","rollout_percentage":100}]}}}`,
			"filters.groups[0].variant", CodeUnknownVariant, false},
		{"duplicate variant", `{"filters":{"groups":[{"properties":[]}],"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"a","rollout_percentage":50}]}}}`,
			"filters.multivariate.variants[1].key", CodeDuplicateVariant, false},
		{"cohort filter with a bad id", `{"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":"x"}]}]}}`,
			"filters.groups[0].properties[0].value", CodeInvalidValue, true},
		{"group filter in a person condition without an index", `{"filters":{"groups":[{"properties":[{"key":"plan","type":"group","value":"x"}]}]}}`,
			"filters.groups[0].properties[0].group_type_index", CodeInvalidAggregation, true},
		{"bad bucketing identifier", `{"bucketing_identifier":"ip","filters":{"groups":[{"properties":[]}]}}`,
			"bucketing_identifier", CodeInvalidBucketing, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseFlag([]byte(strings.Replace(c.flag, "{", `{"key":"the-flag","active":true,`, 1)))
			if err != nil {
				t.Fatal(err)
			}
			set, err := Compile(Definitions{Flags: []Flag{f}, GroupTypes: map[int]string{0: "company"}})
			if set == nil {
				t.Fatal("Compile returned a nil set")
			}
			var ves ValidationErrors
			if !errors.As(err, &ves) || len(ves) != 1 {
				t.Fatalf("got %v, want exactly one ValidationError", err)
			}
			ve := ves[0]
			if ve.Flag != "the-flag" || ve.Path != c.path || ve.Code != c.code || ve.Fatal != c.fatal {
				t.Errorf("got flag=%q path=%q code=%q fatal=%v, want the-flag %q %q %v", ve.Flag, ve.Path, ve.Code, ve.Fatal, c.path, c.code, c.fatal)
			}
			if !errors.Is(err, ErrInvalidDefinition) {
				t.Error("the error does not wrap ErrInvalidDefinition")
			}
			if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), `"the-flag"`) {
				t.Errorf("message %q names neither the path nor the flag", err.Error())
			}
			r := set.Evaluate(&Context{DistinctID: "u"})[0]
			if c.fatal != (r.Err != nil) {
				t.Errorf("fatal=%v but evaluation error is %v", c.fatal, r.Err)
			}
		})
	}
}

func TestCompileCohortCycle(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`{"flags":[{"key":"f","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":1}]}]}}],
	 "cohorts":{"1":{"type":"AND","values":[{"key":"id","type":"cohort","value":2}]},"2":{"type":"OR","values":[{"key":"id","type":"cohort","value":1}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	var ves ValidationErrors
	if !errors.As(err, &ves) {
		t.Fatalf("got %v", err)
	}
	found := false
	for _, ve := range ves {
		found = found || ve.Code == CodeCohortCycle
	}
	if !found {
		t.Errorf("no cohort_cycle in %v", err)
	}
	if r := set.Evaluate(&Context{DistinctID: "u"})[0]; r.Err == nil || r.Enabled {
		t.Errorf("a flag reading a cyclic cohort must fail, got %+v", r)
	}
}

func TestInfo(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`{"group_type_mapping":{"0":"company"},
	 "cohorts":{"5":{"type":"AND","values":[{"key":"email","type":"person","operator":"icontains","value":"@x"}]}},
	 "flags":[
	  {"key":"base","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}]}]}},
	  {"key":"f","active":true,"filters":{"groups":[
	    {"properties":[{"key":"country","type":"person","value":"US"},{"key":"id","type":"cohort","value":5},{"key":"base","type":"flag","operator":"flag_evaluates_to","value":true}]},
	    {"aggregation_group_type_index":0,"properties":[{"key":"seats","type":"group","group_type_index":0,"operator":"gt","value":10},{"key":"signup","type":"person","operator":"is_date_after","value":"-3d"}]}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := set.Info("f")
	if !ok {
		t.Fatal("no info")
	}
	got, _ := json.Marshal(info)
	want := `{"PersonProperties":["country","email","signup"],"GroupProperties":{"0":["seats"]},"GroupTypes":[0],"Cohorts":[5],"DependencyChain":["base"],"TimeDependent":true,"Aggregations":[-1,0]}`
	if string(got) != want {
		t.Errorf("info\n got %s\nwant %s", got, want)
	}
	if keys := set.Keys(); len(keys) != 2 || keys[0] != "base" {
		t.Errorf("evaluation order %v: base must come first", keys)
	}
}

func TestFlagJSONRoundTrip(t *testing.T) {
	in := `{"id":7,"team_id":2,"key":"k","name":"K","active":true,"deleted":false,"version":3,"ensure_experience_continuity":false,"filters":{"groups":[{"properties":[{"key":"a","value":5.0,"operator":"exact","type":"person"}],"rollout_percentage":50},{"properties":[],"rollout_percentage":null,"aggregation_group_type_index":null},{"properties":[],"rollout_percentage":10,"aggregation_group_type_index":1}],"payloads":{"true":"{\"a\": 1}"},"aggregation_group_type_index":0}}`
	f, err := ParseFlag([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip changed the flag:\n in %s\nout %s", in, out)
	}
	if _, err := ParseFlag([]byte(`{"key":"k"} trailing`)); err == nil {
		t.Error("trailing data accepted")
	}
	if _, err := ParseFlag([]byte(`{"key": 5}`)); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a wrong type must name the field, got %v", err)
	}
}

// An inactive flag answers flag_disabled whatever its filters hold, and its
// info names no problem that keeps it from being evaluated.
func TestInactiveFlagIsDisabledWhateverItHolds(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`{"flags":[
	  {"key":"off","active":false,"filters":{"groups":[{"properties":[{"key":"e","type":"person","operator":"almost","value":"x"}]}]}},
	  {"key":"on","active":true,"filters":{"groups":[{"properties":[{"key":"e","type":"person","operator":"almost","value":"x"}]}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	var ves ValidationErrors
	if !errors.As(err, &ves) || len(ves) != 2 || !ves[0].Fatal || ves[0].Code != CodeInvalidOperator {
		t.Fatalf("got %v, want invalid_operator for both flags", err)
	}
	byKey := map[string]Result{}
	for _, r := range set.Evaluate(&Context{DistinctID: "u"}) {
		byKey[r.Key] = r
	}
	if r := byKey["off"]; r.Err != nil || r.Enabled || r.Reason.Code != ReasonFlagDisabled {
		t.Errorf("inactive flag: got %+v, want flag_disabled", r)
	}
	if r := byKey["on"]; r.Err == nil || r.Reason.Code != ReasonError {
		t.Errorf("active flag: got %+v, want a failure", r)
	}
	if info, _ := set.Info("off"); info.Invalid != "" {
		t.Errorf("inactive flag: Info.Invalid = %q, want empty", info.Invalid)
	}
	if info, _ := set.Info("on"); info.Invalid != CodeInvalidOperator {
		t.Errorf("active flag: Info.Invalid = %q, want %s", info.Invalid, CodeInvalidOperator)
	}
}

func TestInfoUnparsableFilters(t *testing.T) {
	defs, err := ParseDefinitions([]byte(`{
	 "cohorts":{"1":{"type":"AND","values":[{"key":"v","type":"person","operator":"semver_gt","value":"one"}]},
	            "2":{"type":"OR","values":[{"key":"id","type":"cohort","value":1}]}},
	 "flags":[
	  {"key":"own","active":true,"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"gt","value":"ten"}]}]}},
	  {"key":"nested","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":2}]}]}},
	  {"key":"fine","active":true,"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"gt","value":10}]}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	var ves ValidationErrors
	if !errors.As(err, &ves) || len(ves) != 2 {
		t.Fatalf("got %v, want two warnings", err)
	}
	for _, ve := range ves {
		if ve.Fatal {
			t.Errorf("%v is fatal, want a warning", ve)
		}
	}
	for key, want := range map[string]bool{"own": true, "nested": true, "fine": false} {
		info, _ := set.Info(key)
		if info.UnparsableFilters != want || info.Invalid != "" {
			t.Errorf("%s: UnparsableFilters %v Invalid %q, want %v and none", key, info.UnparsableFilters, info.Invalid, want)
		}
	}
}
