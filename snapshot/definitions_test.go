package snapshot_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/snapshot"
)

// TestDefinitions: the catalog's flags, cohorts and team settings go into
// the definitions table with their versions, and what-if evaluates the
// snapshot's own flag by key.
func TestDefinitions(t *testing.T) {
	ctx := context.Background()
	cat := memcatalog.New(memcatalog.Config{})
	team, err := cat.CreateTeam(ctx, catalog.Team{Name: "one", GroupTypes: map[int]string{0: "company"}}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := flags.ParseFlag([]byte(`{"key":"beta","active":true,"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"lt","value":10}],"rollout_percentage":100}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.TeamID = team.ID
	rec, err := cat.CreateFlag(ctx, catalog.FlagRecord{Flag: f}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	src := seeded(t, 100)
	dir := filepath.Join(t.TempDir(), "snap")
	m, err := snapshot.Create(ctx, snapshot.Options{Store: src, Catalog: cat, Dir: dir, Team: team.ID})
	if err != nil {
		t.Fatal(err)
	}
	if tb := m.Table(snapshot.TableDefinitions); tb == nil || tb.Rows != 2 {
		t.Fatalf("definitions table %+v, want 2 records (the team, the flag)", tb)
	}
	d, err := snapshot.Definitions(ctx, dir, m, team.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Flags) != 1 || d.Flags[0].Key != "beta" || d.Flags[0].Version != rec.Flag.Version || d.GroupTypes[0] != "company" {
		t.Fatalf("definitions %+v", d)
	}
	var out bytes.Buffer
	n, err := snapshot.WhatIf(ctx, dir, snapshot.WhatIfOptions{Definitions: d, Keys: []string{"beta"}, Team: team.ID, Now: time.Unix(1_800_000_000, 0)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 50 { // team 1 holds the even persons of seeded's 100
		t.Fatalf("what-if wrote %d results, want 50", n)
	}
}
