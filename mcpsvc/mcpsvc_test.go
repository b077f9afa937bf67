package mcpsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/signals"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// The protocol revisions tested: the 2025 era (initialize, sessions) and
// the 2026-07-28 one (stateless).
var eras = []string{"2025-11-25", "2026-07-28"}

type fixture struct {
	t           testing.TB
	cat         catalog.Catalog
	svc         *admin.Service
	mcp         *Server
	base        string // http://host:port
	root        string // an instance-wide key with every scope
	team        int64
	teamVersion int64
	inbox       *Inbox
	// The evaluation service (POST /flags) counting into rec, the usage
	// statistics on clock, and the team's project token.
	eval    *evalsvc.Service
	rec     *usage.Recorder
	persons *memstore.Store
	clock   *testClock
	token   string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ns := natstest.Start(t)
	cat := memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = cat.Close() })
	persons := memstore.New()
	clock := &testClock{}
	us, err := usage.New(usage.Config{Store: persons, Flags: cat, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := usage.NewRecorder(usage.RecorderConfig{Store: persons})
	if err != nil {
		t.Fatal(err)
	}
	eval, err := evalsvc.New(evalsvc.Config{Store: persons, Catalog: cat, Usage: rec})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := admin.New(admin.Config{Catalog: cat, Persons: persons, Publisher: admin.NATSPublisher{Conn: ns.Conn},
		FlagUsage: usageAdapter{us}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	inbox, err := OpenInbox(ctx, InboxConfig{Store: persons, JetStream: ns.JetStream, Namespace: namespace.Default, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Service: svc, Inbox: inbox, Conn: ns.Conn, Namespace: namespace.Default, Usage: usageAdapter{us}})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, GRPCListener: gl, HTTPListener: hl,
		Routes: map[string]http.Handler{"/mcp": m.Handler()}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- srv.Run(rctx) }()
	go func() { done <- m.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	// Run subscribes asynchronously: make sure its subscriptions are in
	// place before a test changes anything.
	if err := ns.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	_, root, err := admin.CreatePersonalKey(ctx, cat, nil, []string{admin.ScopeAll}, "root", "test")
	if err != nil {
		t.Fatal(err)
	}
	team, token, _, err := admin.CreateTeam(ctx, cat, catalog.Team{Name: "acme"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	// 200 persons, for the blast radius.
	var b store.Batch
	for i := range 200 {
		did := fmt.Sprintf("u%d", i)
		b.PutRow(&store.Row{Team: team.ID, DistinctID: did, PersonID: "p-" + did, PersonVersion: 1, Properties: []byte(`{"plan":"free"}`)})
	}
	if err := persons.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cat: cat, svc: svc, mcp: m, base: "http://" + srv.HTTPAddr(), root: root, team: team.ID, teamVersion: team.Version, inbox: inbox,
		eval: eval, rec: rec, clock: clock, token: token, persons: persons}
	return f
}

// key makes a personal key of teams with scopes.
func (f *fixture) key(teams []int64, scopes ...string) string {
	f.t.Helper()
	_, secret, err := admin.CreatePersonalKey(context.Background(), f.cat, teams, scopes, "k", "test")
	if err != nil {
		f.t.Fatal(err)
	}
	return secret
}

type bearer struct {
	key  string
	base http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.base.RoundTrip(r)
}

// connect opens a go-sdk client session over streamable HTTP in era.
func (f *fixture) connect(era, key, query string, opts *mcp.ClientOptions) *mcp.ClientSession {
	f.t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, opts)
	tr := &mcp.StreamableClientTransport{Endpoint: f.base + "/mcp" + query,
		HTTPClient: &http.Client{Transport: bearer{key: key, base: http.DefaultTransport}}}
	cs, err := c.Connect(context.Background(), tr, &mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		f.t.Fatalf("connect (%s): %v", era, err)
	}
	f.t.Cleanup(func() { _ = cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != era {
		f.t.Fatalf("negotiated %q, want %q", got, era)
	}
	return cs
}

// callTool calls a tool and decodes its first content as JSON; it returns
// the decoded answer, all the texts, and whether it was an error.
func callTool(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) (map[string]any, []string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	var out map[string]any
	if len(texts) > 0 {
		_ = json.Unmarshal([]byte(texts[0]), &out)
	}
	return out, texts, res.IsError
}

func mustTool(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) map[string]any {
	t.Helper()
	out, texts, isErr := callTool(t, cs, name, args)
	if isErr {
		t.Fatalf("%s(%v): %v", name, args, texts)
	}
	return out
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// TestAgentLifecycle runs an agent's lifecycle through MCP only, in both
// eras: create a flag, target a cohort and a group, roll out 10%, a
// dry run and a confirmed jump to 100%, activity, signals, archive.
func TestAgentLifecycle(t *testing.T) {
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			// The team's group type (team:admin, not an agent's job).
			if _, err := f.svc.Invoke(ctx, "Bearer "+f.root, admin.Method("SetGroupType"), &adminv1.SetGroupTypeRequest{TeamId: f.team, GroupType: "company", GroupTypeIndex: 0, Version: f.teamVersion},
				func(ctx context.Context, r any) (any, error) {
					return f.svc.SetGroupType(ctx, r.(*adminv1.SetGroupTypeRequest))
				}); err != nil {
				t.Fatal(err)
			}
			key := f.key([]int64{f.team}, admin.ScopeAll)
			cs := f.connect(era, key, "", nil)

			cohort := mustTool(t, cs, "cohort_create", map[string]any{"name": "beta testers", "kind": "static", "is_static": true})
			cohortID := cohort["cohort"].(map[string]any)["id"].(float64)
			if out := mustTool(t, cs, "cohort_members_add", map[string]any{"cohort_id": cohortID, "distinct_ids": []string{"u1", "u2"}}); out["added"] != 2.0 {
				t.Fatalf("members added: %v", out)
			}
			created := mustTool(t, cs, "flag_create", map[string]any{"key": "new-checkout", "name": "New checkout"})
			if st := created["flag"].(map[string]any)["status"]; st != "INACTIVE" {
				t.Fatalf("a new flag is %v, want INACTIVE (off by default)", st)
			}
			mustTool(t, cs, "condition_add", map[string]any{"key": "new-checkout", "condition": map[string]any{
				"properties": []any{map[string]any{"key": "id", "type": "cohort", "value": cohortID}}, "rollout_percentage": 100}})
			mustTool(t, cs, "condition_add", map[string]any{"key": "new-checkout", "condition": map[string]any{
				"properties":       []any{map[string]any{"key": "plan", "type": "group", "group_type_index": 0, "operator": "exact", "value": "enterprise"}},
				"group_type_index": 0, "rollout_percentage": 10}})
			// Condition 0 is the default one at 0%: roll it out to 10%.
			out := mustTool(t, cs, "rollout_set", map[string]any{"key": "new-checkout", "index": 0, "rollout_percentage": 10})
			if r := out["flag"].(map[string]any)["rollout"].(string); !strings.HasPrefix(r, "everyone @ 10%") {
				t.Fatalf("rollout after rollout_set: %q", r)
			}
			// Enabling with the cohort condition at 100% is a jump to
			// 100%: confirmation first.
			ask := mustTool(t, cs, "flag_enable", map[string]any{"key": "new-checkout"})
			tok, _ := ask["confirm_token"].(string)
			if !strings.HasPrefix(tok, "cfm_") || !strings.Contains(ask["confirmation_required"].(string), "100%") {
				t.Fatalf("flag_enable without confirmation: %v", ask)
			}
			if got := mustTool(t, cs, "flag_get", map[string]any{"key": "new-checkout"}); got["active"] == true {
				t.Fatal("the flag was enabled before confirmation")
			}
			// A token is bound to the arguments.
			if _, texts, isErr := callTool(t, cs, "flag_disable", map[string]any{"key": "new-checkout", "confirm_token": tok}); isErr {
				t.Fatalf("flag_disable needs no token, and an unneeded token is ignored: %v", texts)
			}
			enabled := mustTool(t, cs, "flag_enable", map[string]any{"key": "new-checkout", "confirm_token": tok})
			if st := enabled["flag"].(map[string]any)["status"]; st != "ACTIVE" {
				t.Fatalf("after confirmed enable: %v", enabled)
			}
			// A used token does not work twice.
			mustTool(t, cs, "flag_disable", map[string]any{"key": "new-checkout"})
			if _, texts, isErr := callTool(t, cs, "flag_enable", map[string]any{"key": "new-checkout", "confirm_token": tok}); !isErr || !strings.Contains(texts[0], "failed_precondition") {
				t.Fatalf("a used token: %v", texts)
			}
			mustTool(t, cs, "flag_enable", map[string]any{"key": "new-checkout", "confirm_token": mustTool(t, cs, "flag_enable", map[string]any{"key": "new-checkout"})["confirm_token"]})
			// Dry run of a jump to 100%: the diff and the blast radius,
			// nothing saved.
			dry := mustTool(t, cs, "rollout_set", map[string]any{"key": "new-checkout", "index": 0, "rollout_percentage": 100, "dry_run": true})
			if d := dry["diff"].([]any); len(d) != 1 || mustJSON(d[0]) != `{"after":100,"before":10,"path":"filters.groups.0.rollout_percentage"}` || dry["needs_confirmation"] == "" {
				t.Fatalf("dry run: %s", mustJSON(dry))
			}
			br := dry["blast_radius"].(map[string]any)
			var moved float64
			for _, n := range br["transitions"].(map[string]any) {
				moved += n.(float64)
			}
			if br["state"] != "DONE" || br["rows_total"] != 200.0 || br["changed"] != moved || moved <= 0 || moved >= 200 {
				t.Fatalf("blast radius: %v", br)
			}
			if got := mustTool(t, cs, "flag_get", map[string]any{"key": "new-checkout"}); !strings.Contains(mustJSON(got), `"rollout_percentage":10`) {
				t.Fatalf("a dry run saved: %v", got)
			}
			// A proposed definition, evaluated without saving.
			ev := mustTool(t, cs, "flag_evaluate_proposed", map[string]any{"key": "new-checkout", "distinct_id": "u7",
				"definition": map[string]any{"filters": map[string]any{"groups": []any{map[string]any{"properties": []any{}, "rollout_percentage": 100}}}}})
			if ev["enabled"] != true || ev["reason"] != "condition_match" {
				t.Fatalf("flag_evaluate_proposed: %v", ev)
			}
			// The activity log has the agent's changes.
			act := mustTool(t, cs, "flag_activity", map[string]any{"key": "new-checkout"})
			if n := len(act["entries"].([]any)); n < 5 {
				t.Fatalf("activity: %d entries, want at least 5", n)
			}
			// Rollout signals are pending, noted on every answer.
			_, texts, _ := callTool(t, cs, "flags_list", nil)
			if len(texts) < 2 || !strings.Contains(texts[1], "pending signals") {
				t.Fatalf("no pending-signals note: %v", texts)
			}
			sig := mustTool(t, cs, "signals_list", nil)
			list := sig["signals"].([]any)
			if len(list) == 0 || list[0].(map[string]any)["kind"] != KindRollout || list[0].(map[string]any)["data"] != nil {
				t.Fatalf("signals: %v", sig)
			}
			full := mustTool(t, cs, "signals_list", map[string]any{"full": true, "limit": 1})
			first := full["signals"].([]any)[0].(map[string]any)
			if data, _ := first["data"].(map[string]any); data["op"] != "created" || data["actor"] == nil || data["diff"] == nil {
				t.Fatalf("a rollout signal in full (who, what, diff): %v", first)
			}
			mustTool(t, cs, "signals_ack", map[string]any{"cursor": sig["next_cursor"]})
			if sig["more"] == false {
				_, texts, _ = callTool(t, cs, "flags_list", nil)
				if len(texts) != 1 {
					t.Fatalf("after acknowledging every signal: %v", texts)
				}
			}
			// Real /flags traffic, counted by the usage statistics and
			// read through MCP: exact counts.
			ids := make([]string, 20)
			for i := range ids {
				ids[i] = fmt.Sprintf("u%d", i)
			}
			f.evaluate(ids...)
			f.evaluate("u1", "u2") // two ids again: 22 evaluations, 20 ids
			use := mustTool(t, cs, "usage_flag", map[string]any{"key": "new-checkout", "resolution": "minute", "date_from": "-1h"})
			total := use["total"].(map[string]any)
			values := total["values"].(map[string]any)
			if total["evaluations"] != 22.0 || total["unique_users"] != 20.0 || total["by_endpoint"].(map[string]any)["flags"] != 22.0 ||
				values["true"].(float64)+values["false"].(float64) != 22 || values["true"].(float64) < 4 || use["status"] != "ACTIVE" || use["last_evaluated_at"] == nil {
				t.Fatalf("usage_flag: %s", mustJSON(use))
			}
			sum := mustTool(t, cs, "usage_summary", map[string]any{"days": 1})
			if rows := sum["results"].([]any); len(rows) != 1 || rows[0].(map[string]any)["evaluations"] != 22.0 || sum["stale_after_days"] != 30.0 {
				t.Fatalf("usage_summary: %s", mustJSON(sum))
			}
			lst := mustTool(t, cs, "flags_list", nil)["flags"].([]any)[0].(map[string]any)
			if lst["status"] != "ACTIVE" || lst["last_evaluated_at"] == nil {
				t.Fatalf("a slim row after traffic: %v", lst)
			}
			if got := mustTool(t, cs, "usage_settings_get", nil); got["stale_after_days"] != 30.0 {
				t.Fatalf("usage_settings_get: %v", got)
			}
			job := f.findingsJob()
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("findings while the flag is in use: %d %v", n, err)
			}
			// The stale period passes: the job adds one stale-flag
			// signal, once.
			f.clock.advance(31 * 24 * time.Hour)
			if n, err := job.Once(ctx); err != nil || n != 1 {
				t.Fatalf("findings after 31 days: %d %v", n, err)
			}
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("the same finding again: %d %v", n, err)
			}
			stale := mustTool(t, cs, "signals_list", map[string]any{"full": true})["signals"].([]any)
			if len(stale) != 1 || stale[0].(map[string]any)["kind"] != "stale_flag" ||
				stale[0].(map[string]any)["data"].(map[string]any)["flag_key"] != "new-checkout" ||
				stale[0].(map[string]any)["data"].(map[string]any)["data"].(map[string]any)["reason"] != "not_evaluated" {
				t.Fatalf("stale signal: %s", mustJSON(stale))
			}
			if fs := mustTool(t, cs, "usage_findings", nil); fs["count"] != 1.0 || fs["findings"].([]any)[0].(map[string]any)["kind"] != "stale_flag" {
				t.Fatalf("usage_findings: %v", fs)
			}
			if lst := mustTool(t, cs, "flags_list", map[string]any{"status": "STALE"})["flags"].([]any); len(lst) != 1 || lst[0].(map[string]any)["status"] != "STALE" {
				t.Fatalf("stale flags after 31 days: %v", lst)
			}
			mustTool(t, cs, "flag_archive", map[string]any{"key": "new-checkout"})
			arch := mustTool(t, cs, "flags_list", map[string]any{"status": "ARCHIVED"})
			if rows := arch["flags"].([]any); len(rows) != 1 || rows[0].(map[string]any)["status"] != "ARCHIVED" {
				t.Fatalf("archived flags: %v", arch)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestResourceUpdatedFromREST: a subscribed client is pushed
// notifications/resources/updated when someone else changes the flag over
// REST, in both eras, and for vexil://signals.
func TestResourceUpdatedFromREST(t *testing.T) {
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			f := newFixture(t)
			updates := make(chan string, 16)
			cs := f.connect(era, f.key([]int64{f.team}, admin.ScopeAll), "", &mcp.ClientOptions{
				ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updates <- r.Params.URI }})
			mustTool(t, cs, "flag_create", map[string]any{"key": "watched"})
			got := mustTool(t, cs, "flag_get", map[string]any{"key": "watched"})
			res, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "vexil://flags/watched"})
			if err != nil || !strings.Contains(res.Contents[0].Text, `"key":"watched"`) {
				t.Fatalf("read vexil://flags/watched: %v %v", res, err)
			}
			for _, uri := range []string{"vexil://flags/watched", SignalsURI} {
				if err := cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: uri}); err != nil {
					t.Fatalf("subscribe %s: %v", uri, err)
				}
			}
			// Someone else, over REST.
			other := f.key([]int64{f.team}, admin.ScopeFlagRead, admin.ScopeFlagWrite)
			id := int64(got["id"].(float64))
			body := `{"name":"renamed by a human","version":` + fmt.Sprint(got["version"]) + `}`
			req, _ := http.NewRequest(http.MethodPatch, fmt.Sprintf("%s/api/projects/%d/feature_flags/%d", f.base, f.team, id), bytes.NewBufferString(body))
			req.Header.Set("Authorization", "Bearer "+other)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("REST patch: %v %v", resp, err)
			}
			_ = resp.Body.Close()
			seen := map[string]bool{}
			deadline := time.After(30 * time.Second) // a hang guard, not a latency assertion
			for !seen["vexil://flags/watched"] || !seen[SignalsURI] {
				select {
				case u := <-updates:
					seen[u] = true
				case <-deadline:
					t.Fatalf("updates received: %v", seen)
				}
			}
		})
	}
}

