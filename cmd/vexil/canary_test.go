package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/canary"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/polltest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// defineTeamWith is defineTeam with each demo flag's filters passed
// through edit first (the candidate's one changed flag).
func defineTeamWith(t *testing.T, n *node, edit func(key, filters string) string) e2eTeam {
	t.Helper()
	ctx := context.Background()
	_, personal, err := admin.CreatePersonalKey(ctx, n.catalog, nil, []string{admin.ScopeAll}, "canary", "test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+personal)
	created, err := api.CreateTeam(actx, &adminv1.CreateTeamRequest{Name: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := api.SetGroupType(actx, &adminv1.SetGroupTypeRequest{TeamId: created.GetTeam().GetId(), GroupTypeIndex: 0, GroupType: "company", Version: created.GetTeam().GetVersion()})
	if err != nil {
		t.Fatal(err)
	}
	team := set.GetTeam()
	for _, f := range demoFlags {
		filters, err := structOf(edit(f.key, f.filters))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: f.key, Name: f.name, Active: true, Filters: filters}}); err != nil {
			t.Fatalf("create %s: %v", f.key, err)
		}
	}
	// The change notices go out through the outbox after each write: the
	// node may have loaded the team between two flags. Wait until /flags
	// answers every flag, so that callers compare whole answers.
	polltest.Eventually(t, 30*time.Second, func() error {
		got := postFlags(t, n.adminSrv.HTTPAddr(), fmt.Sprintf(`{"token":%q,"distinct_id":"define-team"}`, team.GetApiToken()))
		if fl, _ := got["flags"].(map[string]any); len(fl) != len(demoFlags) {
			return fmt.Errorf("/flags answers %d flags, want %d", len(fl), len(demoFlags))
		}
		return nil
	})
	return e2eTeam{id: team.GetId(), token: team.GetApiToken(), personal: personal}
}

// canaryNode is a node whose admission control never sheds the test's
// few concurrent requests: the canary reports a shed request (503) as a
// divergence, rightly, and a loaded machine must not make one here.
func canaryNode(t *testing.T) *node {
	t.Helper()
	return testNodeWith(t, canaryConfig())
}

// canaryConfig is canaryNode's: a fixed in-flight limit, and targets so
// long that no request is late: a machine loaded by other processes ages
// requests past the default targets, which closes the rate gate.
func canaryConfig() config.Config {
	c := config.Default()
	c.Admission.MinLimit, c.Admission.InitialLimit, c.Admission.MaxLimit = 4096, 4096, 4096
	c.Admission.EvaluateTarget, c.Admission.PollTarget = time.Minute, time.Minute
	return c
}

func runCanaryCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runCanary(context.Background(), args, &out, &errb)
	return out.String(), err
}

