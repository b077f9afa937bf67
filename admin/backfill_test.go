package admin

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// fakeBackfills holds states set by the test.
type fakeBackfills struct {
	mu     sync.Mutex
	states map[[2]int64]BackfillState
}

func (f *fakeBackfills) StartBackfill(_ context.Context, team, cohort int64) (BackfillState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := BackfillState{State: BackfillBackfilling, StartedAt: time.Unix(1_800_000_000, 0).UTC()}
	f.states[[2]int64{team, cohort}] = s
	return s, nil
}

func (f *fakeBackfills) Backfill(_ context.Context, team, cohort int64) (BackfillState, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[[2]int64{team, cohort}]
	return s, ok, nil
}

func (f *fakeBackfills) finish(team, cohort int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.states[[2]int64{team, cohort}]
	s.State, s.Progress, s.FinishedAt = "done", 1, s.StartedAt.Add(time.Minute)
	f.states[[2]int64{team, cohort}] = s
}

// TestCohortBackfillState: the backfill calls over REST, the cohort
// reporting "backfilling" until done, and explain naming the backfilling
// cohort a flag reads (through another cohort too).
func TestCohortBackfillState(t *testing.T) {
	fb := &fakeBackfills{states: map[[2]int64]BackfillState{}}
	e := newEnv(t, func(c *Config) { c.Backfills = fb })
	team := e.createTeam("acme").GetId()
	ctx := e.ctx(e.root)
	beh, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team, Cohort: &adminv1.CohortInput{Name: "buyers",
		Kind: adminv1.CohortKind_COHORT_KIND_BEHAVIORAL, Filters: js(`{"properties":{"type":"AND","values":[
			{"key":"checkout","type":"behavioral","value":"performed_event","time_value":1,"time_interval":"day"}]}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	id := beh.GetCohort().GetId()
	outer, err := e.client.CreateCohort(ctx, &adminv1.CreateCohortRequest{TeamId: team, Cohort: &adminv1.CohortInput{Name: "outer",
		Kind: adminv1.CohortKind_COHORT_KIND_PROPERTY, Filters: js(`{"properties":{"type":"AND","values":[
			{"key":"id","type":"cohort","value":` + strconv.FormatInt(id, 10) + `}]}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team, Flag: &adminv1.FlagInput{Key: "f", Active: true,
		Filters: js(`{"groups":[{"properties":[{"key":"id","type":"cohort","value":` + strconv.FormatInt(outer.GetCohort().GetId(), 10) + `}]}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/projects/" + strconv.FormatInt(team, 10) + "/cohorts/" + strconv.FormatInt(id, 10)
	var bf struct {
		State     string `json:"state"`
		StartedAt string `json:"started_at"`
	}
	if code := e.do("GET", path+"/backfill", e.root, nil, &bf); code != 404 {
		t.Fatalf("never backfilled: %d", code)
	}
	if code := e.do("POST", path+"/backfill", e.root, map[string]any{}, &bf); code != 200 || bf.State != "backfilling" || bf.StartedAt == "" {
		t.Fatalf("start: %d %+v", code, bf)
	}
	var co struct {
		Backfill struct {
			State string `json:"state"`
		} `json:"backfill"`
	}
	if code := e.do("GET", path, e.root, nil, &co); code != 200 || co.Backfill.State != "backfilling" {
		t.Fatalf("cohort while backfilling: %d %+v", code, co)
	}
	ex, err := e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team, FlagId: f.GetFlag().GetId(), DistinctId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ex.GetBackfillingCohorts(); len(got) != 1 || got[0] != id {
		t.Fatalf("explain's backfilling cohorts %v, want [%d]", got, id)
	}
	fb.finish(team, id)
	if code := e.do("GET", path, e.root, nil, &co); code != 200 || co.Backfill.State != "done" {
		t.Fatalf("cohort after: %d %+v", code, co)
	}
	ex, err = e.client.ExplainFlag(ctx, &adminv1.ExplainFlagRequest{TeamId: team, FlagId: f.GetFlag().GetId(), DistinctId: "u1"})
	if err != nil || len(ex.GetBackfillingCohorts()) != 0 {
		t.Fatalf("explain after: %v %v", ex.GetBackfillingCohorts(), err)
	}
	// A reader may not start one.
	reader := e.key([]int64{team}, ScopeCohortRead)
	if code := e.do("POST", path+"/backfill", reader, map[string]any{}, nil); code != 403 {
		t.Fatalf("reader starts a backfill: %d", code)
	}
	// Without backfills: unavailable.
	e2 := newEnv(t)
	t2 := e2.createTeam("b").GetId()
	c2, err := e2.client.CreateCohort(e2.ctx(e2.root), &adminv1.CreateCohortRequest{TeamId: t2, Cohort: &adminv1.CohortInput{Name: "x",
		Kind: adminv1.CohortKind_COHORT_KIND_BEHAVIORAL, Filters: js(`{"properties":{"type":"AND","values":[
			{"key":"checkout","type":"behavioral","value":"performed_event","time_value":1,"time_interval":"day"}]}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e2.client.BackfillCohort(e2.ctx(e2.root), &adminv1.BackfillCohortRequest{TeamId: t2, CohortId: c2.GetCohort().GetId()})
	if got := errcode.From(err); got == nil || got.Code != errcode.Unavailable {
		t.Fatalf("without backfills: %v", err)
	}
}