// TestNarrowingAndScopes: ?features= and ?tools= narrow the list; a key
// sees only the tools its scopes allow.
func TestNarrowingAndScopes(t *testing.T) {
	f := newFixture(t)
	all := f.key([]int64{f.team}, admin.ScopeAll)
	for _, era := range eras {
		if n := toolNames(t, f.connect(era, all, "", nil)); len(n) != len(toolSpecs) {
			t.Fatalf("%s: %d tools, want %d", era, len(n), len(toolSpecs))
		}
		for _, name := range toolNames(t, f.connect(era, all, "?features=cohorts", nil)) {
			if !strings.HasPrefix(name, "cohort") {
				t.Fatalf("?features=cohorts lists %s", name)
			}
		}
		if n := toolNames(t, f.connect(era, all, "?tools=flag_get,flags_list", nil)); strings.Join(n, ",") != "flag_get,flags_list" && strings.Join(n, ",") != "flags_list,flag_get" {
			t.Fatalf("?tools=: %v", n)
		}
		for _, name := range toolNames(t, f.connect(era, f.key([]int64{f.team}, admin.ScopeCohortRead), "", nil)) {
			if s := toolByName(name).scope; s != admin.ScopeCohortRead {
				t.Fatalf("a cohort:read key sees %s (%s)", name, s)
			}
		}
	}
	// Refused before MCP: no key, a bad query.
	for _, c := range []struct {
		key, query string
		status     int
	}{{"", "", 401}, {"phx_nope", "", 401}, {all, "?features=nope", 400}, {all, "?tools=nope", 400},
		// A team the key does not reach: its resource updates must not
		// reach this key.
		{all, fmt.Sprintf("?team_id=%d", f.team+1), 404}} {
		req, _ := http.NewRequest(http.MethodPost, f.base+"/mcp"+c.query, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("key %q query %q: %d, want %d", c.key, c.query, resp.StatusCode, c.status)
		}
	}
}

