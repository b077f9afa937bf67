package memcatalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/catalogtest"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/flags"
)

func TestContract(t *testing.T) {
	catalogtest.Run(t, catalogtest.Harness{
		New: func(t *testing.T) catalog.Catalog {
			return memcatalog.New(memcatalog.Config{Now: catalogtest.Clock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))})
		},
	})
}

// FuzzCursors feeds arbitrary cursors and limits, which come from API
// clients, to the paged lists: each call returns a page or ErrInvalid,
// and an activity page holds only entries older than a valid cursor.
func FuzzCursors(f *testing.F) {
	ctx := context.Background()
	c := memcatalog.New(memcatalog.Config{Now: catalogtest.Clock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))})
	team, err := c.CreateTeam(ctx, catalog.Team{Name: "fuzz"}, catalog.Change{})
	if err != nil {
		f.Fatal(err)
	}
	co, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: flags.Cohort{TeamID: team.ID, Kind: flags.CohortStatic}}, catalog.Change{})
	if err != nil {
		f.Fatal(err)
	}
	if err := c.AddCohortMembers(ctx, team.ID, co.Cohort.ID, []string{"a", "b", "c\xff", "d"}, catalog.Change{}); err != nil {
		f.Fatal(err)
	}
	acts, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("", 0)
	f.Add(acts[0].ID, 1)
	f.Add("YQ", 2)
	f.Add("!!", -1)
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		page, _, err := c.ListActivity(ctx, catalog.ActivityQuery{TeamID: team.ID, Page: catalog.Page{Cursor: cursor, Limit: limit}})
		if err != nil && !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("ListActivity(%q): %v", cursor, err)
		}
		for _, e := range page {
			if cursor != "" && e.ID >= cursor {
				t.Fatalf("entry %s not older than cursor %s", e.ID, cursor)
			}
		}
		members, _, err := c.ListCohortMembers(ctx, team.ID, co.Cohort.ID, catalog.Page{Cursor: cursor, Limit: limit})
		if err != nil && !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("ListCohortMembers(%q): %v", cursor, err)
		}
		if len(members) > 4 {
			t.Fatalf("members %v", members)
		}
	})
}
