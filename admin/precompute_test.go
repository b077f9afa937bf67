package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// fakeRuns is Config.Precompute over runs set by the test.
type fakeRuns struct {
	mu struct {
		sync.Mutex
		runs  map[int64]*PrecomputeRun
		err   error
		asked []int64
		at    []time.Time
	}
}

func (f *fakeRuns) set(team int64, r *PrecomputeRun) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.runs == nil {
		f.mu.runs = map[int64]*PrecomputeRun{}
	}
	f.mu.runs[team] = r
}

func (f *fakeRuns) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.err = err
}

func (f *fakeRuns) status(_ context.Context, team int64, now time.Time) (*PrecomputeRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.asked = append(f.mu.asked, team)
	f.mu.at = append(f.mu.at, now)
	if f.mu.err != nil {
		return nil, f.mu.err
	}
	return f.mu.runs[team], nil
}

var precomputeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// precomputeEnv is a management API whose run states are fake, at a fixed
// clock, with four teams: scanning, computing, finished and no run.
type precomputeEnv struct {
	*env
	runs                                  *fakeRuns
	scanning, computing, finished, noRuns int64
}

func newPrecomputeEnv(t *testing.T) *precomputeEnv {
	runs := &fakeRuns{}
	e := newEnv(t, func(c *Config) {
		c.Precompute = runs.status
		c.Now = func() time.Time { return precomputeNow }
	})
	pe := &precomputeEnv{env: e, runs: runs}
	pe.scanning = e.createTeam("scanning").GetId()
	pe.computing = e.createTeam("computing").GetId()
	pe.finished = e.createTeam("finished").GetId()
	pe.noRuns = e.createTeam("no runs").GetId()
	// The progress (rows, rate, ETA) is the reader's, computed at the
	// clock the Service passes (precompute's RunState.Progress in vexil):
	// the Service shows it as it is and derives the state.
	runs.set(pe.scanning, &PrecomputeRun{ID: "run-scan", Flags: []string{"beta", "checkout"},
		Reason: "definitions changed", StartedAt: precomputeNow.Add(-100 * time.Second),
		Pages: 8, PagesDone: 5, RowsTotal: 20000, RowsDone: 5000, RowsPerSecond: 50, ETA: 300 * time.Second})
	runs.set(pe.computing, &PrecomputeRun{ID: "run-compute", Flags: []string{"beta"},
		Reason: "definitions changed", StartedAt: precomputeNow.Add(-50 * time.Second), ScanDone: true,
		Pages: 10, PagesDone: 7, RowsTotal: 10000, RowsDone: 7500, RowsPerSecond: 150, ETA: 2500 * time.Second / 150})
	// Finished: FinishedAt set. Flags nil: all of them.
	runs.set(pe.finished, &PrecomputeRun{ID: "run-done", Reason: "first materialisation",
		StartedAt: precomputeNow.Add(-time.Hour), FinishedAt: precomputeNow.Add(-time.Hour + 40*time.Second), ScanDone: true,
		Pages: 8, PagesDone: 8, RowsTotal: 8000, RowsDone: 8000, RowsPerSecond: 200})
	return pe
}