func TestRouteModern(t *testing.T) {
	for _, c := range []struct {
		method, session, version, body string
		want                           bool
	}{
		{"POST", "", "", `{"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`, false},
		{"POST", "", "", `{"method":"server/discover"}`, true},
		{"POST", "", "2026-07-28", `{"method":"tools/list"}`, true},
		{"POST", "", "2025-11-25", `{"method":"tools/list"}`, false},
		{"POST", "abc", "", `{"method":"tools/list"}`, false},
		{"POST", "", "", `{"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, true},
		{"GET", "", "", ``, false},
		{"DELETE", "abc", "", ``, false},
	} {
		r, _ := http.NewRequest(c.method, "/mcp", strings.NewReader(c.body))
		if c.session != "" {
			r.Header.Set("Mcp-Session-Id", c.session)
		}
		if c.version != "" {
			r.Header.Set("Mcp-Protocol-Version", c.version)
		}
		got, err := routeModern(r)
		if err != nil || got != c.want {
			t.Errorf("%s %s %q: %v %v, want %v", c.method, c.version, c.body, got, err, c.want)
		}
	}
}

// TestInMemoryBothEras serves one session on an in-memory transport (what
// vexil mcp serves on stdio) in both eras.
func TestInMemoryBothEras(t *testing.T) {
	f := newFixture(t)
	key := "Bearer " + f.key([]int64{f.team}, admin.ScopeAll)
	for _, era := range eras {
		st, ct := mcp.NewInMemoryTransports()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.mcp.Serve(ctx, st, key, 0, nil, nil) }()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(ctx, ct, &mcp.ClientSessionOptions{ProtocolVersion: era})
		if err != nil {
			t.Fatal(err)
		}
		if got := cs.InitializeResult().ProtocolVersion; got != era {
			t.Fatalf("negotiated %q, want %q", got, era)
		}
		mustTool(t, cs, "flag_create", map[string]any{"key": "mem-" + strings.ReplaceAll(era, "-", "")})
		out := mustTool(t, cs, "flags_list", nil)
		if len(out["flags"].([]any)) == 0 {
			t.Fatalf("flags_list: %v", out)
		}
		_ = cs.Close()
		cancel()
		<-done
	}
}

// TestConfirmation: a delete is confirmed by elicitation where the client
// supports it (during the call in 2025 sessions, by a multi-round-trip
// request in 2026-07-28), by a token otherwise; a bulk change needs
// confirmation; a declined elicitation changes nothing.
func TestConfirmation(t *testing.T) {
	f := newFixture(t)
	key := f.key([]int64{f.team}, admin.ScopeAll)
	answer := "accept"
	elicit := &mcp.ClientOptions{ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		if !strings.Contains(r.Params.Message, "deletes") {
			t.Errorf("elicitation message: %q", r.Params.Message)
		}
		return &mcp.ElicitResult{Action: answer, Content: map[string]any{"confirm": true}}, nil
	}}
	legacy := f.connect("2025-11-25", key, "", elicit)
	mustTool(t, legacy, "flag_create", map[string]any{"key": "doomed"})
	answer = "decline"
	if _, texts, isErr := callTool(t, legacy, "flag_delete", map[string]any{"key": "doomed"}); !isErr || !strings.Contains(texts[0], "not confirmed") {
		t.Fatalf("declined delete: %v", texts)
	}
	mustTool(t, legacy, "flag_get", map[string]any{"key": "doomed"})
	answer = "accept"
	if out := mustTool(t, legacy, "flag_delete", map[string]any{"key": "doomed"}); out["flag"] == nil {
		t.Fatalf("elicited delete: %v", out)
	}
	if _, _, isErr := callTool(t, legacy, "flag_get", map[string]any{"key": "doomed"}); !isErr {
		t.Fatal("the flag is still there after an accepted delete")
	}

	// 2026-07-28: the same through a multi-round-trip request.
	modernAsked := f.connect("2026-07-28", key, "", elicit)
	mustTool(t, modernAsked, "flag_create", map[string]any{"key": "doomed-mrtr"})
	answer = "decline"
	if _, texts, isErr := callTool(t, modernAsked, "flag_delete", map[string]any{"key": "doomed-mrtr"}); !isErr || !strings.Contains(texts[0], "not confirmed") {
		t.Fatalf("declined delete (2026-07-28): %v", texts)
	}
	answer = "accept"
	if out := mustTool(t, modernAsked, "flag_delete", map[string]any{"key": "doomed-mrtr"}); out["flag"] == nil {
		t.Fatalf("elicited delete (2026-07-28): %v", out)
	}

	// A client that cannot be asked: a token.
	modern := f.connect("2026-07-28", key, "", nil)
	mustTool(t, modern, "flag_create", map[string]any{"key": "doomed-too"})
	ask := mustTool(t, modern, "flag_delete", map[string]any{"key": "doomed-too"})
	tok, _ := ask["confirm_token"].(string)
	if tok == "" {
		t.Fatalf("delete without elicitation: %v", ask)
	}
	// The token is bound to the arguments and the key.
	if _, texts, isErr := callTool(t, modern, "flag_delete", map[string]any{"key": "doomed-too", "version": 99, "confirm_token": tok}); !isErr ||
		!strings.Contains(texts[0], "confirm_token") {
		t.Fatalf("a token for other arguments: %v", texts)
	}
	ask = mustTool(t, modern, "flag_delete", map[string]any{"key": "doomed-too"})
	mustTool(t, modern, "flag_delete", map[string]any{"key": "doomed-too", "confirm_token": ask["confirm_token"]})

	// Bulk: more than BulkLimit ids.
	cohort := mustTool(t, modern, "cohort_create", map[string]any{"name": "many", "kind": "static", "is_static": true})
	id := cohort["cohort"].(map[string]any)["id"]
	ids := make([]string, BulkLimit+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%d", i)
	}
	ask = mustTool(t, modern, "cohort_members_add", map[string]any{"cohort_id": id, "distinct_ids": ids})
	if !strings.Contains(fmt.Sprint(ask["confirmation_required"]), "bulk") {
		t.Fatalf("bulk add: %v", ask)
	}
	if out := mustTool(t, modern, "cohort_members_add", map[string]any{"cohort_id": id, "distinct_ids": ids, "confirm_token": ask["confirm_token"]}); out["added"] != float64(BulkLimit+1) {
		t.Fatalf("confirmed bulk add: %v", out)
	}
}

// TestInboxKinds: cohort membership signals (from the signals package's
// stream; a person's and a group's) and findings added with Append reach the inbox beside rollout
// signals.
func TestInboxKinds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.key([]int64{f.team}, admin.ScopeAll)
	cs := f.connect("2026-07-28", key, "", nil)
	if err := f.inbox.Append(ctx, Finding{Team: f.team, Kind: "stale_flag", FlagKey: "old", Summary: "old: no evaluation for 30 days", ID: "stale-old"}); err != nil {
		t.Fatal(err)
	}
	// The same finding again is one signal (its id).
	if err := f.inbox.Append(ctx, Finding{Team: f.team, Kind: "stale_flag", FlagKey: "old", Summary: "old: no evaluation for 30 days", ID: "stale-old"}); err != nil {
		t.Fatal(err)
	}
	sig, _ := json.Marshal(signals.Signal{ID: "s1", Type: "cohort.entered", Team: f.team, Cohort: 7, DistinctID: "u1",
		Direction: signals.Entered, Cause: signals.CauseEvent, Time: time.Unix(1e9, 0)})
	if _, err := f.inbox.js.Publish(ctx, signals.CohortSubject(namespace.Default, f.team), sig); err != nil {
		t.Fatal(err)
	}
	gsig, _ := json.Marshal(signals.Signal{ID: "s2", Type: "cohort.left", Team: f.team, Cohort: 8, GroupType: "company", GroupKey: "acme",
		Direction: signals.Left, Cause: signals.CauseTime, Time: time.Unix(1e9+1, 0)})
	if _, err := f.inbox.js.Publish(ctx, signals.CohortSubject(namespace.Default, f.team), gsig); err != nil {
		t.Fatal(err)
	}
	// Another team's signal is not ours.
	if err := f.inbox.Append(ctx, Finding{Team: f.team + 1, Kind: "stale_flag", Summary: "not yours"}); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for range 300 { // the cohort signal is sourced asynchronously
		out := mustTool(t, cs, "signals_list", nil)
		kinds = kinds[:0]
		for _, s := range out["signals"].([]any) {
			kinds = append(kinds, s.(map[string]any)["kind"].(string)+": "+s.(map[string]any)["summary"].(string))
		}
		if len(kinds) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := "stale_flag: old: no evaluation for 30 days,cohort: u1 entered cohort 7 (event),cohort: company acme left cohort 8 (time)"
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("signals: %q, want %q", got, want)
	}
	if err := f.inbox.Append(ctx, Finding{Team: f.team}); err == nil {
		t.Error("a finding without kind and summary was accepted")
	}
}

// TestBridgeBothEras: a stdio client relayed to /mcp by Bridge (vexil mcp
// --url) works in both eras, and is pushed resource updates.
func TestBridgeBothEras(t *testing.T) {
	f := newFixture(t)
	key := "Bearer " + f.key([]int64{f.team}, admin.ScopeAll)
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			cr, cw := io.Pipe() // client -> bridge
			br, bw := io.Pipe() // bridge -> client
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Bridge(ctx, f.base+"/mcp", key, cr, bw); _ = bw.Close() }()
			updates := make(chan string, 16)
			acked := &ackWatcher{r: br, acked: make(chan struct{})}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, &mcp.ClientOptions{
				ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updates <- r.Params.URI }}).
				Connect(ctx, &mcp.IOTransport{Reader: acked, Writer: cw}, &mcp.ClientSessionOptions{ProtocolVersion: era})
			if err != nil {
				t.Fatal(err)
			}
			if got := cs.InitializeResult().ProtocolVersion; got != era {
				t.Fatalf("negotiated %q, want %q", got, era)
			}
			flagKey := "bridged-" + strings.ReplaceAll(era, "-", "")
			mustTool(t, cs, "flag_create", map[string]any{"key": flagKey})
			got := mustTool(t, cs, "flag_get", map[string]any{"key": flagKey})
			if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "vexil://flags/" + flagKey}); err != nil {
				t.Fatal(err)
			}
			if era >= modern {
				// In 2026-07-28 the go-sdk's Subscribe returns once the
				// subscriptions/listen call is sent, not once the node
				// holds it: a change made before the node's
				// acknowledgement would (rightly) not be notified. CI
				// once lost that race on a loaded machine.
				select {
				case <-acked.acked:
				case <-time.After(30 * time.Second): // a hang guard
					t.Fatal("the subscription was not acknowledged through the bridge")
				}
			}
			// Someone else changes it over MCP directly.
			other := f.connect(era, f.key([]int64{f.team}, admin.ScopeAll), "", nil)
			mustTool(t, other, "flag_update", map[string]any{"key": flagKey, "name": "renamed", "version": got["version"]})
			select {
			case u := <-updates:
				if u != "vexil://flags/"+flagKey {
					t.Fatalf("update for %s", u)
				}
			case <-time.After(30 * time.Second): // a hang guard
				t.Fatal("no update through the bridge")
			}
			// A refused key becomes a JSON-RPC error, not a hang.
			_ = cs.Close()
			cancel()
			<-done
		})
	}
}

// TestCohortsAndEarlyAccess: property and behavioural cohorts, and an
// early access feature moved through its stages, all through MCP.
func TestCohortsAndEarlyAccess(t *testing.T) {
	f := newFixture(t)
	cs := f.connect("2026-07-28", f.key([]int64{f.team}, admin.ScopeAll), "", nil)
	prop := mustTool(t, cs, "cohort_create", map[string]any{"name": "pros", "filters": map[string]any{"properties": map[string]any{
		"type": "AND", "values": []any{map[string]any{"key": "plan", "type": "person", "value": "pro"}}}}})
	if k := prop["cohort"].(map[string]any)["kind"]; k != "property" {
		t.Fatalf("property cohort: %v", prop)
	}
	beh := mustTool(t, cs, "cohort_create", map[string]any{"name": "buyers", "filters": map[string]any{"properties": map[string]any{
		"type": "AND", "values": []any{map[string]any{"key": "checkout", "type": "behavioral", "value": "performed_event_multiple",
			"operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute"}}}}})
	bc := beh["cohort"].(map[string]any)
	if bc["kind"] != "behavioral" {
		t.Fatalf("behavioural cohort: %v", beh)
	}
	dry := mustTool(t, cs, "cohort_update", map[string]any{"cohort_id": bc["id"], "name": "big buyers", "dry_run": true,
		"filters": map[string]any{"properties": map[string]any{"type": "AND", "values": []any{map[string]any{"key": "checkout",
			"type": "behavioral", "value": "performed_event_multiple", "operator": "gte", "operator_value": 3, "time_value": 5, "time_interval": "minute"}}}}})
	if !strings.Contains(mustJSON(dry["diff"]), `"path":"name"`) {
		t.Fatalf("cohort dry run: %v", dry)
	}
	list := mustTool(t, cs, "cohorts_list", nil)
	if n := len(list["cohorts"].([]any)); n != 2 {
		t.Fatalf("cohorts: %v", list)
	}
	ask := mustTool(t, cs, "cohort_delete", map[string]any{"cohort_id": bc["id"]})
	mustTool(t, cs, "cohort_delete", map[string]any{"cohort_id": bc["id"], "confirm_token": ask["confirm_token"]})
	if _, _, isErr := callTool(t, cs, "cohort_get", map[string]any{"cohort_id": bc["id"]}); !isErr {
		t.Fatal("the cohort is still there")
	}

	ea := mustTool(t, cs, "early_access_create", map[string]any{"name": "New editor", "stage": "alpha"})
	if ea["stage"] != "alpha" || ea["flag_key"] == "" {
		t.Fatalf("early access: %v", ea)
	}
	for _, stage := range []string{"beta", "general_availability"} {
		up := mustTool(t, cs, "early_access_update", map[string]any{"feature_id": ea["id"], "stage": stage})
		if up["stage"] != stage {
			t.Fatalf("stage %s: %v", stage, up)
		}
	}
	if got := mustTool(t, cs, "early_access_list", nil); len(got["features"].([]any)) != 1 {
		t.Fatalf("features: %v", got)
	}
	ask = mustTool(t, cs, "early_access_delete", map[string]any{"feature_id": ea["id"]})
	mustTool(t, cs, "early_access_delete", map[string]any{"feature_id": ea["id"], "confirm_token": ask["confirm_token"]})
}

// TestRevokedKeyStopsAtOnce: a session's key revoked mid-session is
// refused on its next call.
func TestRevokedKeyStopsAtOnce(t *testing.T) {
	f := newFixture(t)
	k, secret, err := admin.CreatePersonalKey(context.Background(), f.cat, []int64{f.team}, []string{admin.ScopeAll}, "k", "test")
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.mcp.Serve(ctx, st, "Bearer "+secret, 0, nil, nil) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustTool(t, cs, "flags_list", nil)
	if _, err := f.cat.RevokeKey(context.Background(), k.ID, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, texts, isErr := callTool(t, cs, "flags_list", nil); !isErr || !strings.Contains(texts[0], "unauthenticated") {
		t.Fatalf("a revoked key: %v", texts)
	}
}

// ackWatcher passes a stream through and closes acked once it has carried
// a notifications/subscriptions/acknowledged message.
type ackWatcher struct {
	r     io.ReadCloser
	tail  []byte
	once  sync.Once
	acked chan struct{}
}

func (a *ackWatcher) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		const marker = "notifications/subscriptions/acknowledged"
		buf := append(a.tail, p[:n]...)
		if bytes.Contains(buf, []byte(marker)) {
			a.once.Do(func() { close(a.acked) })
		}
		a.tail = append(a.tail[:0], buf[max(0, len(buf)-len(marker)):]...)
	}
	return n, err
}

func (a *ackWatcher) Close() error { return a.r.Close() }
