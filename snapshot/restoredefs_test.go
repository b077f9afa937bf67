package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/snapshot"
)

// TestRestoreDefinitions: a team's settings, flags (one at version 3,
// referencing a cohort by id), cohorts (a static one with 2,500 members:
// three parts of the cohort_members table, three catalog pages), early
// access feature and project token come back with their ids and versions;
// a catalog holding a team is refused unless replace, which leaves the
// static cohort with exactly the snapshot's members; the id sequences move
// past the restored ids.
func TestRestoreDefinitions(t *testing.T) {
	ctx := context.Background()
	ch := catalog.Change{Actor: "test"}
	src := memcatalog.New(memcatalog.Config{})
	// A first team takes id 1 and flag ids, so the restored ids are not
	// what a fresh catalog would allocate.
	other, err := src.CreateTeam(ctx, catalog.Team{Name: "other"}, ch)
	if err != nil {
		t.Fatal(err)
	}
	team, err := src.CreateTeam(ctx, catalog.Team{Name: "one", Timezone: "Europe/Paris", GroupTypes: map[int]string{0: "company", 2: "project"}, PropertyMatchingVersion: 2}, ch)
	if err != nil {
		t.Fatal(err)
	}
	var pad flags.Flag
	pad.Key, pad.TeamID = "pad", other.ID
	if _, err := src.CreateFlag(ctx, catalog.FlagRecord{Flag: pad}, ch); err != nil {
		t.Fatal(err)
	}
	co, err := src.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Name: "pros",
		Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "plan", Type: "person", Operator: "exact", Value: json.RawMessage(`"pro"`)}}}}}}, ch)
	if err != nil {
		t.Fatal(err)
	}
	static, err := src.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Name: "beta testers", Kind: "static"}}, ch)
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for i := range 2500 {
		members = append(members, fmt.Sprintf("user-%05d", i))
	}
	for i := 0; i < len(members); i += 1000 {
		if err := src.AddCohortMembers(ctx, team.ID, static.Cohort.ID, members[i:min(i+1000, len(members))], ch); err != nil {
			t.Fatal(err)
		}
	}
	// A static cohort of the other team: not in a snapshot of this one.
	otherStatic, err := src.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: other.ID, Name: "others", Kind: "static"}}, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.AddCohortMembers(ctx, other.ID, otherStatic.Cohort.ID, []string{"someone"}, ch); err != nil {
		t.Fatal(err)
	}
	f, err := flags.ParseFlag([]byte(`{"key":"beta","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":` +
		strconv.FormatInt(co.Cohort.ID, 10) + `}],"rollout_percentage":100}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.TeamID = team.ID
	rec, err := src.CreateFlag(ctx, catalog.FlagRecord{Flag: f}, ch)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rec.Flag.Name += "!"
		if rec, err = src.UpdateFlag(ctx, rec, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.CreateEarlyAccess(ctx, catalog.EarlyAccessFeature{TeamID: team.ID, Name: "Beta", Stage: catalog.StageBeta, FlagID: rec.Flag.ID}, ch); err != nil {
		t.Fatal(err)
	}
	token := catalog.APIKey{ID: "key_token", Kind: catalog.KeyProjectToken, Prefix: "phc_restored", Hash: []byte("hash-of-phc_restored"), Teams: []int64{team.ID}}
	secure := catalog.APIKey{ID: "key_secure", Kind: catalog.KeySecure, Prefix: "phs_12345678", Hash: []byte("hash-of-phs"), Teams: []int64{team.ID}}
	for _, k := range []catalog.APIKey{token, secure} {
		if _, err := src.PutKey(ctx, k, ch); err != nil {
			t.Fatal(err)
		}
	}
	want, err := src.Snapshot(ctx, team.ID)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "snap")
	m, err := snapshot.Create(ctx, snapshot.Options{Store: seeded(t, 10), Catalog: src, Dir: dir, Team: team.ID, RowGroupRows: 500, PartRows: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if tb := m.Table(snapshot.TableCohortMembers); tb == nil || tb.Rows != 2500 || len(tb.Parts) != 3 {
		t.Fatalf("cohort_members table %+v, want 2500 rows in 3 parts", tb)
	}
	if _, err := snapshot.Verify(ctx, dir); err != nil {
		t.Fatal(err)
	}
	dst := memcatalog.New(memcatalog.Config{})
	rdst := dst.(snapshot.DefinitionsCatalog)
	n, err := snapshot.RestoreDefinitions(ctx, dir, m, rdst, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != (snapshot.DefinitionsRestored{Teams: 1, Flags: 1, Cohorts: 2, EarlyAccess: 1, Tokens: 1, CohortMembers: 2500}) {
		t.Fatalf("restored %+v", n)
	}
	got, err := dst.Snapshot(ctx, team.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Team.ID != team.ID || got.Team.Name != "one" || got.Team.Version != want.Team.Version || got.Team.Timezone != "Europe/Paris" ||
		!reflect.DeepEqual(got.Definitions.GroupTypes, want.Definitions.GroupTypes) || got.Definitions.PropertyMatchingVersion != 2 {
		t.Errorf("team %+v, want %+v", got.Team, want.Team)
	}
	if len(got.Definitions.Flags) != 1 || got.Definitions.Flags[0].ID != rec.Flag.ID || got.Definitions.Flags[0].Version != 3 ||
		got.Definitions.Flags[0].Name != rec.Flag.Name || !reflect.DeepEqual(got.Definitions.Flags[0].Filters, rec.Flag.Filters) {
		t.Errorf("flags %+v, want %+v at version 3", got.Definitions.Flags, rec.Flag)
	}
	if len(got.Definitions.Cohorts) != 2 || got.Definitions.Cohorts[0].ID != co.Cohort.ID || got.Definitions.Cohorts[0].Version != co.Cohort.Version ||
		got.Definitions.Cohorts[1].ID != static.Cohort.ID || got.Definitions.Cohorts[1].Kind != "static" {
		t.Errorf("cohorts %+v, want %+v and %+v", got.Definitions.Cohorts, co.Cohort, static.Cohort)
	}
	if got := allMembers(t, dst, team.ID, static.Cohort.ID); !reflect.DeepEqual(got, members) {
		t.Errorf("restored static cohort holds %d members (%.3q...), want the 2500", len(got), got[:min(3, len(got))])
	}
	if len(got.EarlyAccess) != 1 || got.EarlyAccess[0].ID != want.EarlyAccess[0].ID || got.EarlyAccess[0].FlagID != rec.Flag.ID {
		t.Errorf("early access %+v, want %+v", got.EarlyAccess, want.EarlyAccess)
	}
	if k, err := dst.GetKeyByHash(ctx, token.Hash); err != nil || k.Prefix != "phc_restored" || k.Kind != catalog.KeyProjectToken {
		t.Errorf("project token: %+v %v", k, err)
	}
	if _, err := dst.GetKey(ctx, secure.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("secure key restored: %v, want never exported", err)
	}
	// Both compile to the same set: the cohort reference resolves.
	if _, err := flags.Compile(got.Definitions); err != nil {
		t.Errorf("restored definitions do not compile: %v", err)
	}

	// A catalog holding a team is refused, unless replace.
	_, err = snapshot.RestoreDefinitions(ctx, dir, m, rdst, false)
	if e := errcode.From(err); e == nil || e.Code != errcode.FailedPrecondition {
		t.Errorf("into a non-empty catalog: %v, want FailedPrecondition", err)
	}
	// Replace: a member added to the target since, and one removed, come
	// back to the snapshot's list.
	if err := dst.AddCohortMembers(ctx, team.ID, static.Cohort.ID, []string{"added-later"}, ch); err != nil {
		t.Fatal(err)
	}
	if err := dst.RemoveCohortMembers(ctx, team.ID, static.Cohort.ID, []string{"user-00007"}, ch); err != nil {
		t.Fatal(err)
	}
	if n, err := snapshot.RestoreDefinitions(ctx, dir, m, rdst, true); err != nil || n.Teams != 1 || n.Tokens != 0 || n.CohortMembers != 2500 {
		t.Errorf("replace: %+v %v", n, err)
	}
	if got := allMembers(t, dst, team.ID, static.Cohort.ID); !reflect.DeepEqual(got, members) {
		t.Errorf("after replace the static cohort holds %d members, want exactly the snapshot's 2500", len(got))
	}
	// New ids come after the restored ones.
	var nf flags.Flag
	nf.Key, nf.TeamID = "new", team.ID
	created, err := dst.CreateFlag(ctx, catalog.FlagRecord{Flag: nf}, ch)
	if err != nil || created.Flag.ID <= rec.Flag.ID {
		t.Errorf("flag created after the restore: id %d (%v), want > %d", created.Flag.ID, err, rec.Flag.ID)
	}
	nt, err := dst.CreateTeam(ctx, catalog.Team{Name: "later"}, ch)
	if err != nil || nt.ID <= team.ID {
		t.Errorf("team created after the restore: id %d (%v), want > %d", nt.ID, err, team.ID)
	}
}

// allMembers pages through a cohort's members.
func allMembers(t *testing.T, cat catalog.Catalog, team, cohort int64) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		ids, next, err := cat.ListCohortMembers(context.Background(), team, cohort, catalog.Page{Limit: catalog.MaxPageLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids...)
		if next == "" || len(ids) == 0 {
			return out
		}
		cursor = next
	}
}
