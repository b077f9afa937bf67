package catalogtest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

func testEarlyAccess(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "early")
	ch := catalog.Change{Actor: "pm"}
	f := createFlag(t, c, team.ID, "new-editor")

	e, err := c.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Key: "new-editor", Name: "New editor", Stage: catalog.StageBeta, DocumentationURL: "https://docs.example.com/editor", FlagID: f.Flag.ID}, ch)
	must(t, "create feature", err)
	if len(e.ID) != 36 || e.Version != 1 || e.CreatedBy != "pm" || e.FlagID != f.Flag.ID {
		t.Fatalf("created feature = %+v", e)
	}
	got, err := c.GetEarlyAccess(ctx, team.ID, e.ID)
	must(t, "get feature", err)
	sameJSON(t, "get feature", got, e)

	upd := e
	upd.Stage = catalog.StageGA
	e2, err := c.UpdateEarlyAccess(ctx, upd, ch)
	must(t, "update feature", err)
	if e2.Version != 2 || e2.Stage != catalog.StageGA {
		t.Fatalf("updated feature = %+v", e2)
	}
	_, err = c.UpdateEarlyAccess(ctx, upd, ch)
	wantErr(t, "stale feature update", err, catalog.ErrConflict)
	bad := e2
	bad.Stage = "gamma"
	_, err = c.UpdateEarlyAccess(ctx, bad, ch)
	wantErr(t, "unknown stage", err, catalog.ErrInvalid)
	_, err = c.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Name: "x"}, ch)
	wantErr(t, "no stage", err, catalog.ErrInvalid)
	_, err = c.GetEarlyAccess(ctx, team.ID, "00000000-0000-4000-8000-000000000000")
	wantErr(t, "missing feature", err, catalog.ErrNotFound)

	e3, err := c.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Name: "Second", Stage: catalog.StageConcept}, ch)
	must(t, "create second feature", err)
	list, err := c.ListEarlyAccess(ctx, team.ID)
	must(t, "list features", err)
	if len(list) != 2 || list[0].ID != e.ID || list[0].Version != 2 || list[1].ID != e3.ID {
		t.Fatalf("ListEarlyAccess = %+v, want by creation time", list)
	}
}

