package pebblecatalog_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
	"github.com/vexil-dev/vexil/flags"
)

func openBench(b *testing.B) catalog.Catalog {
	c, err := pebblecatalog.Open(pebblecatalog.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// BenchmarkGetKeyByHash is the authentication read of every API call.
func BenchmarkGetKeyByHash(b *testing.B) {
	c := openBench(b)
	ctx := context.Background()
	team, err := c.CreateTeam(ctx, catalog.Team{Name: "bench"}, catalog.Change{})
	if err != nil {
		b.Fatal(err)
	}
	var hashes [][]byte
	for i := range 1000 {
		h := sha256.Sum256(fmt.Appendf(nil, "phc_secret_%d", i))
		hashes = append(hashes, h[:])
		if _, err := c.PutKey(ctx, catalog.APIKey{ID: fmt.Sprint("key", i), Kind: catalog.KeyProjectToken, Hash: h[:], Teams: []int64{team.ID}}, catalog.Change{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.GetKeyByHash(ctx, hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSnapshot reads a team of 200 flags and 20 cohorts, what an
// evaluation node reads on every change notice.
func BenchmarkSnapshot(b *testing.B) {
	c := openBench(b)
	ctx := context.Background()
	team, err := c.CreateTeam(ctx, catalog.Team{Name: "bench"}, catalog.Change{})
	if err != nil {
		b.Fatal(err)
	}
	rollout := 50.0
	for i := range 200 {
		f := flags.Flag{TeamID: team.ID, Key: fmt.Sprint("flag-", i), Active: true, Filters: flags.Filters{Groups: []flags.Condition{{
			Properties:        []flags.PropertyFilter{{Key: "email", Type: "person", Operator: "icontains", Value: []byte(`"@example.com"`)}},
			RolloutPercentage: &rollout,
		}}}}
		if _, err := c.CreateFlag(ctx, catalog.FlagRecord{Flag: f}, catalog.Change{}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20 {
		co := flags.Cohort{TeamID: team.ID, Name: fmt.Sprint("c", i), Filters: flags.PropertyGroup{Type: "AND"}}
		if _, err := c.CreateCohort(ctx, catalog.CohortRecord{Cohort: co}, catalog.Change{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Snapshot(ctx, team.ID)
		if err != nil || len(s.Definitions.Flags) != 200 {
			b.Fatal(err, len(s.Definitions.Flags))
		}
	}
}
