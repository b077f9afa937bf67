package mcpsvc

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/admin"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// The security table of admin/security_test.go, through MCP (that test
// lives in package admin, which cannot import this one): every tool with a
// key lacking its scope is hidden and refused, and every tool naming
// another team's records reveals nothing of them.

const markSecret = "secret-marker-of-team-a"

// secFixture: team A holds a flag, a cohort and a feature named with the
// marker; team B is another team.
type secFixture struct {
	*fixture
	teamA, teamB int64
	cohortA      int64
	featureA     string
}

func newSecFixture(t *testing.T) *secFixture {
	f := newFixture(t)
	fx := &secFixture{fixture: f, teamA: f.team}
	ctx := context.Background()
	root := "Bearer " + f.root
	run := func(method string, req any, fn func(context.Context, any) (any, error)) any {
		out, err := f.svc.Invoke(ctx, root, admin.Method(method), req, fn)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out
	}
	run("CreateFlag", &adminv1.CreateFlagRequest{TeamId: fx.teamA, Flag: &adminv1.FlagInput{Key: markSecret, Name: markSecret, Active: true}},
		func(ctx context.Context, r any) (any, error) {
			return f.svc.CreateFlag(ctx, r.(*adminv1.CreateFlagRequest))
		})
	c := run("CreateCohort", &adminv1.CreateCohortRequest{TeamId: fx.teamA, Cohort: &adminv1.CohortInput{Name: markSecret, Kind: adminv1.CohortKind_COHORT_KIND_STATIC}},
		func(ctx context.Context, r any) (any, error) {
			return f.svc.CreateCohort(ctx, r.(*adminv1.CreateCohortRequest))
		})
	fx.cohortA = c.(*adminv1.CreateCohortResponse).GetCohort().GetId()
	ea := run("CreateEarlyAccessFeature", &adminv1.CreateEarlyAccessFeatureRequest{TeamId: fx.teamA, Name: markSecret, FlagKey: markSecret + "-eaf"},
		func(ctx context.Context, r any) (any, error) {
			return f.svc.CreateEarlyAccessFeature(ctx, r.(*adminv1.CreateEarlyAccessFeatureRequest))
		})
	fx.featureA = ea.(*adminv1.CreateEarlyAccessFeatureResponse).GetFeature().GetId()
	tb := run("CreateTeam", &adminv1.CreateTeamRequest{Name: "other"},
		func(ctx context.Context, r any) (any, error) {
			return f.svc.CreateTeam(ctx, r.(*adminv1.CreateTeamRequest))
		})
	fx.teamB = tb.(*adminv1.CreateTeamResponse).GetTeam().GetId()
	return fx
}

// args are valid arguments for any tool aimed at team A's records, cut
// to the tool's input schema.
func (fx *secFixture) args(tool *mcp.Tool) map[string]any {
	all := map[string]any{
		"team_id": fx.teamA, "key": markSecret, "cohort_id": fx.cohortA, "feature_id": fx.featureA, "job_id": "job",
		"distinct_id": "u1", "distinct_ids": []string{"u1"}, "cursor": 1, "index": 0, "rollout_percentage": 10,
		"condition": map[string]any{"rollout_percentage": 10}, "definition": map[string]any{"active": true}, "order": []int{0}, "overrides": []any{}, "name": "n", "stage": "beta",
		"stale_after_days": 14, "resolution": "hour", "days": 7,
	}
	b, _ := json.Marshal(tool.InputSchema)
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	_ = json.Unmarshal(b, &schema)
	out := map[string]any{}
	for k := range schema.Properties {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}

// session opens an in-memory session as key; showAll lists every tool.
func (fx *secFixture) session(t *testing.T, key string, showAll bool) *mcp.ClientSession {
	t.Helper()
	caller, err := fx.svc.Authenticate(context.Background(), "Bearer "+key)
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fx.mcp.serveSession(ctx, st, &session{auth: "Bearer " + key, caller: caller, team: fx.teamA, showAll: showAll})
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(); cancel(); <-done })
	return cs
}

func tools(t *testing.T, cs *mcp.ClientSession) map[string]*mcp.Tool {
	out := map[string]*mcp.Tool{}
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		out[tool.Name] = tool
	}
	return out
}