func TestPrecomputeStatusGRPC(t *testing.T) {
	pe := newPrecomputeEnv(t)
	reader := pe.key(nil, ScopeFlagRead)
	cases := []struct {
		name string
		team int64
		want *adminv1.PrecomputeRun
	}{
		{"scanning", pe.scanning, &adminv1.PrecomputeRun{TeamId: pe.scanning, Id: "run-scan",
			State: adminv1.PrecomputeState_PRECOMPUTE_STATE_SCANNING, Reason: "definitions changed", Flags: []string{"beta", "checkout"},
			StartedAt: timestamppb.New(precomputeNow.Add(-100 * time.Second)),
			RowsDone:  5000, RowsTotal: 20000, RowsPerSecond: 50, EtaSeconds: 300, Pages: 8, PagesDone: 5}},
		{"computing", pe.computing, &adminv1.PrecomputeRun{TeamId: pe.computing, Id: "run-compute",
			State: adminv1.PrecomputeState_PRECOMPUTE_STATE_COMPUTING, Reason: "definitions changed", Flags: []string{"beta"},
			StartedAt: timestamppb.New(precomputeNow.Add(-50 * time.Second)),
			RowsDone:  7500, RowsTotal: 10000, RowsPerSecond: 150, EtaSeconds: 2500.0 / 150, Pages: 10, PagesDone: 7}},
		{"finished", pe.finished, &adminv1.PrecomputeRun{TeamId: pe.finished, Id: "run-done",
			State: adminv1.PrecomputeState_PRECOMPUTE_STATE_FINISHED, Reason: "first materialisation",
			StartedAt:  timestamppb.New(precomputeNow.Add(-time.Hour)),
			FinishedAt: timestamppb.New(precomputeNow.Add(-time.Hour + 40*time.Second)),
			RowsDone:   8000, RowsTotal: 8000, RowsPerSecond: 200, Pages: 8, PagesDone: 8}},
		{"no run", pe.noRuns, &adminv1.PrecomputeRun{TeamId: pe.noRuns, State: adminv1.PrecomputeState_PRECOMPUTE_STATE_NONE}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := pe.client.GetPrecomputeStatus(pe.ctx(reader), &adminv1.GetPrecomputeStatusRequest{TeamId: c.team})
			if err != nil {
				t.Fatal(err)
			}
			got := resp.GetRun()
			// The ETA is a time.Duration (nanoseconds): compare it apart.
			if d := got.GetEtaSeconds() - c.want.GetEtaSeconds(); d > 1e-6 || d < -1e-6 {
				t.Errorf("eta_seconds %v, want %v", got.GetEtaSeconds(), c.want.GetEtaSeconds())
			}
			got.EtaSeconds, c.want.EtaSeconds = 0, 0
			if !proto.Equal(got, c.want) {
				t.Errorf("run\n got %v\nwant %v", got, c.want)
			}
		})
	}
	// The runs are read at the Service's clock.
	pe.runs.mu.Lock()
	at := pe.runs.mu.at
	pe.runs.mu.Unlock()
	if len(at) != len(cases) {
		t.Errorf("%d reads, want %d", len(at), len(cases))
	}
	for _, a := range at {
		if !a.Equal(precomputeNow) {
			t.Errorf("read at %v, want the Service's clock %v", a, precomputeNow)
		}
	}
}

func TestPrecomputeStatusHTTP(t *testing.T) {
	pe := newPrecomputeEnv(t)
	reader := pe.key([]int64{pe.scanning, pe.noRuns}, ScopeFlagRead)
	var run map[string]any
	if code := pe.do("GET", fmt.Sprintf("/api/projects/%d/precompute", pe.scanning), reader, nil, &run); code != 200 {
		t.Fatalf("status %d: %v", code, run)
	}
	// The record itself (response_body), snake_case, int64 as numbers.
	want := map[string]any{
		"team_id": float64(pe.scanning), "id": "run-scan", "state": "PRECOMPUTE_STATE_SCANNING",
		"reason": "definitions changed", "started_at": "2026-03-01T11:58:20Z",
		"rows_done": 5000.0, "rows_total": 20000.0, "rows_per_second": 50.0, "eta_seconds": 300.0,
		"pages": 8.0, "pages_done": 5.0,
	}
	for k, v := range want {
		if run[k] != v {
			t.Errorf("%s = %#v, want %#v", k, run[k], v)
		}
	}
	if fl := fmt.Sprint(run["flags"]); fl != "[beta checkout]" {
		t.Errorf("flags = %s", fl)
	}
	if _, ok := run["finished_at"]; ok {
		t.Errorf("finished_at set while running: %v", run["finished_at"])
	}

	run = nil
	if code := pe.do("GET", fmt.Sprintf("/api/projects/%d/precompute", pe.noRuns), reader, nil, &run); code != 200 {
		t.Fatalf("no run: status %d: %v", code, run)
	}
	if run["state"] != "PRECOMPUTE_STATE_NONE" || run["team_id"] != float64(pe.noRuns) || run["id"] != "" ||
		run["rows_total"] != 0.0 || fmt.Sprint(run["flags"]) != "[]" {
		t.Errorf("no run: %v", run)
	}
}