// TestCanaryTwoNodes: two real serve nodes, each its own environment
// (NATS, store, catalog, keys), the same flags but for one: the
// candidate's beta-dashboard rolls out to 60% of everyone else instead of
// 20%. The canary, on generated /flags and definitions requests and on a
// recorded log, reports exactly that flag's divergences with their
// requests and fails the gate; the baseline against a third node with the
// same flags passes it.
func TestCanaryTwoNodes(t *testing.T) {
	base, cand, same := canaryNode(t), canaryNode(t), canaryNode(t)
	bt := defineTeamWith(t, base, func(_, f string) string { return f })
	ct := defineTeamWith(t, cand, func(key, f string) string {
		if key == "beta-dashboard" {
			return strings.Replace(f, `"rollout_percentage":20`, `"rollout_percentage":60`, 1)
		}
		return f
	})
	st := defineTeamWith(t, same, func(_, f string) string { return f })
	url := func(n *node) string { return "http://" + n.adminSrv.HTTPAddr() }

	args := []string{"-baseline", url(base), "-token", bt.token, "-personal-key", bt.personal,
		"-candidate", url(cand), "-candidate-token", ct.token, "-candidate-personal-key", ct.personal,
		"-requests", "400", "-persons", "1000", "-zipf", "1.1", "-poll-every", "50", "-json", "-examples", "1000", "-gate", "-p99-slack", "1m"}
	out, err := runCanaryCmd(t, args...)
	if err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("gate: %v, want a divergence failure\n%s", err, out)
	}
	var res canary.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Compared != 400 || res.Diverged == 0 || res.Failed != 0 {
		t.Fatalf("compared %d, diverged %d, failed %d; want 400 compared, some diverged, none failed", res.Compared, res.Diverged, res.Failed)
	}
	defs := 0
	for _, d := range res.Divergences {
		for _, diff := range d.Diffs {
			if !strings.HasPrefix(diff, "flag beta-dashboard: ") && !strings.HasPrefix(diff, "definition beta-dashboard: ") {
				t.Errorf("unexpected difference %q for %s %s", diff, d.Request.Path, d.Request.Body)
			}
		}
		if d.Request.Kind() == "definitions" {
			defs++
			continue
		}
		// The request is reported as sent to the baseline: its answer
		// there is off (beta-dashboard's 20%), on at the candidate.
		var body struct {
			DistinctID string `json:"distinct_id"`
		}
		if err := json.Unmarshal(d.Request.Body, &body); err != nil || body.DistinctID == "" || !strings.Contains(string(d.Request.Body), bt.token) {
			t.Errorf("divergence without its request: %s", d.Request.Body)
		}
		if !strings.Contains(strings.Join(d.Diffs, "\n"), "flag beta-dashboard: value false != true") {
			t.Errorf("%s: diffs %q, want beta-dashboard off at the baseline, on at the candidate", body.DistinctID, d.Diffs)
		}
	}
	if defs != 400/50 {
		t.Errorf("%d definitions polls diverged, want every one of the %d", defs, 400/50)
	}
	// Every divergence is a person the two rollouts answer differently:
	// the same count as the engine's own answers would give is checked by
	// asking /flags directly for each reported person on both.
	for _, d := range res.Divergences {
		if d.Request.Kind() != "flags" {
			continue
		}
		var body struct {
			DistinctID string `json:"distinct_id"`
		}
		_ = json.Unmarshal(d.Request.Body, &body)
		if a, b := flagsAnswer(t, base.adminSrv.HTTPAddr(), bt, body.DistinctID, "beta-dashboard"), flagsAnswer(t, cand.adminSrv.HTTPAddr(), ct, body.DistinctID, "beta-dashboard"); a != false || b != true {
			t.Errorf("%s: baseline %v, candidate %v", body.DistinctID, a, b)
		}
	}

	// A recorded log: a /flags for a person in the changed 40%, one for
	// a person in neither, a definitions poll with a recorded ETag.
	var on, off string
	for i := 0; i < 1000 && (on == "" || off == ""); i++ {
		id := fmt.Sprintf("user-%d", i)
		a, b := flagsAnswer(t, base.adminSrv.HTTPAddr(), bt, id, "beta-dashboard"), flagsAnswer(t, cand.adminSrv.HTTPAddr(), ct, id, "beta-dashboard")
		switch {
		case a == false && b == true && on == "":
			on = id
		case a == b && off == "":
			off = id
		}
	}
	log := filepath.Join(t.TempDir(), "requests.jsonl")
	lines := fmt.Sprintf(`{"method":"POST","path":"/flags/?v=2","body":{"token":%q,"distinct_id":%q}}
# a comment
{"method":"POST","path":"/decide/?v=3","body":{"token":%q,"distinct_id":%q}}
{"method":"GET","path":"/api/feature_flag/local_evaluation/?token=%s","headers":{"Authorization":"Bearer %s","If-None-Match":"\"x\""}}
`, bt.token, on, bt.token, off, bt.token, bt.personal)
	if err := os.WriteFile(log, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCanaryCmd(t, "-baseline", url(base), "-token", bt.token, "-personal-key", bt.personal,
		"-candidate", url(cand), "-candidate-token", ct.token, "-candidate-personal-key", ct.personal, "-log", log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "compared 3, diverged 2") || !strings.Contains(out, on) || strings.Contains(out, `"distinct_id":"`+off) {
		t.Errorf("log replay: want 2 of 3 diverged (%s and the definitions, not %s):\n%s", on, off, out)
	}

	// A candidate with the same flags passes the gate.
	out, err = runCanaryCmd(t, "-baseline", url(base), "-token", bt.token, "-personal-key", bt.personal,
		"-candidate", url(same), "-candidate-token", st.token, "-candidate-personal-key", st.personal,
		"-requests", "300", "-gate", "-p99-slack", "1m")
	if err != nil || !strings.Contains(out, "compared 300, diverged 0") {
		t.Errorf("same flags: %v\n%s", err, out)
	}

	// A bad log line is refused with its number.
	if err := os.WriteFile(log, []byte("{\"method\":\"POST\",\"path\":\"/flags\"}\n{\"method\":\"DELETE\",\"path\":\"/flags\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCanaryCmd(t, "-baseline", url(base), "-candidate", url(cand), "-log", log); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad log: %v, want line 2 named", err)
	}
}

