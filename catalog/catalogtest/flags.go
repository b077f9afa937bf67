package catalogtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

// sampleFlag is a multivariate flag with a property filter, a group
// aggregation condition and a payload.
func sampleFlag(t *testing.T, team int64, key string) flags.Flag {
	t.Helper()
	f, err := flags.ParseFlag(fmt.Appendf(nil, `{
		"key": %q, "name": "Sample", "active": true, "team_id": %d,
		"filters": {
			"groups": [
				{"properties": [{"key": "email", "type": "person", "operator": "icontains", "value": "@example.com"}], "rollout_percentage": 50},
				{"properties": [], "rollout_percentage": 10, "aggregation_group_type_index": 0}
			],
			"multivariate": {"variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 40}]},
			"payloads": {"a": "{\"color\": \"red\"}"}
		}
	}`, key, team))
	if err != nil {
		t.Fatalf("sample flag: %v", err)
	}
	return f
}

func createFlag(t *testing.T, c catalog.Catalog, team int64, key string) catalog.FlagRecord {
	t.Helper()
	r, err := c.CreateFlag(t.Context(), catalog.FlagRecord{Flag: sampleFlag(t, team, key)}, catalog.Change{Actor: "creator"})
	if err != nil {
		t.Fatalf("CreateFlag(%q): %v", key, err)
	}
	return r
}

func testFlags(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "flags")
	ch := catalog.Change{Actor: "editor"}

	f := createFlag(t, c, team.ID, "checkout")
	if f.Flag.ID <= 0 || f.Flag.Version != 1 || f.Flag.TeamID != team.ID || f.CreatedBy != "creator" || f.UpdatedBy != "creator" || !f.CreatedAt.Equal(f.UpdatedAt) || f.CreatedAt.IsZero() {
		t.Fatalf("created flag = %+v", f)
	}
	want := sampleFlag(t, team.ID, "checkout")
	want.ID, want.Version = f.Flag.ID, 1
	sameJSON(t, "created flag definition", f.Flag, want)
	if !f.Flag.Filters.Groups[1].Aggregation.Set || *f.Flag.Filters.Groups[1].Aggregation.Index != 0 {
		t.Fatalf("condition aggregation lost: %+v", f.Flag.Filters.Groups[1].Aggregation)
	}

	got, err := c.GetFlag(ctx, team.ID, f.Flag.ID)
	must(t, "get flag", err)
	sameJSON(t, "get flag", got, f)
	got, err = c.GetFlagByKey(ctx, team.ID, "checkout")
	must(t, "get flag by key", err)
	sameJSON(t, "get flag by key", got, f)

	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"missing id", second(c.GetFlag(ctx, team.ID, f.Flag.ID+1_000_000)), catalog.ErrNotFound},
		{"other team's id", second(c.GetFlag(ctx, team.ID+1_000_000, f.Flag.ID)), catalog.ErrNotFound},
		{"missing key", second(c.GetFlagByKey(ctx, team.ID, "nope")), catalog.ErrNotFound},
		{"duplicate key", second(c.CreateFlag(ctx, catalog.FlagRecord{Flag: sampleFlag(t, team.ID, "checkout")}, ch)), catalog.ErrExists},
		{"empty key", second(c.CreateFlag(ctx, catalog.FlagRecord{Flag: flags.Flag{TeamID: team.ID}}, ch)), catalog.ErrInvalid},
		{"no team", second(c.CreateFlag(ctx, catalog.FlagRecord{Flag: flags.Flag{Key: "x"}}, ch)), catalog.ErrInvalid},
		{"missing team", second(c.CreateFlag(ctx, catalog.FlagRecord{Flag: flags.Flag{Key: "x", TeamID: team.ID + 1_000_000}}, ch)), catalog.ErrNotFound},
	} {
		wantErr(t, tc.name, tc.err, tc.want)
	}

	// The same key in another team is fine.
	other := newTeam(t, c, "other")
	o := createFlag(t, c, other.ID, "checkout")
	if o.Flag.ID == f.Flag.ID {
		t.Fatalf("flag ids collide: %d", o.Flag.ID)
	}

	// Compare-and-set.
	upd := f
	upd.Flag.Active = false
	upd.Flag.Filters.Groups[0].RolloutPercentage = ptr(75.0)
	upd.Archived = true
	f2, err := c.UpdateFlag(ctx, upd, ch)
	must(t, "update flag", err)
	if f2.Flag.Version != 2 || f2.Flag.Active || !f2.Archived || *f2.Flag.Filters.Groups[0].RolloutPercentage != 75 ||
		f2.UpdatedBy != "editor" || f2.CreatedBy != "creator" || !f2.CreatedAt.Equal(f.CreatedAt) || !f2.UpdatedAt.After(f.UpdatedAt) {
		t.Fatalf("updated flag = %+v", f2)
	}
	_, err = c.UpdateFlag(ctx, upd, ch) // still version 1
	wantErr(t, "stale update", err, catalog.ErrConflict)
	future := f2
	future.Flag.Version = 5
	_, err = c.UpdateFlag(ctx, future, ch)
	wantErr(t, "update with a version from the future", err, catalog.ErrConflict)
	missing := f2
	missing.Flag.ID += 1_000_000
	_, err = c.UpdateFlag(ctx, missing, ch)
	wantErr(t, "update a missing flag", err, catalog.ErrNotFound)
	got, err = c.GetFlag(ctx, team.ID, f.Flag.ID)
	must(t, "get after update", err)
	sameJSON(t, "flag after update", got, f2)

	// Immutable fields are kept whatever the caller sends.
	moved := f2
	moved.CreatedBy = "forger"
	moved.Flag.TeamID = team.ID
	f3, err := c.UpdateFlag(ctx, moved, ch)
	must(t, "update with a forged creator", err)
	if f3.CreatedBy != "creator" || f3.Flag.Version != 3 {
		t.Fatalf("flag after forged update = %+v", f3)
	}

	list, err := c.ListFlags(ctx, team.ID)
	must(t, "list flags", err)
	if len(list) != 1 || list[0].Flag.ID != f.Flag.ID || list[0].Flag.Version != 3 {
		t.Fatalf("ListFlags = %+v", list)
	}
}

