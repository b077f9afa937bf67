package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

func pct(v float64) *float64 { return &v }

func record(id int64, key string, active bool, groups []flags.Condition, created, updated time.Time) catalog.FlagRecord {
	return catalog.FlagRecord{Flag: flags.Flag{ID: id, TeamID: 1, Key: key, Active: active, Filters: flags.Filters{Groups: groups}},
		CreatedAt: created, UpdatedAt: updated}
}

var someone = []flags.PropertyFilter{{Key: "plan", Value: []byte(`"pro"`), Operator: "exact", Type: "person"}}

// TestStaleRule: each rule at and around its N-day edge, with an injected
// clock.
func TestStaleRule(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	old := now.Add(-100 * day)
	half := []flags.Condition{{RolloutPercentage: pct(50)}}
	full := []flags.Condition{{RolloutPercentage: nil}}
	targeted := []flags.Condition{{Properties: someone, RolloutPercentage: pct(100)}}
	zero := []flags.Condition{{RolloutPercentage: pct(0)}, {Properties: someone, RolloutPercentage: pct(0)}}
	mvHalf := record(9, "mv", true, full, old, old)
	mvHalf.Flag.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 50}, {Key: "b", RolloutPercentage: 50}}}
	mvOne := record(10, "mv1", true, full, old, old)
	mvOne.Flag.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 100}, {Key: "b", RolloutPercentage: 0}}}
	archived := record(11, "arch", true, half, old, old)
	archived.Archived = true
	for _, tc := range []struct {
		name   string
		rec    catalog.FlagRecord
		last   time.Time
		reason string
	}{
		{"evaluated yesterday, 50%", record(1, "a", true, half, old, old), now.Add(-day), ""},
		{"last evaluated 31 days ago", record(1, "a", true, half, old, old), now.Add(-31 * day), usage.ReasonNotEvaluated},
		{"last evaluated 29 days ago", record(1, "a", true, half, old, old), now.Add(-29 * day), ""},
		{"never evaluated, created 31 days ago", record(1, "a", true, half, now.Add(-31*day), now.Add(-31*day)), time.Time{}, usage.ReasonNotEvaluated},
		{"never evaluated, created 29 days ago", record(1, "a", true, half, now.Add(-29*day), now.Add(-29*day)), time.Time{}, ""},
		{"100% unchanged 31 days, evaluated now", record(2, "b", true, full, old, now.Add(-31*day)), now, usage.ReasonFullyRolledOut},
		{"100% changed 29 days ago", record(2, "b", true, full, old, now.Add(-29*day)), now, ""},
		{"100% of a cohort only", record(3, "c", true, targeted, old, old), now, ""},
		{"targeted then 100% of everyone", record(3, "c", true, append(targeted, full...), old, old), now, usage.ReasonFullyRolledOut},
		{"disabled 31 days", record(4, "d", false, half, old, now.Add(-31*day)), now, usage.ReasonRolledBack},
		{"every condition 0%", record(5, "e", true, zero, old, old), now, usage.ReasonRolledBack},
		{"100% but two variants", mvHalf, now, ""},
		{"100% and one variant at 100%", mvOne, now, usage.ReasonFullyRolledOut},
		{"archived", archived, time.Time{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := usage.StaleRule(tc.rec, tc.last, 30, now)
			switch {
			case tc.reason == "" && f != nil:
				t.Errorf("stale (%s): %s", f.Reason, f.Message)
			case tc.reason != "" && f == nil:
				t.Errorf("not stale, want %s", tc.reason)
			case f != nil && (f.Reason != tc.reason || f.Kind != usage.KindStale || f.Flag != tc.rec.Flag.Key || f.FlagID != tc.rec.Flag.ID):
				t.Errorf("finding %+v, want reason %s", f, tc.reason)
			}
		})
	}
}