// TestFullCanaryRollsBack: the full canary proxies live /flags traffic,
// the candidate answering all of it; the first answer that differs from
// the baseline's is still the candidate's, and rolls back: from then on
// the baseline answers. A candidate with the same flags answers every
// request and is never rolled back.
func TestFullCanaryRollsBack(t *testing.T) {
	base, cand, same := canaryNode(t), canaryNode(t), canaryNode(t)
	bt := defineTeamWith(t, base, func(_, f string) string { return f })
	ct := defineTeamWith(t, cand, func(key, f string) string {
		if key == "beta-dashboard" {
			return strings.Replace(f, `"rollout_percentage":20`, `"rollout_percentage":60`, 1)
		}
		return f
	})
	st := defineTeamWith(t, same, func(_, f string) string { return f })
	url := func(n *node) string { return "http://" + n.adminSrv.HTTPAddr() }
	proxyTo := func(n *node, tm e2eTeam) (*canary.Proxy, string) {
		p, err := canary.NewProxy(canary.ProxyConfig{Share: 1,
			Baseline:  canary.Target{URL: url(base), Token: bt.token, PersonalKey: bt.personal},
			Candidate: canary.Target{URL: url(n), Token: tm.token, PersonalKey: tm.personal}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		return p, strings.TrimPrefix(srv.URL, "http://")
	}

	p, addr := proxyTo(same, st)
	for i := range 50 {
		flagsAnswer(t, addr, bt, fmt.Sprintf("user-%d", i), "beta-dashboard")
	}
	if s := p.Status(); s.RolledBack || s.ByCandidate != 50 || s.Divergences != 0 {
		t.Fatalf("same flags: %+v, want 50 answered by the candidate, no rollback", s)
	}

	p, addr = proxyTo(cand, ct)
	var diverged string
	for i := 0; i < 1000 && diverged == ""; i++ {
		id := fmt.Sprintf("user-%d", i)
		if got := flagsAnswer(t, addr, bt, id, "beta-dashboard"); got == true && flagsAnswer(t, url(base)[len("http://"):], bt, id, "beta-dashboard") == false {
			diverged = id // answered by the candidate
		}
	}
	s := p.Status()
	if diverged == "" || !s.RolledBack || s.Divergences != 1 || !strings.Contains(s.Reason, "beta-dashboard") {
		t.Fatalf("changed flag: diverged at %q, status %+v; want a rollback on beta-dashboard", diverged, s)
	}
	if got := flagsAnswer(t, addr, bt, diverged, "beta-dashboard"); got != false {
		t.Errorf("after the rollback %s gets %v, want the baseline's false", diverged, got)
	}
	if after := p.Status(); after.ByCandidate != s.ByCandidate || after.Requests != s.Requests+1 {
		t.Errorf("after the rollback: %+v, want the candidate to answer nothing more", after)
	}
}
