package scyllacatalog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/catalogtest"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/schema"
	"github.com/vexil-dev/vexil/schema/schematest"
)

// keyspace applies the schema to a fresh keyspace of the test Cassandra
// (one per test function) and returns a session on it and its name.
func keyspace(t *testing.T) (*gocql.Session, string) {
	t.Helper()
	sess := schematest.Session(t)
	ks := schematest.Keyspace(t, sess)
	if _, err := schema.Apply(context.Background(), sess, schema.Config{Keyspace: ks}); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	return sess, ks
}

func open(t *testing.T, sess *gocql.Session, ks string, now func() time.Time) *scyllacatalog.Catalog {
	t.Helper()
	c, err := scyllacatalog.New(scyllacatalog.Config{Session: sess, Keyspace: ks, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContract runs the shared catalog suite on one keyspace; Peer and
// Reopen open new sessions, as another node (or a restarted one) would.
func TestContract(t *testing.T) {
	sess, ks := keyspace(t)
	clock := catalogtest.Clock(time.Now().UTC())
	catalogtest.Run(t, catalogtest.Harness{
		New: func(t *testing.T) catalog.Catalog { return open(t, sess, ks, clock) },
		Peer: func(t *testing.T, _ catalog.Catalog) catalog.Catalog {
			return open(t, schematest.Session(t), ks, clock)
		},
		Reopen: func(t *testing.T, c catalog.Catalog) catalog.Catalog {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, schematest.Session(t), ks, clock)
		},
	})
}

// TestTwoNodesRaceFlagUpdate has two sessions (two nodes) read the same
// flag version and update it at once, round after round: exactly one wins
// each round, the other gets ErrConflict, and the stored flag is the
// winner's.
func TestTwoNodesRaceFlagUpdate(t *testing.T) {
	sess, ks := keyspace(t)
	ctx := context.Background()
	nodes := []*scyllacatalog.Catalog{open(t, sess, ks, time.Now), open(t, schematest.Session(t), ks, time.Now)}
	team, err := nodes[0].CreateTeam(ctx, catalog.Team{Name: "race"}, catalog.Change{Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := nodes[0].CreateFlag(ctx, catalog.FlagRecord{Flag: flagOf(team.ID, "raced")}, catalog.Change{Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		// Both nodes read the same version.
		views := make([]catalog.FlagRecord, 2)
		for i, n := range nodes {
			if views[i], err = n.GetFlag(ctx, team.ID, f.Flag.ID); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				v := views[i]
				v.Flag.Name = fmt.Sprintf("round %d node %d", round, i)
				_, errs[i] = n.UpdateFlag(ctx, v, catalog.Change{Actor: fmt.Sprint("node", i)})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = i
			case err == nil:
				t.Fatalf("round %d: both nodes won", round)
			case !errors.Is(err, catalog.ErrConflict):
				t.Fatalf("round %d node %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		got, err := nodes[1-winner].GetFlag(ctx, team.ID, f.Flag.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("round %d node %d", round, winner); got.Flag.Name != want || got.Flag.Version != int64(round+2) {
			t.Fatalf("round %d: stored %q v%d, want %q v%d", round, got.Flag.Name, got.Flag.Version, want, round+2)
		}
	}
}

// TestStaleClaim checks the crash recovery of flag key claims: a claim that
// names a missing flag blocks the key while it is younger than ClaimGrace
// and is taken over after.
func TestStaleClaim(t *testing.T) {
	sess, ks := keyspace(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	c, err := scyllacatalog.New(scyllacatalog.Config{Session: sess, Keyspace: ks, Now: func() time.Time { return now }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	team, err := c.CreateTeam(ctx, catalog.Team{Name: "claims"}, catalog.Change{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if got := gathered(t, reg, "vexil_catalog_claim_takeovers_total"); got != 1 {
			t.Errorf("claim takeovers = %v, want 1", got)
		}
	}()
	for _, tc := range []struct {
		key  string
		age  time.Duration
		want error
	}{
		{"young-orphan", 10 * time.Second, catalog.ErrExists},
		{"old-orphan", 2 * time.Minute, nil},
	} {
		// What a writer that crashed after claiming leaves behind.
		err := sess.Query(fmt.Sprintf("INSERT INTO %s.catalog_flag_keys (team_id, key, flag_id, claimed_at) VALUES (?, ?, ?, ?)", ks),
			team.ID, tc.key, int64(987654321), now.Add(-tc.age)).Exec()
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.CreateFlag(ctx, catalog.FlagRecord{Flag: flagOf(team.ID, tc.key)}, catalog.Change{})
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("%s: CreateFlag = %v, want %v", tc.key, err, tc.want)
		}
		if tc.want == nil {
			got, err := c.GetFlagByKey(ctx, team.ID, tc.key)
			if err != nil || got.Flag.ID != f.Flag.ID {
				t.Fatalf("%s: GetFlagByKey = %v, %v; want flag %d", tc.key, got.Flag.ID, err, f.Flag.ID)
			}
		}
	}
}

// gathered sums the values of a registered counter.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func flagOf(team int64, key string) flags.Flag {
	return flags.Flag{TeamID: team, Key: key, Name: key, Active: true}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  scyllacatalog.Config
		ok   bool
	}{
		{"no session", scyllacatalog.Config{Keyspace: "vexil"}, false},
		{"bad keyspace", scyllacatalog.Config{Session: &gocql.Session{}, Keyspace: "Bad-Name"}, false},
		{"bad serial consistency", scyllacatalog.Config{Session: &gocql.Session{}, Keyspace: "vexil", SerialConsistency: gocql.Quorum}, false},
		{"negative grace", scyllacatalog.Config{Session: &gocql.Session{}, Keyspace: "vexil", ClaimGrace: -1}, false},
		{"minimal", scyllacatalog.Config{Session: &gocql.Session{}, Keyspace: "vexil"}, true},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, scyllacatalog.ErrInvalidConfig)) {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