// TestFindingsAndStatus: real rows, a team setting of N, an injected clock
// moved past N days: status goes ACTIVE → STALE, archived flags are
// ARCHIVED, and Findings returns the stale flag.
func TestFindingsAndStatus(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	created := t0.Add(-60 * 24 * time.Hour)
	half := []flags.Condition{{RolloutPercentage: pct(50)}}
	arch := record(3, "gone", true, half, created, created)
	arch.Archived = true
	l := lister{1: {record(1, "used", true, half, created, created), record(2, "unused", true, half, created, created), arch}}
	s := newService(t, st, c, l)
	ctx := context.Background()
	r := newRecorder(t, st, c, "n")
	r.Record(1, usage.EndpointFlags, "u1", false, []usage.Eval{{Flag: "unused", Value: "true"}})
	flush(t, r)
	if err := s.SetStaleAfterDays(ctx, 1, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStaleAfterDays(ctx, 1, 0); err == nil {
		t.Error("stale_after_days 0 accepted")
	}
	c.Add(6 * 24 * time.Hour)
	r.Record(1, usage.EndpointFlags, "u1", false, []usage.Eval{{Flag: "used", Value: "true"}})
	flush(t, r)
	states, err := s.FlagStates(ctx, 1, l[1], c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if states["used"].Status != usage.StatusActive || states["unused"].Status != usage.StatusActive || states["gone"].Status != usage.StatusArchived {
		t.Errorf("day 6: %+v", states)
	}
	c.Add(2 * 24 * time.Hour) // "unused" was last evaluated 8 days ago, "used" 2
	fs, err := s.Findings(ctx, 1, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Flag != "unused" || fs[0].Reason != usage.ReasonNotEvaluated || !fs[0].Since.Equal(t0) || fs[0].Details["stale_after_days"] != 7 {
		t.Fatalf("findings = %+v, want unused not evaluated since %v", fs, t0)
	}
	states, _ = s.FlagStates(ctx, 1, l[1], c.Now())
	if states["unused"].Status != usage.StatusStale || states["used"].Status != usage.StatusActive || states["used"].LastEvaluatedAt == nil {
		t.Errorf("day 8: %+v", states)
	}
}

// TestFindingID: the id is the same for the same finding seen twice (a
// new message or details change nothing) and differs when kind, team,
// flag, reason or start do.
func TestFindingID(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	base := usage.Finding{Kind: usage.KindStale, Team: 1, Flag: "old", Reason: usage.ReasonNotEvaluated, Since: since, Message: "a"}
	same := base
	same.Message, same.Details = "b", map[string]float64{"x": 1}
	if base.ID() != same.ID() || len(base.ID()) != 32 {
		t.Fatalf("ids %q %q", base.ID(), same.ID())
	}
	seen := map[string]bool{base.ID(): true}
	for _, f := range []func(*usage.Finding){
		func(f *usage.Finding) { f.Kind = usage.KindRateShift }, func(f *usage.Finding) { f.Team = 2 }, func(f *usage.Finding) { f.Flag = "older" },
		func(f *usage.Finding) { f.Reason = usage.ReasonRolledBack }, func(f *usage.Finding) { f.Since = since.Add(time.Second) },
	} {
		g := base
		f(&g)
		if seen[g.ID()] {
			t.Errorf("%+v has a seen id", g)
		}
		seen[g.ID()] = true
	}
}

// TestStaleCountsLocalEvaluations: the stale rule reads every endpoint's
// evaluations, the ones clients made in process and reported
// (EndpointLocal) included: a flag evaluated only locally stays ACTIVE, a
// flag nobody evaluated turns STALE, and polling the definitions (which
// says nothing of any one flag) keeps no flag active.
func TestStaleCountsLocalEvaluations(t *testing.T) {
	st := memstore.New()
	c := &clock{t: t0}
	created := t0.Add(-60 * 24 * time.Hour)
	half := []flags.Condition{{RolloutPercentage: pct(50)}}
	l := lister{1: {record(1, "local-only", true, half, created, created), record(2, "never", true, half, created, created)}}
	s := newService(t, st, c, l)
	ctx := context.Background()
	if err := s.SetStaleAfterDays(ctx, 1, 7); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, st, c, "n")
	for day := range 10 {
		r.Reported(1, "local-only", "true", 3)
		r.Poll(1)
		flush(t, r)
		if day < 9 {
			c.Add(24 * time.Hour)
		}
	}
	states, err := s.FlagStates(ctx, 1, l[1], c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st := states["local-only"]; st.Status != usage.StatusActive || st.LastEvaluatedAt == nil || !st.LastEvaluatedAt.Equal(c.Now()) {
		t.Errorf("local-only: %+v, want ACTIVE, last evaluated %v", st, c.Now())
	}
	if st := states["never"]; st.Status != usage.StatusStale || st.Stale == nil || st.Stale.Reason != usage.ReasonNotEvaluated || st.LastEvaluatedAt != nil {
		t.Errorf("never: %+v, want STALE (not_evaluated)", st)
	}
	fs, err := s.Findings(ctx, 1, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Flag != "never" || fs[0].Kind != usage.KindStale {
		t.Errorf("findings %+v, want only never's stale finding", fs)
	}
}
