package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
)

type jimport struct {
	DryRun            bool `json:"dry_run"`
	Applied           bool `json:"applied"`
	Created           int  `json:"created"`
	Changed           int  `json:"changed"`
	Unchanged         int  `json:"unchanged"`
	Refused           int  `json:"refused"`
	GroupTypesCreated []struct {
		Index int    `json:"group_type_index"`
		Name  string `json:"group_type"`
	} `json:"group_types_created"`
	Items []struct {
		Kind     string `json:"kind"`
		Key      string `json:"key"`
		SourceID int64  `json:"source_id"`
		ID       int64  `json:"id"`
		Action   string `json:"action"`
		Errors   []struct {
			Field, Code, Message string
		} `json:"errors"`
		Warnings []struct {
			Field, Code, Message string
		} `json:"warnings"`
	} `json:"items"`
}

// TestImportLocalEvaluationPayload imports PostHog's local-evaluation
// payload of 61 flags (every operator, nested cohorts, dependencies listed
// before what they depend on, group flags) unchanged: a dry run writes
// nothing, the apply writes everything with cohort ids remapped, and a
// second import changes nothing.
func TestImportLocalEvaluationPayload(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	payload := readTestdata(t, "posthog_local_eval.json")
	var src struct {
		Flags []json.RawMessage `json:"flags"`
	}
	if err := json.Unmarshal([]byte(payload), &src); err != nil || len(src.Flags) < 50 {
		t.Fatalf("testdata: %d flags, %v", len(src.Flags), err)
	}
	path := fmt.Sprintf("/api/projects/%d/import", team.GetId())

	var dry jimport
	if code := e.do("POST", path+"?dry_run=true", e.root, payload, &dry); code != 200 {
		t.Fatalf("dry run: %d", code)
	}
	if !dry.DryRun || dry.Applied || dry.Created != len(src.Flags)+3 || dry.Refused != 0 || dry.Changed != 0 ||
		len(dry.GroupTypesCreated) != 2 || dry.GroupTypesCreated[1].Name != "project" {
		t.Fatalf("dry run %+v", dry)
	}
	for _, it := range dry.Items {
		if len(it.Errors) > 0 || len(it.Warnings) > 0 {
			t.Errorf("%s %s: errors %v warnings %v", it.Kind, it.Key, it.Errors, it.Warnings)
		}
	}
	snap, err := e.cat.Snapshot(context.Background(), team.GetId())
	if err != nil || len(snap.Definitions.Flags) != 0 || len(snap.Definitions.Cohorts) != 0 || len(snap.Team.GroupTypes) != 0 {
		t.Fatalf("the dry run wrote: %+v %v", snap.Definitions, err)
	}

	var applied jimport
	if code := e.do("POST", path+"/", e.root, payload, &applied); code != 200 {
		t.Fatalf("apply: %d", code)
	}
	if applied.DryRun || !applied.Applied || applied.Created != len(src.Flags)+3 || applied.Refused != 0 {
		t.Fatalf("apply %+v", applied)
	}
	ids := map[string]int64{} // "flag:key" or "cohort:source id" -> Vexil id
	for _, it := range applied.Items {
		if it.ID <= 0 {
			t.Errorf("%s %s has no id", it.Kind, it.Key)
		}
		if it.Kind == "cohort" {
			ids["cohort:"+strconv.FormatInt(it.SourceID, 10)] = it.ID
		} else {
			ids["flag:"+it.Key] = it.ID
		}
	}
	snap, err = e.cat.Snapshot(context.Background(), team.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Definitions.Flags) != len(src.Flags) || len(snap.Definitions.Cohorts) != 3 ||
		snap.Team.GroupTypes[0] != "company" || snap.Team.GroupTypes[1] != "project" {
		t.Fatalf("after apply: %d flags, %d cohorts, group types %v", len(snap.Definitions.Flags), len(snap.Definitions.Cohorts), snap.Team.GroupTypes)
	}
	// The whole set compiles without a problem.
	set, err := flags.Compile(snap.Definitions)
	if err != nil {
		t.Fatalf("the imported definitions do not compile cleanly: %v", err)
	}
	byKey := map[string]flags.Flag{}
	for _, f := range snap.Definitions.Flags {
		byKey[f.Key] = f
	}
	// Cohort ids are remapped in flags and in cohorts.
	if v := string(byKey["cohort-in"].Filters.Groups[0].Properties[0].Value); v != strconv.FormatInt(ids["cohort:501"], 10) {
		t.Errorf("cohort-in names cohort %s, want %d", v, ids["cohort:501"])
	}
	for _, c := range snap.Definitions.Cohorts {
		if c.ID != ids["cohort:502"] {
			continue
		}
		inner := c.Filters.Values[0].Group.Values[0].Filter
		if string(inner.Value) != strconv.FormatInt(ids["cohort:501"], 10) {
			t.Errorf("cohort 502 names %s, want %d", inner.Value, ids["cohort:501"])
		}
	}
	// Dependencies resolved whatever the order of the list.
	if info, ok := set.Info("chain-c"); !ok || strings.Join(info.DependencyChain, ",") != "chain-a,chain-b" {
		t.Errorf("chain-c dependencies %+v", info)
	}
	// Numbers keep their digits and their text.
	if v := string(byKey["numeric-exact"].Filters.Groups[0].Properties[0].Value); v != `"12345678901234567890"` {
		t.Errorf("numeric-exact value %s", v)
	}
	if v := string(byKey["float-exact"].Filters.Groups[0].Properties[0].Value); v != `"5.0"` {
		t.Errorf("float-exact value %s", v)
	}
	if f := byKey["project-beta"]; f.Filters.AggregationGroupTypeIndex == nil || *f.Filters.AggregationGroupTypeIndex != 1 {
		t.Errorf("project-beta aggregation %+v", f.Filters.AggregationGroupTypeIndex)
	}
	if f := byKey["inactive-flag"]; f.Active || !byKey["continuity-flag"].EnsureExperienceContinuity {
		t.Errorf("active / continuity lost")
	}

	// Importing the same definitions again changes nothing.
	var again jimport
	if code := e.do("POST", path, e.root, payload, &again); code != 200 || !again.Applied || again.Unchanged != len(src.Flags)+3 ||
		again.Created != 0 || again.Changed != 0 {
		t.Errorf("second import: %d %+v", code, again)
	}
}