func TestEveryToolRefusedWithoutItsScope(t *testing.T) {
	fx := newSecFixture(t)
	all := tools(t, fx.session(t, fx.root, true))
	if len(all) != len(toolSpecs) {
		t.Fatalf("%d tools listed, want %d", len(all), len(toolSpecs))
	}
	for _, spec := range toolSpecs {
		var scopes []string
		for _, s := range admin.Scopes {
			if s != spec.scope {
				scopes = append(scopes, s)
			}
		}
		key := fx.key([]int64{fx.teamA}, scopes...)
		if _, ok := tools(t, fx.session(t, key, false))[spec.name]; ok {
			t.Errorf("%s is listed for a key without %s", spec.name, spec.scope)
		}
		_, texts, isErr := callTool(t, fx.session(t, key, true), spec.name, fx.args(all[spec.name]))
		if !isErr || !strings.Contains(texts[0], `"code":"permission_denied"`) {
			t.Errorf("%s without %s: %v", spec.name, spec.scope, texts)
		}
	}
}

func TestNoToolRevealsAnotherTeam(t *testing.T) {
	fx := newSecFixture(t)
	other := fx.key([]int64{fx.teamB}, admin.ScopeAll)
	all := tools(t, fx.session(t, fx.root, true))
	cs := fx.session(t, other, true)
	for name, tool := range all {
		_, texts, isErr := callTool(t, cs, name, fx.args(tool))
		joined := strings.Join(texts, " ")
		if !isErr || strings.Contains(joined, markSecret) || !strings.Contains(joined, `"code":"not_found"`) {
			t.Errorf("%s naming team A with team B's key: %v", name, texts)
		}
	}
	// The flag resource too.
	if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "vexil://flags/" + markSecret}); err == nil ||
		strings.Contains(err.Error(), `"name"`) {
		t.Errorf("reading team A's flag with team B's key: %v", err)
	}
	// Every tool was tried.
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) != len(toolSpecs) {
		t.Errorf("tried %v", names)
	}
}

// TestUsageToolsAsREST: the usage tools take the REST routes' scopes
// (flag:read to read, flag:write for the setting), the read ones are
// annotated read-only, and a key of the team reads them.
func TestUsageToolsAsREST(t *testing.T) {
	fx := newSecFixture(t)
	want := map[string]string{"usage_flag": admin.ScopeFlagRead, "usage_summary": admin.ScopeFlagRead,
		"usage_findings": admin.ScopeFlagRead, "usage_settings_get": admin.ScopeFlagRead, "usage_settings_set": admin.ScopeFlagWrite}
	all := tools(t, fx.session(t, fx.root, true))
	for name, scope := range want {
		spec, tool := toolByName(name), all[name]
		if spec == nil || tool == nil || spec.scope != scope || spec.feature != "usage" {
			t.Fatalf("%s: spec %+v", name, spec)
		}
		if ro := tool.Annotations != nil && tool.Annotations.ReadOnlyHint; ro != (scope == admin.ScopeFlagRead) {
			t.Errorf("%s: read-only hint %v", name, ro)
		}
	}
	reader := fx.session(t, fx.key([]int64{fx.teamA}, admin.ScopeFlagRead), false)
	if out := mustTool(t, reader, "usage_flag", map[string]any{"key": markSecret}); out["flag_key"] != markSecret || out["status"] != "ACTIVE" {
		t.Errorf("usage_flag with flag:read: %v", out)
	}
	if _, texts, isErr := callTool(t, reader, "usage_flag", map[string]any{"key": markSecret, "resolution": "week"}); !isErr ||
		!strings.Contains(texts[0], `"field":"resolution"`) {
		t.Errorf("a bad resolution: %v", texts)
	}
	if _, texts, isErr := callTool(t, reader, "usage_summary", map[string]any{"days": 91}); !isErr || !strings.Contains(texts[0], `"field":"days"`) {
		t.Errorf("91 days: %v", texts)
	}
	writer := fx.session(t, fx.key([]int64{fx.teamA}, admin.ScopeFlagRead, admin.ScopeFlagWrite), false)
	dry := mustTool(t, writer, "usage_settings_set", map[string]any{"stale_after_days": 14, "dry_run": true})
	if mustJSON(dry["diff"]) != `[{"after":14,"before":30,"path":"stale_after_days"}]` {
		t.Errorf("dry run: %v", dry)
	}
	if got := mustTool(t, writer, "usage_settings_get", nil); got["stale_after_days"] != 30.0 {
		t.Errorf("a dry run saved: %v", got)
	}
	mustTool(t, writer, "usage_settings_set", map[string]any{"stale_after_days": 14})
	if got := mustTool(t, reader, "usage_settings_get", nil); got["stale_after_days"] != 14.0 {
		t.Errorf("after usage_settings_set: %v", got)
	}
	if _, texts, isErr := callTool(t, writer, "usage_settings_set", map[string]any{"stale_after_days": 366}); !isErr || !strings.Contains(texts[0], `"field":"stale_after_days"`) {
		t.Errorf("366 days: %v", texts)
	}
}
