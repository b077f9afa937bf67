package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// jflag is a flag as the HTTP API returns it (int64 fields are strings).
type jflag struct {
	ID       int64           `json:"id"`
	Key      string          `json:"key"`
	Active   bool            `json:"active"`
	Archived bool            `json:"archived"`
	Deleted  bool            `json:"deleted"`
	Version  int64           `json:"version"`
	Filters  json.RawMessage `json:"filters"`
	Tags     []string        `json:"tags"`
	Warnings []struct {
		Field string `json:"field"`
		Code  string `json:"code"`
	} `json:"warnings"`
}

type jerr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type     string            `json:"@type"`
		Reason   string            `json:"reason"`
		Metadata map[string]string `json:"metadata"`
	} `json:"details"`
}

func (e jerr) reason() string {
	for _, d := range e.Details {
		if d.Reason != "" {
			return d.Reason
		}
	}
	return ""
}

func (e jerr) meta(k string) string {
	for _, d := range e.Details {
		if v, ok := d.Metadata[k]; ok {
			return v
		}
	}
	return ""
}

func TestFlagLifecycleHTTP(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	base := fmt.Sprintf("/api/projects/%d/feature_flags", team.GetId())

	// filters is PostHog's JSON object; 5.0, which a double would write
	// as 5, keeps its text as a string (the engine compares both alike).
	filters := json.RawMessage(`{"groups":[{"properties":[{"key":"plan","type":"person","operator":"exact","value":5.0}],"rollout_percentage":50}]}`)
	var f jflag
	if code := e.do("POST", base, e.root, map[string]any{"key": "new-checkout", "name": "New checkout", "active": true,
		"filters": filters, "tags": []string{"web"}}, &f); code != 200 {
		t.Fatalf("create: %d", code)
	}
	if f.Version != 1 || f.ID <= 0 || f.Key != "new-checkout" || !f.Active || len(f.Warnings) != 0 {
		t.Fatalf("created %+v", f)
	}
	if !strings.Contains(string(f.Filters), `"value":"5.0"`) || !strings.Contains(string(f.Filters), `"rollout_percentage":50`) {
		t.Errorf("filters lost the number's text: %s", f.Filters)
	}
	id := strconv.FormatInt(f.ID, 10)

	// A lost update: 409 with the current version; If-Match works too.
	update := map[string]any{"version": 7, "flag": map[string]any{"key": "new-checkout", "name": "renamed", "active": true, "filters": filters}}
	var je jerr
	if code := e.do("PUT", base+"/"+id, e.root, update, &je); code != 409 {
		t.Fatalf("stale update: %d", code)
	}
	if je.reason() != string(errcode.Conflict) || je.meta("current_version") != "1" || je.meta("sent_version") != "7" ||
		!strings.Contains(je.Message, "version 7 was sent, the current version is 1") {
		t.Errorf("conflict body %+v", je)
	}
	delete(update, "version")
	if code := e.do("PUT", base+"/"+id, e.root, update, &f, "If-Match", `"1"`); code != 200 || f.Version != 2 {
		t.Fatalf("update with If-Match: %d %+v", code, f)
	}
	je = jerr{}
	if code := e.do("PUT", base+"/"+id, e.root, update, &je); code != 400 || je.meta("field") != "version" {
		t.Errorf("update without version: %d %+v", code, je)
	}

	// Single-purpose changes never touch targeting.
	before := string(f.Filters)
	if code := e.do("POST", base+"/"+id+"/disable", e.root, map[string]any{"version": 2}, &f); code != 200 || f.Active || string(f.Filters) != before {
		t.Fatalf("disable: %d %+v", code, f)
	}
	if code := e.do("POST", base+"/"+id+"/enable", e.root, map[string]any{"version": 3}, &f); code != 200 || !f.Active || string(f.Filters) != before {
		t.Fatalf("enable: %d %+v", code, f)
	}

	// Validation: the field path and the engine's code.
	bad := map[string]any{"key": "broken", "filters": json.RawMessage(`{"groups":[{"properties":[{"key":"a","type":"person","operator":"nope","value":"x"}]}]}`)}
	je = jerr{}
	if code := e.do("POST", base, e.root, bad, &je); code != 400 || je.reason() != string(errcode.InvalidDefinition) ||
		je.meta("field") != "flag.filters.groups[0].properties[0].operator" || je.meta("engine_code") != "invalid_operator" {
		t.Errorf("invalid operator: %d %+v", code, je)
	}
	sum := map[string]any{"key": "mv", "filters": json.RawMessage(`{"groups":[{"properties":[]}],"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":40}]}}`)}
	je = jerr{}
	if code := e.do("POST", base, e.root, sum, &je); code != 400 || je.meta("engine_code") != "variants_sum" {
		t.Errorf("variants sum: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("POST", base, e.root, map[string]any{"key": "j", "filters": `{"groups": [`}, &je); code != 400 || je.reason() != string(errcode.InvalidArgument) {
		t.Errorf("filters as a string: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("POST", base, e.root, map[string]any{"key": "new-checkout"}, &je); code != 409 || je.reason() != string(errcode.AlreadyExists) {
		t.Errorf("duplicate key: %d %+v", code, je)
	}

	// Notices and signals on NATS, one per committed change.
	var kinds []string
	for _, c := range e.notices(changes.Subject("", team.GetId())) {
		n, err := changes.Parse("", changes.Subject("", team.GetId()), c)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, string(n.Kind)+":"+n.Op)
	}
	want := []string{"team:created", "flag:created", "flag:updated", "flag:disabled", "flag:enabled"}
	if !slices.Equal(kinds, want) {
		t.Errorf("change notices %v, want %v", kinds, want)
	}
	signals := e.notices(SignalsSubject("", team.GetId()))
	if len(signals) != 4 {
		t.Fatalf("%d rollout signals, want 4", len(signals))
	}
	var sig RolloutSignal
	if err := json.Unmarshal(signals[1], &sig); err != nil {
		t.Fatal(err)
	}
	if sig.Op != "updated" || sig.Key != "new-checkout" || sig.Version != 2 || !strings.Contains(string(sig.Diff), `"name"`) || sig.Actor == "" {
		t.Errorf("signal %+v diff %s", sig, sig.Diff)
	}

	if got := testutil.ToFloat64(e.svc.metrics.published.WithLabelValues("error")); got != 0 {
		t.Errorf("%v publish errors", got)
	}
	if got := testutil.ToFloat64(e.svc.metrics.published.WithLabelValues("ok")); got != 9 {
		t.Errorf("%v messages published, want 9", got)
	}

	// The flag's activity, newest first, with actor and diff.
	var act struct {
		Entries []struct {
			Actor, Action       string
			Diff, Before, After json.RawMessage
		} `json:"entries"`
	}
	if code := e.do("GET", base+"/"+id+"/activity?page_size=2", e.root, nil, &act); code != 200 || len(act.Entries) != 2 {
		t.Fatalf("activity: %d %+v", code, act)
	}
	if act.Entries[0].Action != "enabled" || act.Entries[1].Action != "disabled" || act.Entries[0].Actor != sig.Actor ||
		!strings.Contains(string(act.Entries[0].Diff), `"active":{"after":true,"before":false}`) || act.Entries[0].Before[0] != '{' {
		t.Errorf("activity %+v", act.Entries)
	}

	// Lists: search, tags, status.
	var list struct {
		Flags []jflag `json:"results"`
		Count int     `json:"count"`
		Next  string  `json:"next_page_token"`
	}
	if code := e.do("GET", base+"?search=CHECK", e.root, nil, &list); code != 200 || len(list.Flags) != 1 || list.Count != 1 {
		t.Errorf("search: %d %+v", code, list)
	}
	list.Flags = nil
	if code := e.do("GET", base+"?tags=web", e.root, nil, &list); code != 200 || len(list.Flags) != 0 {
		t.Errorf("tags: %d %+v", code, list)
	}
	je = jerr{}
	if code := e.do("GET", base+"?page_size=5000", e.root, nil, &je); code != 400 || je.reason() != string(errcode.LimitExceeded) {
		t.Errorf("page size: %d %+v", code, je)
	}
	// GetFlagByKey.
	if code := e.do("GET", base+"/key/new-checkout", e.root, nil, &f); code != 200 || f.Version != 4 {
		t.Errorf("by key: %d %+v", code, f)
	}
	// Soft delete: the version as a query parameter or as If-Match.
	je = jerr{}
	if code := e.do("DELETE", base+"/"+id+"?version=3", e.root, nil, &je); code != 409 || je.meta("current_version") != "4" {
		t.Errorf("stale delete: %d %+v", code, je)
	}
	if code := e.do("DELETE", base+"/"+id, e.root, nil, &f, "If-Match", `W/"4"`); code != 200 || !f.Deleted {
		t.Errorf("delete: %d %+v", code, f)
	}
	je = jerr{}
	if code := e.do("GET", base+"/"+id, e.root, nil, &je); code != 404 || je.reason() != string(errcode.NotFound) {
		t.Errorf("deleted: %d %+v", code, je)
	}
}

func TestDependentsAndArchive(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	mk := func(key, filters string) *adminv1.FeatureFlag {
		r, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: key, Active: true, Filters: js(filters)}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetFlag()
	}
	a := mk("base", `{"groups":[{"properties":[]}]}`)
	b := mk("child", `{"groups":[{"properties":[{"key":"base","type":"flag","operator":"flag_evaluates_to","value":true}]}]}`)
	deps, err := e.client.ListDependents(ctx, &adminv1.ListDependentsRequest{TeamId: team.GetId(), FlagId: a.GetId()})
	if err != nil || len(deps.GetDependents()) != 1 || deps.GetDependents()[0].GetKey() != "child" || !deps.GetDependents()[0].GetDirect() {
		t.Fatalf("dependents %v %v", deps, err)
	}
	_, err = e.client.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{TeamId: team.GetId(), FlagId: a.GetId(), Version: 1})
	if e := errcode.FromStatus(status.Convert(err)); e.Code != errcode.HasDependents || e.Meta["dependents"] != "child" {
		t.Fatalf("archive with dependents: %v", err)
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("gRPC code %v", status.Code(err))
	}
	_, err = e.client.DeleteFlag(ctx, &adminv1.DeleteFlagRequest{TeamId: team.GetId(), FlagId: a.GetId(), Version: 1})
	if errcode.FromStatus(status.Convert(err)).Code != errcode.HasDependents {
		t.Fatalf("delete with dependents: %v", err)
	}
	_, err = e.client.UpdateFlag(ctx, &adminv1.UpdateFlagRequest{TeamId: team.GetId(), FlagId: a.GetId(), Version: 1,
		Flag: &adminv1.FlagInput{Key: "renamed", Active: true}})
	if errcode.FromStatus(status.Convert(err)).Code != errcode.HasDependents {
		t.Fatalf("rename with dependents: %v", err)
	}
	if _, err := e.client.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{TeamId: team.GetId(), FlagId: b.GetId(), Version: 1}); err != nil {
		t.Fatal(err)
	}
	ar, err := e.client.ArchiveFlag(ctx, &adminv1.ArchiveFlagRequest{TeamId: team.GetId(), FlagId: a.GetId(), Version: 1})
	if err != nil || !ar.GetFlag().GetArchived() || ar.GetFlag().GetActive() || !proto.Equal(ar.GetFlag().GetFilters(), a.GetFilters()) {
		t.Fatalf("archive: %v %v", ar, err)
	}
	l, err := e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team.GetId(), Status: adminv1.FlagStatus_FLAG_STATUS_ARCHIVED})
	if err != nil || len(l.GetResults()) != 2 {
		t.Fatalf("archived list %v %v", l, err)
	}
	l, _ = e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team.GetId()})
	if len(l.GetResults()) != 0 {
		t.Errorf("default list shows archived flags: %v", l)
	}
	un, err := e.client.UnarchiveFlag(ctx, &adminv1.UnarchiveFlagRequest{TeamId: team.GetId(), FlagId: b.GetId(), Version: 2})
	if err != nil || un.GetFlag().GetArchived() || un.GetFlag().GetActive() {
		t.Fatalf("unarchive %v %v", un, err)
	}
	// Soft delete of the child frees its key.
	if _, err := e.client.DeleteFlag(ctx, &adminv1.DeleteFlagRequest{TeamId: team.GetId(), FlagId: b.GetId(), Version: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: team.GetId(), FlagId: b.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("deleted flag: %v", err)
	}
	mk("child", "")
}

