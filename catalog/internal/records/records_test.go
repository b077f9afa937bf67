package records

import (
	"errors"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

func TestClaimChange(t *testing.T) {
	rec := func(key string, deleted bool) catalog.FlagRecord {
		return catalog.FlagRecord{Flag: flags.Flag{Key: key, Deleted: deleted}}
	}
	type move struct {
		oldKey  string
		release bool
		newKey  string
		take    bool
	}
	for _, tc := range []struct {
		name     string
		old, new catalog.FlagRecord
		want     move
	}{
		{"unchanged", rec("a", false), rec("a", false), move{}},
		{"deleted stays deleted", rec("a", true), rec("b", true), move{}},
		{"rename", rec("a", false), rec("b", false), move{"a", true, "b", true}},
		{"delete", rec("a", false), rec("a", true), move{"a", true, "a", false}},
		{"restore", rec("a", true), rec("a", false), move{"a", false, "a", true}},
		{"restore renamed", rec("a", true), rec("b", false), move{"a", false, "b", true}},
	} {
		var got move
		got.oldKey, got.release, got.newKey, got.take = ClaimChange(tc.old, tc.new)
		if got.release != tc.want.release || got.take != tc.want.take ||
			(got.release && got.oldKey != tc.want.oldKey) || (got.take && got.newKey != tc.want.newKey) {
			t.Errorf("%s: ClaimChange = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    catalog.ActivityQuery
		ok   bool
	}{
		{"team", catalog.ActivityQuery{TeamID: 1}, true},
		{"instance-wide", catalog.ActivityQuery{}, true},
		{"item", catalog.ActivityQuery{TeamID: 1, Scope: catalog.ScopeFlag, ItemID: "3"}, true},
		{"cursor", catalog.ActivityQuery{TeamID: 1, Page: catalog.Page{Cursor: "0123456789abcdef01234567"}}, true},
		{"scope only", catalog.ActivityQuery{TeamID: 1, Scope: catalog.ScopeFlag}, false},
		{"item only", catalog.ActivityQuery{TeamID: 1, ItemID: "3"}, false},
		{"NUL in item", catalog.ActivityQuery{TeamID: 1, Scope: catalog.ScopeFlag, ItemID: "a\x00"}, false},
		{"upper-case cursor", catalog.ActivityQuery{TeamID: 1, Page: catalog.Page{Cursor: "0123456789ABCDEF01234567"}}, false},
		{"short cursor", catalog.ActivityQuery{TeamID: 1, Page: catalog.Page{Cursor: "0123"}}, false},
		{"negative team", catalog.ActivityQuery{TeamID: -1}, false},
	} {
		err := CheckQuery(tc.q)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, catalog.ErrInvalid)) {
			t.Errorf("%s: CheckQuery = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, catalog.DefaultPageLimit}, {-3, catalog.DefaultPageLimit}, {7, 7}, {5000, catalog.MaxPageLimit}} {
		if got := (catalog.Page{Limit: tc.in}).EffectiveLimit(); got != tc.want {
			t.Errorf("EffectiveLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestRandomID(t *testing.T) {
	a, b := RandomID(), RandomID()
	if len(a) != 36 || a[14] != '4' || a == b {
		t.Fatalf("RandomID = %q, %q", a, b)
	}
}
