package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// fakeUsage answers fixed states by key, or fails.
type fakeUsage struct {
	states map[string]FlagUsageState
	err    error
	calls  int
}

func (f *fakeUsage) FlagStates(_ context.Context, _ int64, recs []catalog.FlagRecord) (map[string]FlagUsageState, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]FlagUsageState{}
	for _, r := range recs {
		if s, ok := f.states[r.Flag.Key]; ok {
			out[r.Flag.Key] = s
		}
	}
	return out, nil
}

// TestFlagUsageOnReads: with Config.FlagUsage, get and list carry status
// and last_evaluated_at, the STALE filter takes usage's rule (unless the
// request names stale_days), and a failing usage read leaves them unset
// without failing the read.
func TestFlagUsageOnReads(t *testing.T) {
	last := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fu := &fakeUsage{states: map[string]FlagUsageState{
		"used":   {Status: "ACTIVE", LastEvaluatedAt: last},
		"unused": {Status: "STALE"},
	}}
	e := newEnv(t, func(c *Config) { c.FlagUsage = fu })
	team := e.createTeam("acme")
	ctx := e.ctx(e.root)
	ids := map[string]int64{}
	for _, key := range []string{"used", "unused"} {
		r, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: key, Active: true, Filters: js(`{"groups":[{"properties":[],"rollout_percentage":50}]}`)}})
		if err != nil {
			t.Fatal(err)
		}
		ids[key] = r.GetFlag().GetId()
	}
	g, err := e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: team.GetId(), FlagId: ids["used"]})
	if err != nil || g.GetFlag().GetStatus() != "ACTIVE" || !g.GetFlag().GetLastEvaluatedAt().AsTime().Equal(last) {
		t.Fatalf("get: %v %v", g, err)
	}
	l, err := e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team.GetId()})
	if err != nil || len(l.GetResults()) != 2 {
		t.Fatalf("list: %v %v", l, err)
	}
	for _, f := range l.GetResults() {
		if want := fu.states[f.GetKey()].Status; f.GetStatus() != want || (f.GetKey() == "unused") != (f.GetLastEvaluatedAt() == nil) {
			t.Errorf("list: %s status %q last %v, want %q", f.GetKey(), f.GetStatus(), f.GetLastEvaluatedAt(), want)
		}
	}
	stale, err := e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team.GetId(), Status: adminv1.FlagStatus_FLAG_STATUS_STALE})
	if err != nil || len(stale.GetResults()) != 1 || stale.GetResults()[0].GetKey() != "unused" {
		t.Fatalf("STALE list: %v %v", stale, err)
	}
	// stale_days named: the rollout rule (50% is not stale).
	stale, err = e.client.ListFlags(ctx, &adminv1.ListFlagsRequest{TeamId: team.GetId(), Status: adminv1.FlagStatus_FLAG_STATUS_STALE, StaleDays: 1})
	if err != nil || len(stale.GetResults()) != 0 {
		t.Fatalf("STALE list with stale_days: %v %v", stale, err)
	}
	fu.err = errors.New("store down")
	g, err = e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: team.GetId(), FlagId: ids["used"]})
	if err != nil || g.GetFlag().GetStatus() != "" || g.GetFlag().GetLastEvaluatedAt() != nil {
		t.Fatalf("get with usage failing: %v %v", g, err)
	}
}