func TestConditionsAndOverrides(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxConditions = 3; c.Limits.MaxOverrides = 2 })
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	if _, err := e.client.SetGroupType(ctx, &adminv1.SetGroupTypeRequest{TeamId: team.GetId(), GroupTypeIndex: 0, GroupType: "company", Version: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "f", Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetFlag().GetId()
	v := int64(1)
	add := func(c *adminv1.Condition, pos *int32) (*adminv1.FeatureFlag, error) {
		resp, err := e.client.AddCondition(ctx, &adminv1.AddConditionRequest{TeamId: team.GetId(), FlagId: id, Version: v, Condition: c, Position: pos})
		if err == nil {
			v = resp.GetFlag().GetVersion()
		}
		return resp.GetFlag(), err
	}
	fifty := 50.0
	if _, err := add(&adminv1.Condition{Properties: jl(`[{"key":"email","type":"person","operator":"icontains","value":"@corp.com"}]`),
		Target: &adminv1.Condition_Persons{Persons: true}}, nil); err != nil {
		t.Fatal(err)
	}
	zero := int32(0)
	f, err := add(&adminv1.Condition{Properties: jl(`[{"key":"name","type":"group","group_type_index":0,"value":"acme"}]`),
		RolloutPercentage: &fifty, Target: &adminv1.Condition_GroupTypeIndex{GroupTypeIndex: 0}}, &zero)
	if err != nil {
		t.Fatal(err)
	}
	filters, _ := filtersFromStruct(f.GetFilters())
	if len(filters.Groups) != 2 || filters.Groups[0].Aggregation.Index == nil || *filters.Groups[0].Aggregation.Index != 0 ||
		!filters.Groups[1].Aggregation.Set || filters.Groups[1].Aggregation.Index != nil {
		t.Fatalf("conditions %s", jtext(f.GetFilters()))
	}
	// A group type without a name is accepted (PostHog accepts it; the
	// import creates names) with a warning on the condition's path.
	f3, err := add(&adminv1.Condition{Properties: jl(`[]`), Target: &adminv1.Condition_GroupTypeIndex{GroupTypeIndex: 3}}, nil)
	if err != nil || len(f3.GetWarnings()) != 1 || f3.GetWarnings()[0].GetCode() != flags.CodeUnknownGroupType ||
		f3.GetWarnings()[0].GetField() != "condition.aggregation_group_type_index" {
		t.Errorf("unknown group type: %v %v", err, f3.GetWarnings())
	}
	_, err = add(&adminv1.Condition{Properties: jl(`[]`)}, nil)
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.LimitExceeded {
		t.Errorf("fourth condition: %v", err)
	}
	ro, err := e.client.ReorderConditions(ctx, &adminv1.ReorderConditionsRequest{TeamId: team.GetId(), FlagId: id, Version: v, Order: []int32{2, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	v = ro.GetFlag().GetVersion()
	filters, _ = filtersFromStruct(ro.GetFlag().GetFilters())
	if len(filters.Groups[0].Properties) != 0 || filters.Groups[1].Aggregation.Index == nil {
		t.Errorf("reordered %s", jtext(ro.GetFlag().GetFilters()))
	}
	sr, err := e.client.SetRollout(ctx, &adminv1.SetRolloutRequest{TeamId: team.GetId(), FlagId: id, Version: v, Index: 0, RolloutPercentage: 25})
	if err != nil {
		t.Fatal(err)
	}
	v = sr.GetFlag().GetVersion()
	if _, err := e.client.SetRollout(ctx, &adminv1.SetRolloutRequest{TeamId: team.GetId(), FlagId: id, Version: v, Index: 9, RolloutPercentage: 25}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("rollout on a missing condition: %v", err)
	}
	rm, err := e.client.RemoveCondition(ctx, &adminv1.RemoveConditionRequest{TeamId: team.GetId(), FlagId: id, Version: v, Index: 2})
	if err != nil {
		t.Fatal(err)
	}
	v = rm.GetFlag().GetVersion()
	filters, _ = filtersFromStruct(rm.GetFlag().GetFilters())
	if len(filters.Groups) != 2 || *filters.Groups[0].RolloutPercentage != 25 {
		t.Errorf("after remove %s", jtext(rm.GetFlag().GetFilters()))
	}
	uc, err := e.client.UpdateCondition(ctx, &adminv1.UpdateConditionRequest{TeamId: team.GetId(), FlagId: id, Version: v, Index: 1,
		Condition: &adminv1.Condition{Properties: jl(`[{"key":"age","type":"person","operator":"gt","value":"abc"}]`)}})
	// An unparsable number never matches (as on PostHog's server): accepted,
	// with a warning on the condition's path.
	if err != nil || len(uc.GetFlag().GetWarnings()) != 2 || uc.GetFlag().GetWarnings()[1].GetField() != "condition.properties[0].value" ||
		uc.GetFlag().GetWarnings()[1].GetCode() != flags.CodeInvalidNumber {
		t.Fatalf("bad number: %v %v", uc.GetFlag().GetWarnings(), err)
	}
	v = uc.GetFlag().GetVersion()
	// Overrides, and their limit.
	ov, err := e.client.SetOverrides(ctx, &adminv1.SetOverridesRequest{TeamId: team.GetId(), FlagId: id, Version: v,
		Overrides: []*adminv1.Override{{DistinctIds: []string{"u1", "u2"}, Value: jv("true")}}})
	if err != nil || len(ov.GetFlag().GetOverrides()) != 1 {
		t.Fatalf("overrides %v %v", ov, err)
	}
	v = ov.GetFlag().GetVersion()
	_, err = e.client.SetOverrides(ctx, &adminv1.SetOverridesRequest{TeamId: team.GetId(), FlagId: id, Version: v,
		Overrides: []*adminv1.Override{{DistinctIds: []string{"u1", "u2", "u3"}, Value: jv("true")}}})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.LimitExceeded || ee.Field != "overrides" {
		t.Errorf("override limit: %v", err)
	}
	_, err = e.client.SetOverrides(ctx, &adminv1.SetOverridesRequest{TeamId: team.GetId(), FlagId: id, Version: v,
		Overrides: []*adminv1.Override{{DistinctIds: []string{"u1"}, Value: jv(`"nope"`)}}})
	if ee := errcode.FromStatus(status.Convert(err)); ee.Code != errcode.InvalidDefinition || !strings.HasPrefix(ee.Field, "overrides") {
		t.Errorf("override to an unknown variant: %v (%+v)", err, ee)
	}
	_ = strconv.Itoa
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxBodyBytes = 2000 })
	team := e.createTeam("acme")
	var je jerr
	big := map[string]any{"key": "big", "description": strings.Repeat("x", 3000)}
	if code := e.do("POST", fmt.Sprintf("/api/projects/%d/feature_flags", team.GetId()), e.root, big, &je); code != 413 ||
		je.reason() != string(errcode.TooLarge) {
		t.Errorf("big body: %d %+v", code, je)
	}
	// gRPC: the same limit on the message.
	_, err := e.client.CreateFlag(e.ctx(e.root), &adminv1.CreateFlagRequest{TeamId: team.GetId(),
		Flag: &adminv1.FlagInput{Key: "big", Description: strings.Repeat("x", 3000)}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("big message: %v", err)
	}
}

// New flag keys follow PostHog's rule (letters, digits, '-' and '_'): a
// key that would need escaping in a path is refused with its field, on
// create and on a change of key; a key stored before the rule keeps working.
func TestFlagKeyCharacters(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("acme")
	base := fmt.Sprintf("/api/projects/%d/feature_flags", team.GetId())
	for _, key := range []string{"../../x", "a/b", "with space", "dot.ted", "é", "a?b", "a%2Fb"} {
		var je jerr
		if code := e.do("POST", base, e.root, map[string]any{"key": key, "active": true}, &je); code != 400 ||
			je.reason() != string(errcode.InvalidArgument) || je.meta("field") != "flag.key" {
			t.Errorf("create %q: %d %+v, want 400 on flag.key", key, code, je)
		}
	}
	var f jflag
	if code := e.do("POST", base, e.root, map[string]any{"key": "Beta_2-x", "active": true}, &f); code != 200 || f.Key != "Beta_2-x" {
		t.Fatalf("create Beta_2-x: %d %+v", code, f)
	}
	item := fmt.Sprintf("%s/%d", base, f.ID)
	var je jerr
	if code := e.do("PATCH", item, e.root, `{"key":"a/b"}`, &je, "If-Match", "1"); code != 400 || je.meta("field") != "flag.key" {
		t.Errorf("rename to a/b: %d %+v, want 400 on flag.key", code, je)
	}

	// A key stored before the rule: it still reads, updates and renames
	// to a valid key.
	old, err := e.cat.CreateFlag(context.Background(), catalog.FlagRecord{Flag: flags.Flag{TeamID: team.GetId(), Key: "legacy key/1",
		Filters: flags.Filters{Groups: []flags.Condition{}}}}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	oldItem := fmt.Sprintf("%s/%d", base, old.Flag.ID)
	var patched jflag
	if code := e.do("PATCH", oldItem, e.root, `{"name":"kept"}`, &patched, "If-Match", "1"); code != 200 ||
		patched.Key != "legacy key/1" || patched.Version != 2 {
		t.Fatalf("update of a legacy key: %d %+v", code, patched)
	}
	if code := e.do("PATCH", oldItem, e.root, `{"key":"legacy-key-1"}`, &patched, "If-Match", "2"); code != 200 || patched.Key != "legacy-key-1" {
		t.Fatalf("rename of a legacy key: %d %+v", code, patched)
	}
}