// TestImportPostHogLists imports lists of PostHog's flags and cohorts as
// its API returns them: a dependency named by PostHog's flag id, a static
// cohort, a deleted flag left out.
func TestImportPostHogLists(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	var r jimport
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/import", team.GetId()), e.root, readTestdata(t, "posthog_api_definitions.json"), &r); code != 200 {
		t.Fatalf("import: %d", code)
	}
	if !r.Applied || r.Created != 4 || len(r.Items) != 4 || len(r.GroupTypesCreated) != 1 {
		t.Fatalf("import %+v", r)
	}
	if it := r.Items[0]; it.Kind != "cohort" || it.Key != "Beta testers (uploaded)" || len(it.Warnings) != 1 || it.Warnings[0].Code != "static_cohort" {
		t.Errorf("static cohort item %+v", it)
	}
	snap, err := e.cat.Snapshot(context.Background(), team.GetId())
	if err != nil {
		t.Fatal(err)
	}
	var upsell flags.Flag
	for _, f := range snap.Definitions.Flags {
		if f.Key == "checkout-upsell" {
			upsell = f
		}
		if f.Key == "old-checkout" {
			t.Errorf("a deleted flag was imported")
		}
	}
	props := upsell.Filters.Groups[0].Properties
	if props[0].Key != "new-checkout" || string(props[1].Value) != strconv.FormatInt(r.Items[0].ID, 10) {
		t.Errorf("upsell filters %+v", props)
	}
	var kinds []string
	for _, c := range snap.Definitions.Cohorts {
		kinds = append(kinds, c.Kind)
	}
	if strings.Join(kinds, ",") != "static,dynamic" {
		t.Errorf("cohort kinds %v", kinds)
	}
}