func TestPrecomputeStatusErrors(t *testing.T) {
	pe := newPrecomputeEnv(t)
	unavailable := newEnv(t) // no Config.Precompute
	uTeam := unavailable.createTeam("t").GetId()
	teamA := pe.scanning

	// grpcCode calls the method on e and returns the status and Vexil code.
	grpcCode := func(e *env, key string, team int64) (codes.Code, errcode.Code, string) {
		_, err := e.client.GetPrecomputeStatus(e.ctx(key), &adminv1.GetPrecomputeStatusRequest{TeamId: team})
		if err == nil {
			return codes.OK, "", ""
		}
		st := status.Convert(err)
		return st.Code(), errcode.FromStatus(st).Code, st.Message()
	}
	httpCode := func(e *env, key string, team int64) (int, string, string) {
		var je jerr
		code := e.do("GET", fmt.Sprintf("/api/projects/%d/precompute", team), key, nil, &je)
		return code, je.reason(), je.Message
	}
	cases := []struct {
		name     string
		e        *env
		key      string
		team     int64
		grpc     codes.Code
		http     int
		errcode  errcode.Code
		failRead error
	}{
		{"unavailable", unavailable, unavailable.root, uTeam, codes.Unavailable, 503, errcode.PrecomputeUnavailable, nil},
		{"unavailable, unknown team", unavailable, unavailable.root, uTeam + 100, codes.NotFound, 404, errcode.NotFound, nil},
		{"read fails", pe.env, pe.root, teamA, codes.Unavailable, 503, errcode.PrecomputeUnavailable, errors.New("nats: timeout secret-detail")},
		{"unknown team", pe.env, pe.root, 9999, codes.NotFound, 404, errcode.NotFound, nil},
		{"no key", pe.env, "", teamA, codes.Unauthenticated, 401, errcode.Unauthenticated, nil},
		{"other team's key", pe.env, pe.key([]int64{pe.noRuns}, ScopeAll), teamA, codes.NotFound, 404, errcode.NotFound, nil},
		{"without flag:read", pe.env, pe.key([]int64{teamA}, ScopeTeamRead, ScopeFlagWrite, ScopeActivityRead), teamA,
			codes.PermissionDenied, 403, errcode.PermissionDenied, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pe.runs.fail(c.failRead)
			defer pe.runs.fail(nil)
			g, ge, msg := grpcCode(c.e, c.key, c.team)
			if g != c.grpc || ge != c.errcode {
				t.Errorf("gRPC %v %s, want %v %s (%s)", g, ge, c.grpc, c.errcode, msg)
			}
			if strings.Contains(msg, "secret-detail") {
				t.Errorf("gRPC message leaks the cause: %s", msg)
			}
			h, he, msg := httpCode(c.e, c.key, c.team)
			if h != c.http || he != string(c.errcode) {
				t.Errorf("HTTP %d %s, want %d %s (%s)", h, he, c.http, c.errcode, msg)
			}
			if strings.Contains(msg, "secret-detail") {
				t.Errorf("HTTP message leaks the cause: %s", msg)
			}
		})
	}
	// Refused calls never reach the run states: only the read-fails case
	// (twice: gRPC and HTTP) asked, for team A.
	pe.runs.mu.Lock()
	asked := pe.runs.mu.asked
	pe.runs.mu.Unlock()
	if fmt.Sprint(asked) != fmt.Sprint([]int64{teamA, teamA}) {
		t.Errorf("run states read for %v", asked)
	}
}
