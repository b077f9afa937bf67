package wire

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

func mustDefs(t *testing.T, js string) flags.Definitions {
	t.Helper()
	d, err := flags.ParseDefinitions([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildDefinitions(t *testing.T) {
	defs := mustDefs(t, `{"group_type_mapping":{"0":"company"},
	 "cohorts":{"1":{"type":"AND","values":[{"key":"email","type":"person","operator":"icontains","value":"@corp"}]},
	            "3":{"type":"AND","values":[{"key":"id","type":"cohort","value":1}]}},
	 "flags":[
	  {"id":1,"key":"base","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":3}],"rollout_percentage":100}]}},
	  {"id":2,"key":"dep","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"base","type":"flag","operator":"flag_evaluates_to","value":true}]}]}},
	  {"id":3,"key":"off","active":false,"version":1,"filters":{"groups":[]}},
	  {"id":4,"key":"gone","active":true,"deleted":true,"version":1,"filters":{"groups":[]}},
	  {"id":5,"key":"mixed","active":true,"version":1,"filters":{"groups":[{"properties":[]},{"aggregation_group_type_index":0,"properties":[]}]}},
	  {"id":6,"key":"cyc-a","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"cyc-b","type":"flag","operator":"flag_evaluates_to","value":true}]}]}},
	  {"id":7,"key":"cyc-b","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"cyc-a","type":"flag","operator":"flag_evaluates_to","value":true}]}]}},
	  {"id":8,"key":"static","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":9}]}]}},
	  {"id":10,"key":"badnum","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"age","type":"person","operator":"gt","value":"abc"}]},{"properties":[],"rollout_percentage":100}]}},
	  {"id":11,"key":"on-badnum","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"badnum","type":"flag","operator":"flag_evaluates_to","value":true}]}]}}]}`)
	defs.Cohorts = append(defs.Cohorts, flags.Cohort{ID: 9, Kind: flags.CohortStatic})
	set, _ := flags.Compile(defs)
	d, err := BuildDefinitions(defs, set, true)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Flags []struct {
			Key     string        `json:"key"`
			Active  bool          `json:"active"`
			EEC     bool          `json:"ensure_experience_continuity"`
			Filters flags.Filters `json:"filters"`
		} `json:"flags"`
		GroupTypeMapping map[string]string          `json:"group_type_mapping"`
		Cohorts          map[string]json.RawMessage `json:"cohorts"`
	}
	if err := json.Unmarshal(d.Body, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	byKey := map[string]int{}
	for i, f := range doc.Flags {
		keys = append(keys, f.Key)
		byKey[f.Key] = i
	}
	if want := []string{"base", "dep", "off", "mixed", "cyc-a", "cyc-b", "static", "badnum", "on-badnum"}; !slices.Equal(keys, want) {
		t.Errorf("flags %v, want %v (deleted left out, inactive kept)", keys, want)
	}
	if doc.Flags[byKey["off"]].Active {
		t.Error("inactive flag must say active: false")
	}
	if doc.GroupTypeMapping["0"] != "company" {
		t.Errorf("group_type_mapping %v", doc.GroupTypeMapping)
	}
	if _, ok := doc.Cohorts["1"]; !ok || len(doc.Cohorts) != 2 || doc.Cohorts["3"] == nil {
		t.Errorf("cohorts %v: want the dynamic cohorts 1 (nested) and 3, not the static 9", keys)
	}
	chain := doc.Flags[byKey["dep"]].Filters.Groups[0].Properties[0].DependencyChain
	if !slices.Equal(chain, []string{"base"}) {
		t.Errorf("dependency_chain %v, want [base]", chain)
	}
	cyc := doc.Flags[byKey["cyc-a"]].Filters.Groups[0].Properties[0].DependencyChain
	if cyc == nil || len(cyc) != 0 {
		t.Errorf("a cycle must be sent as an empty chain, got %v", cyc)
	}
	if !doc.Flags[byKey["mixed"]].EEC || !slices.Contains(d.ServerOnly, "mixed") {
		t.Error("mixed targeting must be marked server-only")
	}
	// An unparsable filter value is a non-match on the server and undecidable
	// (or, in posthog-node, decided otherwise) in the SDKs: the flag and its
	// dependents stay with the server.
	for _, k := range []string{"badnum", "on-badnum"} {
		if !doc.Flags[byKey[k]].EEC || !slices.Contains(d.ServerOnly, k) {
			t.Errorf("%s must be marked server-only", k)
		}
	}
	if doc.Flags[byKey["base"]].EEC {
		t.Error("base must stay locally evaluable")
	}
	// ETag: quoted, stable, and different when a definition changes.
	d2, _ := BuildDefinitions(defs, set, true)
	if d.ETag != d2.ETag || len(d.ETag) != 18 || d.ETag[0] != '"' {
		t.Errorf("etag %s vs %s", d.ETag, d2.ETag)
	}
	defs.Flags[0].Version = 2
	d3, _ := BuildDefinitions(defs, set, true)
	if d3.ETag == d.ETag {
		t.Error("the etag must change with the definitions")
	}
	if !ETagMatches(`W/`+d.ETag+`, "other"`, d.ETag) || !ETagMatches(`"x", `+d.ETag, d.ETag) || ETagMatches(`"x"`, d.ETag) || !ETagMatches("*", d.ETag) {
		t.Error("ETagMatches")
	}
}

// memberSource answers static cohort 9 by distinct id parity.
type memberSource struct{ id string }

func (m memberSource) InCohort(id int64) (bool, time.Time, error) {
	if id != 9 {
		return false, time.Time{}, flags.ErrCohortNotFound
	}
	return len(m.id)%2 == 0, time.Time{}, nil
}

// TestDefinitionsEvaluateLikeTheServer: for every flag not marked
// server-only, the payload (as an SDK downloads it) evaluates to the same
// value as the original definitions.
func TestDefinitionsEvaluateLikeTheServer(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	checked, serverOnly := 0, 0
	for it := range 200 {
		defs := flags.Definitions{GroupTypes: map[int]string{0: "company"}, Cohorts: []flags.Cohort{
			{ID: 1, Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "plan", Type: "person", Value: json.RawMessage(`"pro"`)}}}}},
			{ID: 9, Kind: flags.CohortStatic},
		}}
		n := 2 + r.IntN(6)
		for i := range n {
			f := flags.Flag{ID: int64(i + 1), Key: fmt.Sprintf("f%d", i), Active: r.IntN(8) != 0, Version: 1}
			if r.IntN(4) == 0 {
				f.Filters.AggregationGroupTypeIndex = new(int)
			}
			for range 1 + r.IntN(2) {
				c := flags.Condition{}
				if r.IntN(2) == 0 {
					c.Properties = append(c.Properties, flags.PropertyFilter{Key: "plan", Type: "person", Operator: pick("exact", "is_not"), Value: json.RawMessage(`"pro"`)})
				}
				if r.IntN(4) == 0 {
					c.Properties = append(c.Properties, flags.PropertyFilter{Key: "id", Type: "cohort", Value: json.RawMessage(pick("1", "9"))})
				}
				if i > 0 && r.IntN(4) == 0 {
					c.Properties = append(c.Properties, flags.PropertyFilter{Key: fmt.Sprintf("f%d", r.IntN(i)), Type: "flag", Operator: "flag_evaluates_to", Value: json.RawMessage(pick("true", "false"))})
				}
				p := float64(r.IntN(101))
				c.RolloutPercentage = &p
				if r.IntN(6) == 0 {
					c.Aggregation = flags.Aggregation{Set: true}
				}
				f.Filters.Groups = append(f.Filters.Groups, c)
			}
			if r.IntN(3) == 0 {
				f.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 50}, {Key: "b", RolloutPercentage: 50}}}
				f.Filters.Payloads = map[string]json.RawMessage{"a": json.RawMessage(`"A"`)}
			}
			if r.IntN(2) == 0 {
				vals := []string{`true`, `false`, `"a"`}
				o := flags.Override{Value: json.RawMessage(vals[r.IntN(len(vals))])}
				if f.Filters.AggregationGroupTypeIndex != nil && r.IntN(2) == 0 {
					o.GroupTypeIndex = new(int)
					o.GroupKeys = []string{"co-1", "co-2"}
				} else {
					o.DistinctIDs = []string{"u1", "u2", "u3"}
				}
				f.Overrides = append(f.Overrides, o)
			}
			if r.IntN(10) == 0 {
				f.Filters.Holdout = &flags.Holdout{ID: 4, ExclusionPercentage: 20}
			}
			defs.Flags = append(defs.Flags, f)
		}
		set, _ := flags.Compile(defs)
		built, err := BuildDefinitions(defs, set, true)
		if err != nil {
			t.Fatal(err)
		}
		pdefs, err := flags.ParseDefinitions(built.Body)
		if err != nil {
			t.Fatalf("seed %d: the payload does not parse: %v", it, err)
		}
		pset, _ := flags.Compile(pdefs)
		for u := range 8 {
			id := fmt.Sprintf("u%d", u)
			c := &flags.Context{DistinctID: id, PersonProperties: map[string]any{"plan": pick("pro", "free")},
				Cohorts: memberSource{id}, Now: time.Unix(1_800_000_000, 0)}
			if r.IntN(2) == 0 {
				c.Groups = []flags.Group{{Key: pick("co-1", "co-2", "co-3")}}
			}
			want := map[string]flags.Result{}
			for _, res := range set.Evaluate(c) {
				want[res.Key] = res
			}
			for _, got := range pset.Evaluate(c) {
				if slices.Contains(built.ServerOnly, got.Key) {
					serverOnly++
					continue
				}
				checked++
				w := want[got.Key]
				if got.Enabled != w.Enabled || got.Variant != w.Variant || string(got.Payload) != string(w.Payload) || (got.Err == nil) != (w.Err == nil) {
					t.Fatalf("seed %d, %s, flag %s: payload gives %+v, server %+v\npayload: %s", it, id, got.Key, got, w, built.Body)
				}
			}
		}
	}
	if checked < 1000 || serverOnly == 0 {
		t.Fatalf("the generator is too narrow: %d checked, %d server-only", checked, serverOnly)
	}
	t.Logf("%d evaluations compared, %d skipped as server-only", checked, serverOnly)
}

// A flag reading a behavioural cohort, and one depending on it, are left to
// the server: only the stored row's counters decide them.
func TestBehavioralFlagsServerOnly(t *testing.T) {
	defs := mustDefs(t, `{"cohorts":{"4":{"type":"AND","values":[{"key":"checkout","type":"behavioral","value":"performed_event","time_value":5,"time_interval":"minute"}]},
	            "5":{"type":"AND","values":[{"key":"email","type":"person","operator":"icontains","value":"@corp"}]}},
	 "flags":[
	  {"id":1,"key":"recent","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":4}],"rollout_percentage":100}]}},
	  {"id":2,"key":"on-recent","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"recent","type":"flag","operator":"flag_evaluates_to","value":true}]}]}},
	  {"id":3,"key":"corp","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":5}],"rollout_percentage":100}]}}]}`)
	set, err := flags.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := BuildDefinitions(defs, set, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.ServerOnly, []string{"on-recent", "recent"}) {
		t.Fatalf("server-only %q, want on-recent and recent", d.ServerOnly)
	}
}