func testActivity(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "activity")
	f := createFlag(t, c, team.ID, "logged")
	u := f
	u.Flag.Active = false
	diff := json.RawMessage(`{"active":{"before":true,"after":false}}`)
	f2, err := c.UpdateFlag(ctx, u, catalog.Change{Actor: "k-editor", Diff: diff})
	must(t, "update", err)
	_, err = c.UpdateFlag(ctx, u, catalog.Change{Actor: "k-late"}) // lost update: no entry
	wantErr(t, "stale update", err, catalog.ErrConflict)
	d := f2
	d.Flag.Deleted = true
	_, err = c.UpdateFlag(ctx, d, catalog.Change{Actor: "k-editor", Action: "soft_deleted"})
	must(t, "delete", err)
	co, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: dynamicCohort(team.ID, "c")}, catalog.Change{Actor: "k-cohort"})
	must(t, "create cohort", err)

	all, next, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID})
	must(t, "team activity", err)
	if next != "" {
		t.Fatalf("next cursor = %q on a short list", next)
	}
	type row struct {
		Scope        catalog.Scope
		Item, Action string
		Actor        string
	}
	var rows []row
	for _, e := range all {
		rows = append(rows, row{e.Scope, e.ItemID, e.Action, e.Actor})
		if e.TeamID != team.ID || e.At.IsZero() || len(e.ID) == 0 {
			t.Fatalf("entry = %+v", e)
		}
	}
	fid, tid := itemID(f.Flag.ID), itemID(team.ID)
	want := []row{
		{catalog.ScopeCohort, itemID(co.Cohort.ID), "created", "k-cohort"},
		{catalog.ScopeFlag, fid, "soft_deleted", "k-editor"},
		{catalog.ScopeFlag, fid, "updated", "k-editor"},
		{catalog.ScopeFlag, fid, "created", "creator"},
		{catalog.ScopeTeam, tid, "created", "test"},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("team activity =\n%+v\nwant\n%+v", rows, want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID || all[i].At.After(all[i-1].At) {
			t.Fatalf("entries %d and %d are not newest first: %s, %s", i-1, i, all[i-1].ID, all[i].ID)
		}
	}

	item, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: fid})
	must(t, "flag activity", err)
	if len(item) != 3 || item[0].ID != all[1].ID || item[2].ID != all[3].ID {
		t.Fatalf("flag activity = %+v", item)
	}
	// Before and After are the records; Diff is the caller's.
	created, updated := item[2], item[1]
	if created.Before != nil {
		t.Fatalf("create entry Before = %s, want none", created.Before)
	}
	var after, before catalog.FlagRecord
	must(t, "decode after", json.Unmarshal(created.After, &after))
	sameJSON(t, "create entry After", after, f)
	must(t, "decode before", json.Unmarshal(updated.Before, &before))
	must(t, "decode after", json.Unmarshal(updated.After, &after))
	sameJSON(t, "update entry Before", before, f)
	sameJSON(t, "update entry After", after, f2)
	sameJSON(t, "update entry Diff", updated.Diff, diff)

	none, next, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: "999999999"})
	must(t, "activity of an unknown item", err)
	if len(none) != 0 || next != "" {
		t.Fatalf("unknown item activity = %+v, %q", none, next)
	}
	for _, q := range []catalog.ActivityQuery{
		{TeamID: team.ID, Scope: catalog.ScopeFlag},
		{TeamID: team.ID, ItemID: fid},
		{TeamID: team.ID, Page: catalog.Page{Cursor: "zz"}},
		{TeamID: -1},
	} {
		_, _, err := c.ListActivity(ctx, q)
		wantErr(t, "bad query", err, catalog.ErrInvalid)
	}
	cur, err := c.GetFlag(ctx, team.ID, f.Flag.ID)
	must(t, "get", err)
	_, err = c.UpdateFlag(ctx, cur, catalog.Change{Actor: "x", Diff: json.RawMessage(`{not json`)})
	wantErr(t, "a diff that is not JSON", err, catalog.ErrInvalid)
}

func testActivityPaging(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "paging")
	f := createFlag(t, c, team.ID, "busy")
	for range 11 {
		f.Flag.Name += "!"
		var err error
		f, err = c.UpdateFlag(ctx, f, catalog.Change{Actor: "loop"})
		must(t, "update", err)
	}
	// 1 team entry + 1 create + 11 updates = 13 team entries; 12 for the flag.
	for _, tc := range []struct {
		name  string
		q     catalog.ActivityQuery
		limit int
		pages []int
	}{
		{"team by 5", catalog.ActivityQuery{TeamID: team.ID}, 5, []int{5, 5, 3}},
		{"team by 13", catalog.ActivityQuery{TeamID: team.ID}, 13, []int{13}},
		{"flag by 4", catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: itemID(f.Flag.ID)}, 4, []int{4, 4, 4}},
		{"flag by 1", catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: itemID(f.Flag.ID)}, 1, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	} {
		q := tc.q
		q.Limit = tc.limit
		full, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: q.TeamID, Scope: q.Scope, ItemID: q.ItemID})
		must(t, tc.name, err)
		var got []string
		var sizes []int
		for range 20 {
			page, next, err := c.ListActivity(ctx, q)
			must(t, tc.name, err)
			sizes = append(sizes, len(page))
			for _, e := range page {
				got = append(got, e.ID)
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
		var want []string
		for _, e := range full {
			want = append(want, e.ID)
		}
		if !slices.Equal(sizes, tc.pages) || !slices.Equal(got, want) {
			t.Fatalf("%s: page sizes %v (want %v), ids %v, want %v", tc.name, sizes, tc.pages, got, want)
		}
	}
}

