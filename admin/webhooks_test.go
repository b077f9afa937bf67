package admin

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/webhooks"
)

func withWebhooks(t *testing.T) envOption {
	ns := natstest.Start(t)
	wh, err := webhooks.Open(context.Background(), ns.JetStream, "", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Webhooks = wh }
}

// TestWebhookEndpointsREST: the webhook calls over REST in PostHog-style
// JSON: the secret shown once, field errors, scopes, teams, status, dead
// letters and redeliver, delete.
func TestWebhookEndpointsREST(t *testing.T) {
	e := newEnv(t, withWebhooks(t))
	team := e.createTeam("hooks").GetId()
	other := e.createTeam("other").GetId()
	admin := e.key([]int64{team}, ScopeTeamAdmin, ScopeTeamRead)
	reader := e.key([]int64{team}, ScopeTeamRead)
	base := "/api/projects/" + strconv.FormatInt(team, 10) + "/webhooks"

	type endpoint struct {
		ID      string   `json:"id"`
		TeamID  int64    `json:"team_id"`
		URL     string   `json:"url"`
		Secret  string   `json:"secret"`
		Scopes  []string `json:"scopes"`
		Cohorts []int64  `json:"cohorts"`
		Enabled bool     `json:"enabled"`
	}
	var created endpoint
	body := map[string]any{"url": "https://hooks.example.com/vexil", "scopes": []string{"cohort.left"}, "cohorts": []int64{4, 9}}
	if code := e.do("POST", base, admin, body, &created); code != 200 {
		t.Fatalf("create: %d", code)
	}
	if created.ID == "" || created.TeamID != team || !strings.HasPrefix(created.Secret, "whsec_") || len(created.Secret) != 54 ||
		!created.Enabled || len(created.Scopes) != 1 || len(created.Cohorts) != 2 || created.Cohorts[1] != 9 {
		t.Fatalf("created %+v", created)
	}
	var got endpoint
	if code := e.do("GET", base+"/"+created.ID, reader, nil, &got); code != 200 || got.ID != created.ID || got.Secret == created.Secret ||
		!strings.HasPrefix(created.Secret, strings.TrimSuffix(got.Secret, "…")) {
		t.Fatalf("get: %d %+v: want the secret redacted", code, got)
	}
	var list struct {
		Results []endpoint `json:"results"`
	}
	if code := e.do("GET", base, reader, nil, &list); code != 200 || len(list.Results) != 1 || list.Results[0].ID != created.ID {
		t.Fatalf("list: %d %+v", code, list)
	}
	var je jerr
	if code := e.do("POST", base, admin, map[string]any{"url": "ftp://x"}, &je); code != 400 || je.reason() != string(errcode.InvalidArgument) || je.meta("field") != "endpoint.url" {
		t.Fatalf("bad url: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("POST", base, admin, map[string]any{"url": "https://x.example", "scopes": []string{"flag.changed"}}, &je); code != 400 || je.meta("field") != "endpoint.scopes[0]" {
		t.Fatalf("bad scope: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("POST", base, reader, body, &je); code != 403 || je.reason() != string(errcode.PermissionDenied) {
		t.Fatalf("create with team:read: %d %+v", code, je)
	}
	je = jerr{}
	if code := e.do("GET", "/api/projects/"+strconv.FormatInt(other, 10)+"/webhooks/"+created.ID, e.root, nil, &je); code != 404 {
		t.Fatalf("another team's endpoint: %d %+v", code, je)
	}
	var up endpoint
	if code := e.do("PUT", base+"/"+created.ID, admin, map[string]any{"url": "https://hooks.example.com/v2", "enabled": false}, &up); code != 200 ||
		up.URL != "https://hooks.example.com/v2" || up.Enabled || len(up.Scopes) != 0 {
		t.Fatalf("update: %d %+v", code, up)
	}
	var st struct {
		EndpointID  string `json:"endpoint_id"`
		Delivered   int64  `json:"delivered"`
		Pending     int64  `json:"pending"`
		DeadLetters int64  `json:"dead_letters"`
	}
	if code := e.do("GET", base+"/"+created.ID+"/status", reader, nil, &st); code != 200 || st.EndpointID != created.ID || st.Delivered != 0 || st.Pending != 0 {
		t.Fatalf("status: %d %+v", code, st)
	}
	var dead struct {
		Results []any `json:"results"`
	}
	if code := e.do("GET", base+"/"+created.ID+"/dead_letters?limit=10", reader, nil, &dead); code != 200 || len(dead.Results) != 0 {
		t.Fatalf("dead letters: %d %+v", code, dead)
	}
	je = jerr{}
	if code := e.do("GET", base+"/"+created.ID+"/dead_letters?limit=501", reader, nil, &je); code != 400 || je.reason() != string(errcode.LimitExceeded) {
		t.Fatalf("dead letters over the limit: %d %+v", code, je)
	}
	var rd struct {
		Queued int32 `json:"queued"`
	}
	if code := e.do("POST", base+"/"+created.ID+"/redeliver", admin, map[string]any{}, &rd); code != 200 || rd.Queued != 0 {
		t.Fatalf("redeliver: %d %+v", code, rd)
	}
	je = jerr{}
	if code := e.do("POST", base+"/"+created.ID+"/redeliver", admin, map[string]any{"seq": 12345}, &je); code != 404 {
		t.Fatalf("redeliver of no dead letter: %d %+v", code, je)
	}
	if code := e.do("DELETE", base+"/"+created.ID, admin, nil, nil); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code := e.do("GET", base+"/"+created.ID, reader, nil, nil); code != 404 {
		t.Fatalf("get after delete: %d", code)
	}
}

// TestWebhooksUnavailable: a server without webhooks says so.
func TestWebhooksUnavailable(t *testing.T) {
	e := newEnv(t)
	team := e.createTeam("hooks").GetId()
	var je jerr
	if code := e.do("GET", "/api/projects/"+strconv.FormatInt(team, 10)+"/webhooks", e.root, nil, &je); code != 503 || je.reason() != string(errcode.Unavailable) {
		t.Fatalf("list: %d %+v", code, je)
	}
}
