// Package catalogtest is the contract suite every catalog.Catalog backend
// passes: compare-and-set on versions, unique flag keys under concurrent
// creates, key lookups by hash and revocation, paging of activity and cohort
// members, cluster-wide markers, and the content of team snapshots.
//
// The tests create their own teams and never assume an empty catalog, so a
// backend may share one database (a Cassandra keyspace) across them.
package catalogtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
)

// Harness opens catalogs for the suite.
type Harness struct {
	// New returns a catalog; the test closes it.
	New func(t *testing.T) catalog.Catalog
	// Peer, when set, returns a second handle on the data of c, as another
	// node would open it. The race tests then write through both.
	Peer func(t *testing.T, c catalog.Catalog) catalog.Catalog
	// Reopen, when set, closes c and opens its data again.
	Reopen func(t *testing.T, c catalog.Catalog) catalog.Catalog
}

// Run runs the contract suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Teams", testTeams},
		{"Keys", testKeys},
		{"Flags", testFlags},
		{"FlagKeyClaims", testFlagKeyClaims},
		{"ConcurrentCreates", testConcurrentCreates},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Cohorts", testCohorts},
		{"CohortMembers", testCohortMembers},
		{"EarlyAccess", testEarlyAccess},
		{"Activity", testActivity},
		{"ActivityPaging", testActivityPaging},
		{"Jobs", testJobs},
		{"Markers", testMarkers},
		{"ConcurrentMarkers", testConcurrentMarkers},
		{"Snapshot", testSnapshot},
		{"Reopen", testReopen},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Clock returns a clock for backends under test: it starts at start and
// every reading is one millisecond after the previous one, so timestamps
// and activity ids strictly increase without sleeping.
func Clock(start time.Time) func() time.Time {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
}

func open(t *testing.T, h Harness) catalog.Catalog {
	t.Helper()
	c := h.New(t)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newTeam(t *testing.T, c catalog.Catalog, name string) catalog.Team {
	t.Helper()
	team, err := c.CreateTeam(t.Context(), catalog.Team{Name: name}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatalf("CreateTeam(%q): %v", name, err)
	}
	return team
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameJSON fails unless got and want encode to the same JSON.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	must(t, what, err)
	w, err := json.Marshal(want)
	must(t, what, err)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}