func testJobs(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "jobs")
	j, err := c.CreateJob(ctx, catalog.BlastRadiusJob{TeamID: team.ID, Request: json.RawMessage(`{"key":"x"}`), Total: 1000, CreatedBy: "k1"})
	must(t, "create job", err)
	if j.ID == "" || j.Status != catalog.JobQueued || j.Version != 1 || j.CreatedAt.IsZero() {
		t.Fatalf("created job = %+v", j)
	}
	run := j
	run.Status, run.Done = catalog.JobRunning, 400
	run.Result = &catalog.BlastRadiusResult{Evaluated: 400, Matched: 120, ByVariant: map[string]int64{"a": 70, "b": 50}, Sample: []string{"u1", "u2"}}
	j2, err := c.UpdateJob(ctx, run)
	must(t, "progress", err)
	if j2.Version != 2 || j2.Done != 400 || j2.Result.ByVariant["b"] != 50 || j2.CreatedBy != "k1" {
		t.Fatalf("job after progress = %+v", j2)
	}
	cancel := j2
	cancel.CancelRequested = true
	j3, err := c.UpdateJob(ctx, cancel)
	must(t, "cancel", err)
	_, err = c.UpdateJob(ctx, run) // the worker's stale view
	wantErr(t, "stale job update", err, catalog.ErrConflict)
	got, err := c.GetJob(ctx, team.ID, j.ID)
	must(t, "get job", err)
	sameJSON(t, "get job", got, j3)
	if !got.CancelRequested {
		t.Fatal("cancel request lost")
	}
	_, err = c.GetJob(ctx, team.ID, "missing")
	wantErr(t, "missing job", err, catalog.ErrNotFound)
	_, err = c.CreateJob(ctx, catalog.BlastRadiusJob{TeamID: team.ID, ID: j.ID})
	wantErr(t, "duplicate job id", err, catalog.ErrExists)

	k, err := c.CreateJob(ctx, catalog.BlastRadiusJob{TeamID: team.ID})
	must(t, "second job", err)
	list, err := c.ListJobs(ctx, team.ID)
	must(t, "list jobs", err)
	if len(list) != 2 || list[0].ID != k.ID || list[1].ID != j.ID {
		t.Fatalf("ListJobs = %+v, want newest first", list)
	}
}