func second[T any](_ T, err error) error { return err }

func ptr[T any](v T) *T { return &v }

func testFlagKeyClaims(t *testing.T, h Harness) {
	c := open(t, h)
	ctx := t.Context()
	team := newTeam(t, c, "claims")
	ch := catalog.Change{Actor: "editor"}

	a := createFlag(t, c, team.ID, "a")
	b := createFlag(t, c, team.ID, "b")

	// Renaming to a taken key fails and changes nothing.
	r := a
	r.Flag.Key = "b"
	_, err := c.UpdateFlag(ctx, r, ch)
	wantErr(t, "rename to a taken key", err, catalog.ErrExists)
	got, err := c.GetFlag(ctx, team.ID, a.Flag.ID)
	must(t, "get a", err)
	if got.Flag.Key != "a" || got.Flag.Version != 1 {
		t.Fatalf("flag after refused rename = %+v", got.Flag)
	}

	// Renaming frees the old key and takes the new one.
	r.Flag.Key = "a2"
	a2, err := c.UpdateFlag(ctx, r, ch)
	must(t, "rename a → a2", err)
	_, err = c.GetFlagByKey(ctx, team.ID, "a")
	wantErr(t, "old key after rename", err, catalog.ErrNotFound)
	byKey, err := c.GetFlagByKey(ctx, team.ID, "a2")
	must(t, "new key after rename", err)
	if byKey.Flag.ID != a.Flag.ID {
		t.Fatalf("a2 is flag %d, want %d", byKey.Flag.ID, a.Flag.ID)
	}
	reuse := createFlag(t, c, team.ID, "a")
	if reuse.Flag.ID == a.Flag.ID {
		t.Fatal("reused key got the old id")
	}

	// Deleting frees the key; the deleted flag is still listed and read by id.
	del := b
	del.Flag.Deleted = true
	b2, err := c.UpdateFlag(ctx, del, ch)
	must(t, "delete b", err)
	if !b2.Flag.Deleted || b2.Flag.Version != 2 {
		t.Fatalf("deleted flag = %+v", b2.Flag)
	}
	_, err = c.GetFlagByKey(ctx, team.ID, "b")
	wantErr(t, "key of a deleted flag", err, catalog.ErrNotFound)
	nb := createFlag(t, c, team.ID, "b")
	byKey, err = c.GetFlagByKey(ctx, team.ID, "b")
	must(t, "get recreated b", err)
	if byKey.Flag.ID != nb.Flag.ID {
		t.Fatalf("b is flag %d, want the new %d", byKey.Flag.ID, nb.Flag.ID)
	}

	// Restoring the deleted flag needs its key back: taken now.
	restore := b2
	restore.Flag.Deleted = false
	_, err = c.UpdateFlag(ctx, restore, ch)
	wantErr(t, "restore onto a taken key", err, catalog.ErrExists)
	restore.Flag.Key = "b-old"
	b3, err := c.UpdateFlag(ctx, restore, ch)
	must(t, "restore under a new key", err)
	if b3.Flag.Deleted || b3.Flag.Key != "b-old" || b3.Flag.Version != 3 {
		t.Fatalf("restored flag = %+v", b3.Flag)
	}

	// Updating a deleted flag without restoring it claims nothing.
	del2 := nb
	del2.Flag.Deleted = true
	nb2, err := c.UpdateFlag(ctx, del2, ch)
	must(t, "delete new b", err)
	nb2.Flag.Name = "renamed while deleted"
	nb2.Flag.Key = "a2" // taken by a live flag, but a deleted flag claims nothing
	_, err = c.UpdateFlag(ctx, nb2, ch)
	must(t, "edit a deleted flag", err)

	list, err := c.ListFlags(ctx, team.ID)
	must(t, "list flags", err)
	var keys []string
	for _, f := range list {
		keys = append(keys, fmt.Sprintf("%s/%v", f.Flag.Key, f.Flag.Deleted))
	}
	want := []string{"a2/false", "b-old/false", "a/false", "a2/true"}
	if !slices.Equal(keys, want) {
		t.Fatalf("flags by id = %v, want %v", keys, want)
	}
	_ = a2
}

