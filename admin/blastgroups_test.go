package admin

import (
	"context"
	"fmt"
	"testing"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// TestBlastRadiusGroups: a group-aggregated condition set's blast radius
// counts the groups whose value changes (scanned from the store), beside
// the persons; a person-only flag counts no group. Both the answer at once
// (small team) and a job (pages of 3) agree.
func TestBlastRadiusGroups(t *testing.T) {
	for _, page := range []int{0, 3} {
		t.Run(fmt.Sprintf("page=%d", page), func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				if page > 0 {
					c.BlastRadiusPage = page
				}
			})
			team := e.createTeam("acme")
			ctx := e.ctx(e.root)
			if _, err := e.client.SetGroupType(ctx, &adminv1.SetGroupTypeRequest{TeamId: team.GetId(), Version: 1, GroupTypeIndex: 0, GroupType: "company"}); err != nil {
				t.Fatal(err)
			}
			e.putRows(team.GetId(), blastRows(4))
			// Ten companies: four enterprise, six free; a group of another
			// type is not counted.
			var b store.Batch
			for i := range 10 {
				plan := "free"
				if i < 4 {
					plan = "enterprise"
				}
				b.PutGroup(&store.Group{Team: team.GetId(), TypeIndex: 0, Key: fmt.Sprintf("co%d", i), Version: 1, Properties: []byte(`{"plan":"` + plan + `"}`)})
			}
			b.PutGroup(&store.Group{Team: team.GetId(), TypeIndex: 1, Key: "proj", Version: 1, Properties: []byte(`{"plan":"free"}`)})
			if err := e.store.Apply(context.Background(), &b); err != nil {
				t.Fatal(err)
			}
			f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: "g", Active: true,
				Filters: js(`{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"value":"enterprise"}],"rollout_percentage":100}]}`)}})
			if err != nil {
				t.Fatal(err)
			}
			job := func(filters string) *adminv1.BlastRadiusJob {
				t.Helper()
				resp, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(), FlagId: f.GetFlag().GetId(), SampleSize: 2,
					Flag: &adminv1.FlagInput{Key: "g", Active: true, Filters: js(filters)}})
				if err != nil {
					t.Fatal(err)
				}
				if page > 0 {
					return waitJob(t, e, team.GetId(), resp.GetJob().GetId())
				}
				return resp.GetJob()
			}
			// Every company instead of the enterprise ones: the six free
			// companies change; persons (no group in a person's row) none.
			j := job(`{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":100}]}`)
			if j.GetState() != adminv1.JobState_JOB_STATE_DONE || j.GetGroupsEvaluated() != 10 || j.GetGroupsChanged() != 6 ||
				j.GetGroupTransitions()["false->true"] != 6 || len(j.GetGroupTransitions()) != 1 || len(j.GetGroupSample()) != 2 ||
				j.GetGroupSample()[0] != "0:co4" || j.GetRowsDone() != 4 || j.GetChanged() != 0 {
				t.Fatalf("every company: %v", j)
			}
			// Off: the four enterprise companies change.
			j = job(`{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":0}]}`)
			if j.GetGroupsEvaluated() != 10 || j.GetGroupsChanged() != 4 || j.GetGroupTransitions()["true->false"] != 4 {
				t.Fatalf("off: %v", j)
			}
			// A person flag in place of the group one: the groups lose it
			// (counted, since the old definition aggregated by groups), and
			// the persons gain it.
			j = job(`{"groups":[{"properties":[],"rollout_percentage":100}]}`)
			if j.GetGroupsChanged() != 4 || j.GetChanged() != 4 || j.GetTransitions()["false->true"] != 4 {
				t.Fatalf("to persons: %v", j)
			}
			// A new person-only flag counts no group.
			resp, err := e.client.StartBlastRadius(ctx, &adminv1.StartBlastRadiusRequest{TeamId: team.GetId(),
				Flag: &adminv1.FlagInput{Key: "p", Active: true, Filters: js(`{"groups":[{"properties":[],"rollout_percentage":100}]}`)}})
			if err != nil {
				t.Fatal(err)
			}
			if page > 0 {
				resp.Job = waitJob(t, e, team.GetId(), resp.GetJob().GetId())
			}
			if resp.GetJob().GetGroupsEvaluated() != 0 || resp.GetJob().GetChanged() != 4 {
				t.Fatalf("person flag: %v", resp.GetJob())
			}
		})
	}
}
