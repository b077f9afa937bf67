package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// TestPrecomputeStatusPage: the Project page shows the team's latest
// precompute run with its progress and time left, no run, or why the
// status cannot be read, as the management API answers it.
func TestPrecomputeStatusPage(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	runs := map[int64]*admin.PrecomputeRun{
		1: {ID: "r1", Reason: "flag changed", Flags: []string{"checkout", "banner"}, StartedAt: start, ScanDone: true,
			Pages: 4, PagesDone: 1, RowsDone: 250, RowsTotal: 1000, RowsPerSecond: 50, ETA: 15 * time.Second},
		2: {ID: "r2", Reason: "first materialisation", StartedAt: start, FinishedAt: start.Add(20 * time.Second), ScanDone: true,
			Pages: 2, PagesDone: 2, RowsDone: 1000, RowsTotal: 1000, RowsPerSecond: 50},
		// 3: no run yet.
	}
	cases := []struct {
		name string
		want []string
	}{
		{"computing", []string{`data-testid="precompute-state">computing: 250 of 1000 rows (25%), 50 rows/s, about 15s left.`,
			`<progress max="100" value="25"`, "Reason: flag changed.", "Pages 1 of 4.", "Flags: checkout, banner."}},
		{"finished", []string{`data-testid="precompute-state">finished: 1000 of 1000 rows (100%), 50 rows/s.`,
			`<progress max="100" value="100"`, "Pages 2 of 2."}},
		{"none", []string{"No precompute run yet."}},
		{"failing", []string{"Precompute status is not available: reading the precompute run state failed: retry later"}},
	}
	e := newEnvConfig(t, admin.Config{Precompute: func(_ context.Context, team int64, _ time.Time) (*admin.PrecomputeRun, error) {
		if team == 4 {
			return nil, errors.New("the run bucket is gone")
		}
		return runs[team], nil
	}}, nil)
	ctx := e.as(e.root)
	b := e.browser(t)
	b.signIn(e.root)
	for i, c := range cases {
		tm, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: c.name})
		if err != nil {
			t.Fatal(err)
		}
		if tm.GetTeam().GetId() != int64(i+1) {
			t.Fatalf("team %s has id %d, want %d", c.name, tm.GetTeam().GetId(), i+1)
		}
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/settings", i+1), nil)
			if code != http.StatusOK {
				t.Fatalf("settings: %d", code)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
		})
	}

	// A node without precompute (vexil admin without NATS) says so.
	plain := newEnv(t)
	if _, err := plain.client.CreateTeam(plain.as(plain.root), &adminv1.CreateTeamRequest{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	pb := plain.browser(t)
	pb.signIn(plain.root)
	if code, body, _ := pb.do("GET", "/ui/t/1/settings", nil); code != 200 || !strings.Contains(body, "Precompute status is not available: this server cannot read precompute run states") {
		t.Errorf("without precompute: %d", code)
	}
}
