package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// env is a management API on a memory catalog with the UI mounted, as
// vexil admin runs it.
type env struct {
	base   string
	client adminv1.AdminServiceClient
	root   string // an instance-wide key with every scope
	ui     *Handler
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil, nil) }

// newEnvWith is newEnv with usage statistics: fu gives the management
// API's flag reads their status and last evaluation, us the UI's charts.
func newEnvWith(t *testing.T, fu admin.FlagUsage, us UsageSource) *env {
	t.Helper()
	return newEnvConfig(t, admin.Config{FlagUsage: fu}, us)
}

// newEnvConfig is newEnv with the management API's cfg (its Catalog is
// set here) and usage statistics us.
func newEnvConfig(t *testing.T, cfg admin.Config, us UsageSource) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cat := memcatalog.New(memcatalog.Config{})
	cfg.Catalog = cat
	svc, err := admin.New(cfg)
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
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ui, err := New(Config{Client: adminv1.NewAdminServiceClient(conn), Identify: svc.Identify, Usage: us})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, GRPCListener: gl, HTTPListener: hl, Routes: ui.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		_ = conn.Close()
	})
	_, root, err := admin.CreatePersonalKey(ctx, cat, nil, []string{admin.ScopeAll}, "root", "test")
	if err != nil {
		t.Fatal(err)
	}
	return &env{base: "http://" + srv.HTTPAddr(), client: adminv1.NewAdminServiceClient(conn), root: root, ui: ui}
}

func (e *env) as(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: e.base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, string(data), resp.Header.Get("Location")
}

func (b *browser) signIn(key string) {
	b.t.Helper()
	code, _, loc := b.do("POST", "/ui/login", url.Values{"key": {key}, "next": {"/ui/"}})
	if code != http.StatusSeeOther || loc != "/ui/" {
		b.t.Fatalf("sign in: %d %q", code, loc)
	}
}