// TestImportRefusals: a dry run lists every refusal with its field path;
// applying the same refuses the whole import and writes nothing.
func TestImportRefusals(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	path := fmt.Sprintf("/api/projects/%d/import", team.GetId())
	defs := `{"flags":[
	  {"id":1,"key":"good","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":7}]}]}},
	  {"id":2,"key":"sum","active":true,"filters":{"groups":[],"multivariate":{"variants":[{"key":"a","rollout_percentage":60},{"key":"b","rollout_percentage":30}]}}},
	  {"id":3,"key":"ghost-cohort","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":99}]}]}},
	  {"id":4,"key":"ghost-flag","active":true,"filters":{"groups":[{"properties":[{"key":"nope","type":"flag","operator":"flag_evaluates_to","value":true}]}]}},
	  {"id":5,"key":"regex","active":true,"filters":{"groups":[{"properties":[{"key":"e","type":"person","operator":"regex","value":"("}]}]}},
	  {"id":6,"key":"good","active":true,"filters":{"groups":[]}}
	], "cohorts": {"7": {"type":"AND","values":[{"key":"plan","type":"person","value":"pro"}]}}}`
	var dry jimport
	if code := e.do("POST", path+"?dry_run=true", e.root, defs, &dry); code != 200 {
		t.Fatalf("dry run: %d", code)
	}
	want := map[string]string{ // key -> first error field (or "" when accepted)
		"sum":          "definitions.flags[1].filters.multivariate.variants",
		"ghost-cohort": "definitions.flags[2].filters.groups[0].properties[0].value",
		"ghost-flag":   "definitions.flags[3].filters.groups[0].properties[0].key",
		"regex":        "",
	}
	if dry.Refused != 4 || dry.Created != 3 {
		t.Errorf("dry run counts %+v", dry)
	}
	for _, it := range dry.Items {
		w, ok := want[it.Key]
		if !ok {
			continue
		}
		got := ""
		if len(it.Errors) > 0 {
			got = it.Errors[0].Field
		}
		if got != w {
			t.Errorf("%s: first error %q, want %q (%+v)", it.Key, got, w, it)
		}
		if it.Key == "regex" && (it.Action != "create" || len(it.Warnings) != 1 || it.Warnings[0].Code != flags.CodeInvalidRegex) {
			t.Errorf("regex item %+v", it)
		}
	}
	if last := dry.Items[len(dry.Items)-1]; last.Action != "refuse" || last.Errors[0].Code != flags.CodeDuplicateKey {
		t.Errorf("duplicate key item %+v", last)
	}
	var je jerr
	if code := e.do("POST", path, e.root, defs, &je); code != 400 || je.reason() != string(errcode.InvalidDefinition) ||
		je.meta("refused") != "4" || je.meta("field") != "definitions.flags[1].filters.multivariate.variants" {
		t.Errorf("apply with refusals: %d %+v", code, je)
	}
	snap, err := e.cat.Snapshot(context.Background(), team.GetId())
	if err != nil || len(snap.Definitions.Flags) != 0 || len(snap.Definitions.Cohorts) != 0 {
		t.Errorf("a refused import wrote: %+v %v", snap.Definitions, err)
	}
	// A group type the team names otherwise refuses the import.
	if _, err := e.cat.UpdateTeam(context.Background(), func() catalog.Team {
		tm := snap.Team
		tm.GroupTypes = map[int]string{0: "organization"}
		return tm
	}(), catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	je = jerr{}
	if code := e.do("POST", path, e.root, `{"flags":[],"group_type_mapping":{"0":"company"}}`, &je); code != 409 ||
		je.meta("field") != "definitions.group_type_mapping.0" {
		t.Errorf("group type conflict: %d %+v", code, je)
	}
	// Scopes: cohorts need cohort:write.
	flagsOnly := e.key([]int64{team.GetId()}, ScopeFlagWrite)
	je = jerr{}
	if code := e.do("POST", path, flagsOnly, `{"flags":[],"cohorts":{"7":{"type":"AND","values":[]}}}`, &je); code != 403 {
		t.Errorf("cohorts without cohort:write: %d %+v", code, je)
	}
}

// failingCatalog fails the n-th flag creation.
type failingCatalog struct {
	catalog.Catalog
	n, calls atomic.Int64
}

func (c *failingCatalog) CreateFlag(ctx context.Context, r catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	if c.calls.Add(1) == c.n.Load() {
		return catalog.FlagRecord{}, fmt.Errorf("test: write refused: %w", catalog.ErrClosed)
	}
	return c.Catalog.CreateFlag(ctx, r, ch)
}

// TestImportUndoesOnFailure: a write failing half-way undoes what the
// import wrote (flags and cohorts deleted, group types removed), so the
// team is left as it was.
func TestImportUndoesOnFailure(t *testing.T) {
	fc := &failingCatalog{Catalog: memcatalog.New(memcatalog.Config{})}
	t.Cleanup(func() { _ = fc.Close() })
	e := newEnv(t, func(cfg *Config) { cfg.Catalog = fc })
	e.cat = fc
	_, e.root, _ = CreatePersonalKey(context.Background(), fc, nil, []string{ScopeAll}, "root", "test")
	team := e.createTeam("acme")
	// An existing flag the import changes.
	var existing jflag
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/feature_flags", team.GetId()), e.root,
		`{"key":"chain-a","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":5}]}}`, &existing); code != 200 {
		t.Fatalf("existing flag: %d", code)
	}
	fc.calls.Store(0)
	fc.n.Store(20)
	var je jerr
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/import", team.GetId()), e.root, readTestdata(t, "posthog_local_eval.json"), &je); code != 503 {
		t.Fatalf("failing import: %d %+v", code, je)
	}
	snap, err := fc.Snapshot(context.Background(), team.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Definitions.Flags) != 1 || len(snap.Definitions.Cohorts) != 0 || len(snap.Team.GroupTypes) != 0 {
		t.Errorf("after the undo: %d flags, %d cohorts, group types %v", len(snap.Definitions.Flags), len(snap.Definitions.Cohorts), snap.Team.GroupTypes)
	}
	if f := snap.Definitions.Flags[0]; f.Key != "chain-a" || *f.Filters.Groups[0].RolloutPercentage != 5 || len(f.Filters.Groups[0].Properties) != 0 {
		t.Errorf("the changed flag is not restored: %+v", f.Filters)
	}
	var acts []catalog.ActivityEntry
	acts, _, err = fc.ListActivity(context.Background(), catalog.ActivityQuery{TeamID: team.GetId(), Page: catalog.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	undone := 0
	for _, a := range acts {
		if a.Action == "import_undone" {
			undone++
		}
	}
	if undone == 0 {
		t.Errorf("no import_undone activity")
	}
}
