package catalogtest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

func dynamicCohort(team int64, name string) flags.Cohort {
	return flags.Cohort{
		TeamID: team,
		Name:   name,
		Kind:   flags.CohortDynamic,
		Filters: flags.PropertyGroup{Type: "OR", Values: []flags.PropertyNode{
			{Filter: &flags.PropertyFilter{Key: "plan", Type: "person", Operator: "exact", Value: []byte(`["pro"]`)}},
		}},
	}
}

func testCohorts(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "cohorts")
	ch := catalog.Change{Actor: "editor"}

	co, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: dynamicCohort(team.ID, "pros"), Description: "paying"}, ch)
	must(t, "create cohort", err)
	if co.Cohort.ID <= 0 || co.Cohort.Version != 1 || co.Cohort.TeamID != team.ID || co.Description != "paying" || co.CreatedBy != "editor" {
		t.Fatalf("created cohort = %+v", co)
	}
	got, err := c.GetCohort(ctx, team.ID, co.Cohort.ID)
	must(t, "get cohort", err)
	sameJSON(t, "get cohort", got, co)
	if got.Cohort.Filters.Values[0].Filter == nil || got.Cohort.Filters.Values[0].Filter.Key != "plan" {
		t.Fatalf("cohort filters = %+v", got.Cohort.Filters)
	}

	upd := co
	upd.Cohort.Name = "pro users"
	co2, err := c.UpdateCohort(ctx, upd, ch)
	must(t, "update cohort", err)
	if co2.Cohort.Version != 2 || co2.Cohort.Name != "pro users" || !co2.CreatedAt.Equal(co.CreatedAt) {
		t.Fatalf("updated cohort = %+v", co2)
	}
	_, err = c.UpdateCohort(ctx, upd, ch)
	wantErr(t, "stale cohort update", err, catalog.ErrConflict)
	_, err = c.GetCohort(ctx, team.ID, co.Cohort.ID+1_000_000)
	wantErr(t, "missing cohort", err, catalog.ErrNotFound)
	_, err = c.CreateCohort(ctx, catalog.CohortRecord{Cohort: dynamicCohort(team.ID+1_000_000, "x")}, ch)
	wantErr(t, "cohort of a missing team", err, catalog.ErrNotFound)

	st, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Name: "beta testers", Kind: flags.CohortStatic}}, ch)
	must(t, "create static cohort", err)
	del := co2
	del.Deleted = true
	co3, err := c.UpdateCohort(ctx, del, ch)
	must(t, "delete cohort", err)
	if !co3.Deleted || co3.Cohort.Version != 3 {
		t.Fatalf("deleted cohort = %+v", co3)
	}
	list, err := c.ListCohorts(ctx, team.ID)
	must(t, "list cohorts", err)
	if len(list) != 2 || list[0].Cohort.ID != co.Cohort.ID || !list[0].Deleted || list[1].Cohort.ID != st.Cohort.ID {
		t.Fatalf("ListCohorts = %+v", list)
	}
}

func testCohortMembers(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "members")
	ch := catalog.Change{Actor: "importer"}
	st, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Name: "static", Kind: flags.CohortStatic}}, ch)
	must(t, "create static cohort", err)
	id := st.Cohort.ID

	var all []string
	for i := range 25 {
		all = append(all, fmt.Sprintf("user-%02d", i))
	}
	// Added in two calls, out of order and with a duplicate.
	must(t, "add members", c.AddCohortMembers(ctx, team.ID, id, append(slices.Clone(all[10:]), "user-12"), ch))
	must(t, "add members", c.AddCohortMembers(ctx, team.ID, id, slices.Clone(all[:10]), ch))
	must(t, "remove members", c.RemoveCohortMembers(ctx, team.ID, id, []string{"user-03", "user-04", "nobody"}, ch))
	want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "user-03" || s == "user-04" })

	for _, tc := range []struct {
		limit int
		pages []int
	}{
		{limit: 10, pages: []int{10, 10, 3}},
		{limit: 23, pages: []int{23}},
		{limit: 0, pages: []int{23}},
		{limit: 7, pages: []int{7, 7, 7, 2}},
	} {
		var got []string
		var sizes []int
		cursor := ""
		for range 10 {
			page, next, err := c.ListCohortMembers(ctx, team.ID, id, catalog.Page{Limit: tc.limit, Cursor: cursor})
			must(t, "list members", err)
			got = append(got, page...)
			sizes = append(sizes, len(page))
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: members = %v, want %v", tc.limit, got, want)
		}
		if !slices.Equal(sizes, tc.pages) {
			t.Fatalf("limit %d: page sizes %v, want %v", tc.limit, sizes, tc.pages)
		}
	}

	for _, tc := range []struct {
		id   string
		want bool
	}{{"user-00", true}, {"user-03", false}, {"user-24", true}, {"nobody", false}} {
		got, err := c.IsCohortMember(ctx, team.ID, id, tc.id)
		must(t, "is member", err)
		if got != tc.want {
			t.Fatalf("IsCohortMember(%s) = %v, want %v", tc.id, got, tc.want)
		}
	}

	wantErr(t, "add to a missing cohort", c.AddCohortMembers(ctx, team.ID, id+1_000_000, []string{"x"}, ch), catalog.ErrNotFound)
	wantErr(t, "add an empty id", c.AddCohortMembers(ctx, team.ID, id, []string{""}, ch), catalog.ErrInvalid)
	_, _, err = c.ListCohortMembers(ctx, team.ID, id, catalog.Page{Cursor: "!!not base64"})
	wantErr(t, "bad cursor", err, catalog.ErrInvalid)

	acts, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeCohort, ItemID: itemID(id)})
	must(t, "cohort activity", err)
	var actions []string
	for _, a := range acts {
		actions = append(actions, a.Action)
	}
	if !slices.Equal(actions, []string{"members_removed", "members_added", "members_added", "created"}) {
		t.Fatalf("cohort actions = %v", actions)
	}
	sameJSON(t, "removal diff", acts[0].Diff, map[string][]string{"distinct_ids": {"nobody", "user-03", "user-04"}})
}