// peers returns n handles for concurrent writers: Peer handles when the
// backend has them (other nodes), else c itself.
func peers(t *testing.T, h Harness, c catalog.Catalog, n int) []catalog.Catalog {
	out := make([]catalog.Catalog, n)
	for i := range out {
		out[i] = c
		if h.Peer != nil && i%2 == 1 {
			p := h.Peer(t, c)
			t.Cleanup(func() { _ = p.Close() })
			out[i] = p
		}
	}
	return out
}

func testConcurrentCreates(t *testing.T, h Harness) {
	c := open(t, h)
	team := newTeam(t, c, "race-create")
	const n = 8
	nodes := peers(t, h, c, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = nodes[i].CreateFlag(t.Context(), catalog.FlagRecord{Flag: sampleFlag(t, team.ID, "contested")}, catalog.Change{Actor: fmt.Sprint("writer", i)})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, catalog.ErrExists):
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent creates of one key succeeded, want exactly 1 (errors %v)", won, errs)
	}
	list, err := c.ListFlags(t.Context(), team.ID)
	must(t, "list flags", err)
	live := 0
	for _, f := range list {
		if f.Flag.Key == "contested" && !f.Flag.Deleted {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d live flags with the contested key, want 1", live)
	}
	acts, _, err := c.ListActivity(t.Context(), catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: itemID(list[0].Flag.ID)})
	must(t, "activity of the winner", err)
	if len(acts) != 1 || acts[0].Action != "created" {
		t.Fatalf("winner's activity = %+v, want one created entry", acts)
	}
}

func testConcurrentUpdates(t *testing.T, h Harness) {
	c := open(t, h)
	team := newTeam(t, c, "race-update")
	f := createFlag(t, c, team.ID, "raced")
	const n = 8
	nodes := peers(t, h, c, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			u := f
			u.Flag.Name = fmt.Sprint("writer ", i)
			_, errs[i] = nodes[i].UpdateFlag(t.Context(), u, catalog.Change{Actor: fmt.Sprint("writer", i)})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won the compare-and-set", winner, i)
			}
			winner = i
		case errors.Is(err, catalog.ErrConflict):
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	got, err := c.GetFlag(t.Context(), team.ID, f.Flag.ID)
	must(t, "get raced flag", err)
	if got.Flag.Version != 2 || got.Flag.Name != fmt.Sprint("writer ", winner) || got.UpdatedBy != fmt.Sprint("writer", winner) {
		t.Fatalf("raced flag = version %d name %q by %q, want version 2 by writer %d", got.Flag.Version, got.Flag.Name, got.UpdatedBy, winner)
	}
	acts, _, err := c.ListActivity(t.Context(), catalog.ActivityQuery{TeamID: team.ID, Scope: catalog.ScopeFlag, ItemID: itemID(f.Flag.ID)})
	must(t, "activity", err)
	if len(acts) != 2 || acts[0].Action != "updated" || acts[0].Actor != fmt.Sprint("writer", winner) {
		t.Fatalf("activity after the race = %+v, want the winner's update then the create", acts)
	}
}

func itemID(id int64) string { return fmt.Sprint(id) }
