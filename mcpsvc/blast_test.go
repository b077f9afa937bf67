package mcpsvc

import (
	"context"
	"fmt"
	"testing"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// TestDryRunCountsGroups: a dry run of a group-aggregated condition set
// answers the groups whose value would change beside the persons.
func TestDryRunCountsGroups(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Invoke(ctx, "Bearer "+f.root, admin.Method("SetGroupType"), &adminv1.SetGroupTypeRequest{TeamId: f.team, GroupType: "company", GroupTypeIndex: 0, Version: f.teamVersion},
		func(ctx context.Context, r any) (any, error) {
			return f.svc.SetGroupType(ctx, r.(*adminv1.SetGroupTypeRequest))
		}); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	for i := range 5 {
		plan := "free"
		if i < 2 {
			plan = "enterprise"
		}
		b.PutGroup(&store.Group{Team: f.team, TypeIndex: 0, Key: fmt.Sprintf("co%d", i), Version: 1, Properties: []byte(`{"plan":"` + plan + `"}`)})
	}
	if err := f.persons.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	cs := f.connect(eras[1], f.key([]int64{f.team}, admin.ScopeAll), "", nil)
	mustTool(t, cs, "flag_create", map[string]any{"key": "b2b", "filters": map[string]any{"aggregation_group_type_index": 0,
		"groups": []any{map[string]any{"properties": []any{map[string]any{"key": "plan", "type": "group", "group_type_index": 0, "value": "enterprise"}}, "rollout_percentage": 100}}}})
	mustTool(t, cs, "flag_enable", map[string]any{"key": "b2b", "confirm_token": mustTool(t, cs, "flag_enable", map[string]any{"key": "b2b"})["confirm_token"]})
	dry := mustTool(t, cs, "flag_update", map[string]any{"key": "b2b", "dry_run": true, "filters": map[string]any{"aggregation_group_type_index": 0,
		"groups": []any{map[string]any{"properties": []any{}, "rollout_percentage": 100}}}})
	br := dry["blast_radius"].(map[string]any)
	if br["state"] != "DONE" || br["groups_evaluated"] != 5.0 || br["groups_changed"] != 3.0 ||
		br["group_transitions"].(map[string]any)["false->true"] != 3.0 || br["changed"] != 0.0 || br["rows_total"] != 200.0 {
		t.Fatalf("dry run of a group flag: %s", mustJSON(br))
	}
}