func TestSessionsScopesAndTeams(t *testing.T) {
	e := newEnv(t)
	ctx := e.as(e.root)
	t1, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := e.client.CreateTeam(ctx, &adminv1.CreateTeamRequest{Name: "two"})
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := t1.GetTeam().GetId(), t2.GetTeam().GetId()
	f2, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: id2, Flag: &adminv1.FlagInput{Key: "theirs", Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	f1, err := e.client.CreateFlag(ctx, &adminv1.CreateFlagRequest{TeamId: id1, Flag: &adminv1.FlagInput{Key: "ours", Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := e.client.CreatePersonalKey(ctx, &adminv1.CreatePersonalKeyRequest{Label: "ro", Scopes: []string{"flag:read", "team:read"}, Teams: []int64{id1}})
	if err != nil {
		t.Fatal(err)
	}

	anon := e.browser(t)
	if code, _, loc := anon.do("GET", "/", nil); code != http.StatusSeeOther || loc != "/ui/" {
		t.Fatalf("/: %d %q", code, loc)
	}
	if code, _, loc := anon.do("GET", fmt.Sprintf("/ui/t/%d/flags", id1), nil); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login?next=") {
		t.Fatalf("signed out: %d %q", code, loc)
	}
	if code, body, _ := anon.do("POST", "/ui/login", url.Values{"key": {"phx_nope"}}); code != http.StatusUnauthorized || !strings.Contains(body, "was not accepted") {
		t.Fatalf("bad key: %d", code)
	}

	b := e.browser(t)
	b.signIn(ro.GetSecret())
	if code, body, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/flags", id1), nil); code != 200 || strings.Contains(body, `data-testid="new-flag"`) || !strings.Contains(body, "ours") {
		t.Fatalf("read-only list: %d, new-flag shown or flag missing", code)
	} else if strings.Contains(body, "/keys\"") || strings.Contains(body, "/cohorts\"") {
		t.Fatal("the navigation links pages the key cannot read")
	}
	if code, _, _ := b.do("GET", fmt.Sprintf("/ui/t/%d/flags/%d", id2, f2.GetFlag().GetId()), nil); code != http.StatusNotFound {
		t.Fatalf("another team's flag: %d, want 404", code)
	}
	state := fmt.Sprintf("/ui/t/%d/flags/%d/state", id1, f1.GetFlag().GetId())
	if code, _, _ := b.do("POST", state, url.Values{"csrf": {b.csrf}, "op": {"disable"}, "version": {"1"}}); code != http.StatusForbidden {
		t.Fatalf("forged write: %d, want 403", code)
	}
	if code, _, _ := b.do("POST", state, url.Values{"op": {"disable"}, "version": {"1"}}); code != http.StatusForbidden {
		t.Fatalf("write without CSRF: %d, want 403", code)
	}

	admin := e.browser(t)
	admin.signIn(e.root)
	if code, _, _ := admin.do("POST", state, url.Values{"op": {"disable"}, "version": {"1"}}); code != http.StatusForbidden {
		t.Fatalf("admin write without CSRF: %d, want 403", code)
	}
	if code, _, loc := admin.do("POST", state, url.Values{"csrf": {admin.csrf}, "op": {"disable"}, "version": {"1"}}); code != http.StatusSeeOther || !strings.HasSuffix(loc, fmt.Sprint(f1.GetFlag().GetId())) {
		t.Fatalf("admin write: %d %q", code, loc)
	}
	got, _ := e.client.GetFlag(ctx, &adminv1.GetFlagRequest{TeamId: id1, FlagId: f1.GetFlag().GetId()})
	if got.GetFlag().GetActive() {
		t.Fatal("the flag is still active")
	}
	if code, _, _ := admin.do("POST", "/ui/logout", url.Values{"csrf": {admin.csrf}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := admin.do("GET", fmt.Sprintf("/ui/t/%d/flags", id1), nil); code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", code)
	}

	// A login link works once.
	path, _, err := e.ui.NewLoginLink(e.root)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(path, "/ui/login/link?t=")
	tok, _ = url.QueryUnescape(tok)
	l := e.browser(t)
	if code, _, _ := l.do("POST", "/ui/login/link", url.Values{"t": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("login link: %d", code)
	}
	if code, _, _ := e.browser(t).do("POST", "/ui/login/link", url.Values{"t": {tok}}); code != http.StatusUnauthorized {
		t.Fatalf("login link used twice: %d", code)
	}
	// POST /ui/login-links: for the caller's own key.
	req, _ := http.NewRequest("POST", e.base+"/ui/login-links", nil)
	req.Header.Set("Authorization", "Bearer "+ro.GetSecret())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Path string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(out.Path, "/ui/login/link?t=") {
		t.Fatalf("login-links: %d %q", resp.StatusCode, out.Path)
	}
}

func TestEditorKeepsEveryFeature(t *testing.T) {
	filters := `{"groups":[
	  {"properties":[{"key":"plan","type":"person","operator":"exact","value":["pro","team"]},
	                 {"key":"id","type":"cohort","operator":"in","value":7},
	                 {"key":"base","type":"flag","operator":"flag_evaluates_to","value":true},
	                 {"key":"signup","type":"person","operator":"is_date_after","value":"-30d"},
	                 {"key":"app","type":"person","operator":"semver_gte","value":"1.2.0"}],
	   "rollout_percentage":30,"variant":"b","aggregation_group_type_index":null},
	  {"properties":[{"key":"employees","type":"group","group_type_index":0,"operator":"gt","value":100}],
	   "rollout_percentage":30,"aggregation_group_type_index":0}],
	 "multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","name":"B","rollout_percentage":50}]},
	 "payloads":{"a":"{\"x\":1}"},
	 "holdout":{"id":3}}`
	var m map[string]any
	if err := json.Unmarshal([]byte(filters), &m); err != nil {
		t.Fatal(err)
	}
	st, _ := structpb.NewStruct(m)
	g := int32(0)
	f := &adminv1.FeatureFlag{Id: 5, Version: 2, Key: "k", Name: "K", Active: true, Tags: []string{"x", "y"},
		EnsureExperienceContinuity: true, Filters: st,
		Overrides: []*adminv1.Override{{DistinctIds: []string{"u1", "u2"}, Value: structpb.NewStringValue("a")},
			{GroupTypeIndex: &g, GroupKeys: []string{"acme"}, Value: structpb.NewBoolValue(false)}}}
	ff := formOf(f)
	// As the browser sends the rendered form back.
	v := url.Values{"id": {"5"}, "version": {"2"}, "base": {ff.Base}, "extra": {ff.Extra}, "key": {ff.Key}, "name": {ff.Name},
		"tags": {ff.Tags}, "active": {"on"}, "continuity": {"on"}, "payload_true": {ff.PayloadTrue},
		"conds": {fmt.Sprint(len(ff.Conditions))}, "variants": {fmt.Sprint(len(ff.Variants))}, "overrides": {fmt.Sprint(len(ff.Overrides))}}
	for i, c := range ff.Conditions {
		p := fmt.Sprintf("c%d.", i)
		v.Set(p+"target", c.Target)
		v.Set(p+"rollout", c.Rollout)
		v.Set(p+"variant", c.Variant)
		v.Set(p+"filters", fmt.Sprint(len(c.Filters)))
		for j, fl := range c.Filters {
			q := fmt.Sprintf("%sf%d.", p, j)
			v.Set(q+"kind", fl.Kind)
			v.Set(q+"key", fl.Key)
			v.Set(q+"op", fl.Op)
			v.Set(q+"value", fl.Value)
		}
	}
	for i, x := range ff.Variants {
		p := fmt.Sprintf("v%d.", i)
		v.Set(p+"key", x.Key)
		v.Set(p+"name", x.Name)
		v.Set(p+"rollout", x.Rollout)
		v.Set(p+"payload", x.Payload)
	}
	for i, o := range ff.Overrides {
		p := fmt.Sprintf("o%d.", i)
		v.Set(p+"target", o.Target)
		v.Set(p+"ids", o.IDs)
		v.Set(p+"value", o.Value)
	}
	back, _ := parseFlagForm(v)
	in := back.input()
	if in == nil {
		t.Fatalf("refused: %v %v", back.Errors, back.Problems)
	}
	if ch := diff(comparable(f), comparable(in)); len(ch) != 0 {
		t.Fatalf("a round trip through the editor changed the flag: %+v", ch)
	}
}

func TestEditorRefusesInPlace(t *testing.T) {
	v := url.Values{"key": {"k"}, "conds": {"1"}, "c0.target": {"persons"}, "c0.rollout": {"130"}, "c0.filters": {"4"},
		"c0.f0.kind": {"property"}, "c0.f0.key": {"n"}, "c0.f0.op": {"gt"}, "c0.f0.value": {"ten"},
		"c0.f1.kind": {"property"}, "c0.f1.key": {"d"}, "c0.f1.op": {"is_date_before"}, "c0.f1.value": {"yesterday"},
		"c0.f2.kind": {"property"}, "c0.f2.key": {"r"}, "c0.f2.op": {"regex"}, "c0.f2.value": {"(a"},
		"c0.f3.kind": {"property"}, "c0.f3.key": {"v"}, "c0.f3.op": {"semver_gt"}, "c0.f3.value": {"one"},
		"variants": {"2"}, "v0.key": {"a"}, "v0.rollout": {"50"}, "v0.payload": {"{nope"}, "v1.key": {"a"}, "v1.rollout": {"50"}}
	ff, _ := parseFlagForm(v)
	if ff.input() != nil {
		t.Fatal("accepted")
	}
	for _, field := range []string{"c0.rollout", "c0.f0.value", "c0.f1.value", "c0.f2.value", "c0.f3.value", "v0.payload", "v1.key"} {
		if ff.Errors[field] == "" {
			t.Errorf("%s: no error in place; errors: %v", field, ff.Errors)
		}
	}
	if len(ff.Errors) != 7 {
		t.Errorf("errors: %v", ff.Errors)
	}
}

func TestFieldPath(t *testing.T) {
	for api, want := range map[string]string{
		"filters.groups[1].properties[0].value":          "c1.f0.value",
		"filters.groups[0].properties[2].operator":       "c0.f2.op",
		"filters.groups[3].rollout_percentage":           "c3.rollout",
		"filters.groups[0].aggregation_group_type_index": "c0.target",
		"filters.multivariate.variants[1].key":           "v1.key",
		"overrides[2].distinct_ids":                      "o2.ids",
		"key":                                            "key",
		"team_id":                                        "",
	} {
		if got := fieldPath(api); got != want {
			t.Errorf("fieldPath(%q) = %q, want %q", api, got, want)
		}
	}
}

func TestReadCSV(t *testing.T) {
	ids, err := readCSV(strings.NewReader("distinct_id,note\nu1,a\n\n\"u,2\",b\nu3\n"))
	if err != nil || strings.Join(ids, "|") != "u1|u,2|u3" {
		t.Fatalf("%q %v", ids, err)
	}
	if _, err := readCSV(strings.NewReader("distinct_id\n")); err == nil {
		t.Fatal("an empty file was accepted")
	}
	if _, err := readCSV(strings.NewReader("ok\n" + strings.Repeat("x", maxIDBytes+1) + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a long id: %v", err)
	}
}

func TestSessionsExpire(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSessions(func() time.Time { return now }, time.Hour, time.Minute, 2)
	tok, _, err := s.newLink("phx_a")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, ok := s.useLink(tok); ok {
		t.Fatal("an expired link worked")
	}
	for range 2 {
		if _, err := s.create("phx_a"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.create("phx_a"); err != errFull {
		t.Fatalf("past the bound: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.create("phx_a"); err != nil {
		t.Fatalf("expired sessions were not reclaimed: %v", err)
	}
}

func TestCohortsThroughTheUI(t *testing.T) {
	e := newEnv(t)
	tm, err := e.client.CreateTeam(e.as(e.root), &adminv1.CreateTeamRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("/ui/t/%d/cohorts", tm.GetTeam().GetId())
	b := e.browser(t)
	b.signIn(e.root)
	b.do("GET", base, nil)
	// Bad JSON is refused in place and the text typed is kept.
	code, body, _ := b.do("POST", base, url.Values{"csrf": {b.csrf}, "name": {"Pro"}, "kind": {"property"}, "filters": {`{"properties":`}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="filters-err"`) || !strings.Contains(body, `{&#34;properties&#34;:`) {
		t.Fatalf("bad filters: %d", code)
	}
	code, _, loc := b.do("POST", base, url.Values{"csrf": {b.csrf}, "name": {"Pro"}, "kind": {"property"},
		"filters": {`{"properties":{"type":"AND","values":[{"key":"plan","type":"person","operator":"exact","value":["pro"]}]}}`}})
	if code != http.StatusSeeOther {
		t.Fatalf("property cohort: %d", code)
	}
	code, body, _ = b.do("GET", loc, nil)
	if code != 200 || !strings.Contains(body, "property") || !strings.Contains(body, "plan") {
		t.Fatalf("cohort page: %d", code)
	}
	// The engine refuses what it cannot run, named by its field.
	code, body, _ = b.do("POST", base, url.Values{"csrf": {b.csrf}, "name": {"Odd"}, "kind": {"behavioral"},
		"filters": {`{"properties":{"type":"OR","values":[{"type":"behavioral","key":"x","value":"performed_event","time_value":400,"time_interval":"day"}]}}`}})
	if code == http.StatusSeeOther || !strings.Contains(body, `id="filters-err"`) {
		t.Fatalf("a behavioural cohort over 90 days: %d", code)
	}
}