func testSnapshot(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	ch := catalog.Change{Actor: "x"}
	team, err := c.CreateTeam(ctx, catalog.Team{Name: "snap", Timezone: "America/New_York", GroupTypes: map[int]string{0: "company"}}, ch)
	must(t, "create team", err)
	live := createFlag(t, c, team.ID, "live")
	arch := createFlag(t, c, team.ID, "archived")
	arch.Archived = true
	arch.Flag.Active = false
	_, err = c.UpdateFlag(ctx, arch, ch)
	must(t, "archive", err)
	gone := createFlag(t, c, team.ID, "gone")
	gone.Flag.Deleted = true
	_, err = c.UpdateFlag(ctx, gone, ch)
	must(t, "delete", err)
	co, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: dynamicCohort(team.ID, "c")}, ch)
	must(t, "cohort", err)
	dc, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: dynamicCohort(team.ID, "dead")}, ch)
	must(t, "cohort", err)
	dc.Deleted = true
	_, err = c.UpdateCohort(ctx, dc, ch)
	must(t, "delete cohort", err)
	ea, err := c.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Name: "ea", Stage: catalog.StageAlpha, FlagID: live.Flag.ID}, ch)
	must(t, "early access", err)
	eaGone, err := c.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Name: "ea2", Stage: catalog.StageAlpha}, ch)
	must(t, "early access", err)
	eaGone.Deleted = true
	_, err = c.UpdateEarlyAccess(ctx, eaGone, ch)
	must(t, "delete early access", err)

	s, err := c.Snapshot(ctx, team.ID)
	must(t, "snapshot", err)
	var keys []string
	for _, f := range s.Definitions.Flags {
		keys = append(keys, f.Key)
	}
	if !slices.Equal(keys, []string{"live", "archived"}) {
		t.Fatalf("snapshot flags = %v", keys)
	}
	if s.Definitions.Flags[1].Version != 2 || s.Definitions.Flags[1].Active {
		t.Fatalf("archived flag in snapshot = %+v", s.Definitions.Flags[1])
	}
	if len(s.Definitions.Cohorts) != 1 || s.Definitions.Cohorts[0].ID != co.Cohort.ID {
		t.Fatalf("snapshot cohorts = %+v", s.Definitions.Cohorts)
	}
	if s.Definitions.Timezone != "America/New_York" || s.Definitions.PropertyMatchingVersion != 1 || s.Definitions.GroupTypes[0] != "company" || s.Team.ID != team.ID {
		t.Fatalf("snapshot team settings = %+v / %+v", s.Definitions, s.Team)
	}
	if len(s.EarlyAccess) != 1 || s.EarlyAccess[0].ID != ea.ID {
		t.Fatalf("snapshot early access = %+v", s.EarlyAccess)
	}
	set, err := flags.Compile(s.Definitions)
	var verrs flags.ValidationErrors
	if err != nil && !errors.As(err, &verrs) {
		t.Fatalf("compile snapshot: %v", err)
	}
	if set == nil || len(verrs) != 0 {
		t.Fatalf("compile snapshot: set %v, problems %v", set, verrs)
	}

	_, err = c.Snapshot(ctx, team.ID+1_000_000)
	wantErr(t, "snapshot of a missing team", err, catalog.ErrNotFound)
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("backend keeps nothing across a reopen (memcatalog)")
	}
	c := h.New(t)
	ctx := t.Context()
	team := newTeam(t, c, "durable")
	f := createFlag(t, c, team.ID, "durable")
	f.Flag.Name = "v2"
	f, err := c.UpdateFlag(ctx, f, catalog.Change{Actor: "a"})
	must(t, "update", err)
	_, hash := secret(t, "phx_")
	k, err := c.PutKey(ctx, catalog.APIKey{ID: randomID("key_"), Kind: catalog.KeyPersonal, Hash: hash, Teams: []int64{team.ID}}, catalog.Change{})
	must(t, "put key", err)
	co, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Kind: flags.CohortStatic}}, catalog.Change{})
	must(t, "cohort", err)
	must(t, "members", c.AddCohortMembers(ctx, team.ID, co.Cohort.ID, []string{"m1", "m2"}, catalog.Change{}))
	before, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID})
	must(t, "activity", err)

	c = h.Reopen(t, c)
	t.Cleanup(func() { _ = c.Close() })
	gotF, err := c.GetFlagByKey(ctx, team.ID, "durable")
	must(t, "flag after reopen", err)
	sameJSON(t, "flag after reopen", gotF, f)
	gotK, err := c.GetKeyByHash(ctx, hash)
	must(t, "key after reopen", err)
	sameJSON(t, "key after reopen", gotK, k)
	members, _, err := c.ListCohortMembers(ctx, team.ID, co.Cohort.ID, catalog.Page{})
	must(t, "members after reopen", err)
	if !slices.Equal(members, []string{"m1", "m2"}) {
		t.Fatalf("members after reopen = %v", members)
	}
	after, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID})
	must(t, "activity after reopen", err)
	sameJSON(t, "activity after reopen", after, before)

	// Sequences continue: no id is handed out twice.
	n := createFlag(t, c, team.ID, "after-reopen")
	if n.Flag.ID <= f.Flag.ID {
		t.Fatalf("flag id after reopen = %d, want above %d", n.Flag.ID, f.Flag.ID)
	}
	t2 := newTeam(t, c, "after-reopen")
	if t2.ID <= team.ID {
		t.Fatalf("team id after reopen = %d, want above %d", t2.ID, team.ID)
	}
	// New activity sorts before the old.
	after, _, err = c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID, Page: catalog.Page{Limit: 1}})
	must(t, "activity", err)
	if after[0].ItemID != itemID(n.Flag.ID) {
		t.Fatalf("newest entry after reopen = %+v", after[0])
	}
}

func testClosed(t *testing.T, h Harness) {
	c := h.New(t)
	ctx := t.Context()
	team := newTeam(t, c, "closed")
	must(t, "close", c.Close())
	_, err := c.GetTeam(ctx, team.ID)
	wantErr(t, "get after close", err, catalog.ErrClosed)
	_, err = c.CreateTeam(ctx, catalog.Team{Name: "late"}, catalog.Change{})
	wantErr(t, "create after close", err, catalog.ErrClosed)
}
