package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

const token = "phc_capture_test"

var now = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)

type fakeMappings struct {
	mu    sync.Mutex
	m     map[string]string
	block chan struct{} // when set, GetMapping waits for it
	err   error
}

func (f *fakeMappings) GetMapping(ctx context.Context, team int64, did string) (store.Mapping, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return store.Mapping{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return store.Mapping{}, f.err
	}
	if pid, ok := f.m[did]; ok {
		return store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: 1}, nil
	}
	return store.Mapping{}, store.ErrNotFound
}

type fixture struct {
	nats *natstest.Server
	js   jetstream.JetStream
	maps *fakeMappings
	h    http.Handler
	cap  *Handler
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	ns := natstest.Start(t)
	ctx := context.Background()
	if _, err := ns.JetStream.CreateStream(ctx, projector.IngestStreamConfig(projector.StreamName(namespace.Default), namespace.Default)); err != nil {
		t.Fatal(err)
	}
	f := &fixture{nats: ns, js: ns.JetStream, maps: &fakeMappings{m: map[string]string{"known": "p-known"}}}
	cfg.Projects = func(_ context.Context, tok string) (Project, error) {
		if tok != token {
			return Project{}, errcode.Field(errcode.Unauthenticated, "token", "the project token is not valid").With("posthog_code", "invalid_token")
		}
		return Project{Team: 7, GroupTypes: map[int]string{0: "company", 1: "org"}}, nil
	}
	cfg.Mappings = f.maps
	cfg.JetStream = ns.JetStream
	cfg.Conn = ns.Conn
	cfg.Now = func() time.Time { return now }
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.cap = h
	mux := http.NewServeMux()
	for p, hh := range h.Routes() {
		mux.Handle(p, hh)
	}
	f.h = mux
	return f
}

func (f *fixture) do(t testing.TB, method, target string, body []byte, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// published returns every ingest message in the stream, decoded.
func (f *fixture) published(t *testing.T) []*ingestv1.Envelope {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, projector.StreamName(namespace.Default))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ingestv1.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		env, err := ingest.Decode(namespace.Default, m.Subject, m.Header.Get(ingest.HeaderContentType), m.Data, ingest.Limits{})
		if err != nil {
			t.Fatalf("message %d on %s is not a valid ingest message: %v", seq, m.Subject, err)
		}
		out = append(out, env)
	}
	return out
}

// summary is one line per message, to compare with what is expected.
func summary(envs []*ingestv1.Envelope) []string {
	var out []string
	for _, env := range envs {
		switch k := env.Kind.(type) {
		case *ingestv1.Envelope_PersonUpdate:
			pu := k.PersonUpdate
			out = append(out, "person "+pu.PersonId+" ids="+strings.Join(pu.DistinctIds, ",")+" set="+props(pu.Set)+" once="+props(pu.SetOnce))
		case *ingestv1.Envelope_PersonMerge:
			pm := k.PersonMerge
			out = append(out, "merge "+pm.PersonId+" ids="+strings.Join(pm.DistinctIds, ",")+" kind="+pm.MergeKind.String())
		case *ingestv1.Envelope_GroupUpdate:
			g := k.GroupUpdate
			out = append(out, "group "+string(rune('0'+g.GroupTypeIndex))+"/"+g.GroupKey+" set="+props(g.Set))
		case *ingestv1.Envelope_Event:
			out = append(out, "event "+k.Event.DistinctId+" "+k.Event.Event)
		}
	}
	return out
}

func props(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("published:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// posthog-node and posthog-python post {"api_key", "batch": [...]} to
// /batch/: identify, an event of the identified person, a $set on a known
// person, a group identify.
func TestServerSDKBatch(t *testing.T) {
	f := newFixture(t, Config{})
	body := `{"api_key":"` + token + `","sent_at":"2026-12-06T04:00:00Z","batch":[
	 {"event":"$identify","distinct_id":"user-1","properties":{"$anon_distinct_id":"anon-1","$set":{"plan":"pro"},"$set_once":{"first":"x"}},"timestamp":"2026-12-06T03:59:59Z","uuid":"01938c3f-0000-7000-8000-000000000001"},
	 {"event":"purchase","distinct_id":"user-1","properties":{"amount":12.50},"timestamp":"2026-12-06T03:59:59.5Z","uuid":"01938c3f-0000-7000-8000-000000000002"},
	 {"event":"$set","distinct_id":"known","properties":{"$set":{"seats":5.0}},"timestamp":"2026-12-06T03:59:59.6Z"},
	 {"event":"$groupidentify","distinct_id":"$company_acme","properties":{"$group_type":"company","$group_key":"acme","$group_set":{"employees":250}}},
	 {"event":"$groupidentify","distinct_id":"$team_x","properties":{"$group_type":"team","$group_key":"x","$group_set":{"a":1}}}
	]}`
	res, out := f.do(t, http.MethodPost, "/batch/", []byte(body), "Content-Type", "application/json")
	if res.StatusCode != 200 || out != `{"status":1}` {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	p1 := PersonID(7, "user-1")
	envs := f.published(t)
	equal(t, summary(envs), []string{
		"merge " + p1 + " ids=user-1,anon-1 kind=MERGE_KIND_IDENTIFY",
		"person " + p1 + " ids= set={\"plan\":\"\\\"pro\\\"\"} once={\"first\":\"\\\"x\\\"\"}",
		"event user-1 $identify",
		"event user-1 purchase",
		"person p-known ids= set={\"seats\":\"5.0\"} once=null",
		"event known $set",
		"group 0/acme set={\"employees\":\"250\"}",
		"event $company_acme $groupidentify",
		"event $team_x $groupidentify", // a group type the team has not named: no group update
	})
	// Versions: the client's time corrected by sent_at (here equal to the
	// server's clock), in microseconds, plus the index in the batch.
	merge := envs[0].GetPersonMerge()
	if want := now.Add(-time.Second).UnixMilli() * 1000; merge.GetVersion() != want {
		t.Errorf("identify version %d, want %d", merge.GetVersion(), want)
	}
	if got, want := envs[4].GetPersonUpdate().GetVersion(), now.Add(-400*time.Millisecond).UnixMilli()*1000+2; got != want {
		t.Errorf("$set version %d, want %d", got, want)
	}
	if ev := envs[3].GetEvent(); ev.GetUuid() != "01938c3f-0000-7000-8000-000000000002" || ev.GetProperties()["amount"] != "12.50" {
		t.Errorf("event %v", ev)
	}
	if envs[5].GetEvent().GetUuid() == "" {
		t.Errorf("an event without a uuid gets one")
	}
}

// A client whose clock is an hour ahead: its times are corrected by
// sent_at, and a time still in the future is the server's now.
func TestClockSkew(t *testing.T) {
	f := newFixture(t, Config{})
	ahead := now.Add(time.Hour)
	body := `{"api_key":"` + token + `","sent_at":"` + ahead.Format(time.RFC3339Nano) + `","batch":[
	 {"event":"a","distinct_id":"known","timestamp":"` + ahead.Add(-2*time.Second).Format(time.RFC3339Nano) + `"}]}`
	if res, out := f.do(t, http.MethodPost, "/batch/", []byte(body)); res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	body = `{"api_key":"` + token + `","batch":[{"event":"b","distinct_id":"known","timestamp":"` + ahead.Format(time.RFC3339Nano) + `"}]}`
	if res, out := f.do(t, http.MethodPost, "/batch/", []byte(body)); res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	envs := f.published(t)
	if got := envs[0].GetEvent().GetTimestamp().AsTime(); !got.Equal(now.Add(-2 * time.Second)) {
		t.Errorf("corrected time %v, want %v", got, now.Add(-2*time.Second))
	}
	if got := envs[1].GetEvent().GetTimestamp().AsTime(); !got.Equal(now) {
		t.Errorf("a future time without sent_at: %v, want the server's now %v", got, now)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// posthog-js's encodings: JSON, gzip-js, base64 in a form, GET data=, all
// with the token in each event's properties.
func TestBrowserEncodings(t *testing.T) {
	f := newFixture(t, Config{})
	events := `[{"event":"$pageview","properties":{"distinct_id":"known","token":"` + token + `","$current_url":"http://x/"},"timestamp":"2026-12-06T03:59:00Z","uuid":"01938c3f-0000-7000-8000-0000000000aa"}]`
	b64 := base64.StdEncoding.EncodeToString([]byte(events))
	cases := []struct {
		name, target string
		body         []byte
		hdr          []string
	}{
		{"json", "/e/?ip=1&_=1765000000000&ver=1.0", []byte(events), []string{"Content-Type", "application/json"}},
		{"gzip-js", "/i/v0/e/?compression=gzip-js", gz([]byte(events)), []string{"Content-Type", "text/plain"}},
		{"content-encoding", "/capture/", gz([]byte(events)), []string{"Content-Encoding", "gzip"}},
		{"gzip unannounced", "/i/v0/e/", gz([]byte(events)), []string{"Content-Type", "text/plain"}},
		{"json as a form", "/e/", []byte(events), []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"base64 form", "/e/", []byte("data=" + url.QueryEscape(b64) + "&compression=base64"), []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"base64 body", "/track?compression=base64", []byte(b64), nil},
		{"get", "/e/?data=" + url.QueryEscape(b64), nil, nil},
	}
	for _, c := range cases {
		res, out := f.do(t, map[bool]string{true: http.MethodGet, false: http.MethodPost}[c.name == "get"], c.target, c.body, c.hdr...)
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d: %s", c.name, res.StatusCode, out)
		}
	}
	envs := f.published(t)
	// One event per request; JetStream drops the copies of one uuid inside
	// its duplicate window, as it drops an SDK's retry.
	equal(t, summary(envs), []string{"event known $pageview"})
	if got := envs[0].GetEvent().GetProperties(); got["$current_url"] != `"http://x/"` || got["token"] != "" {
		t.Errorf("properties %v", got)
	}
}

// /engage/ (legacy person updates) and a new distinct id's first event.
func TestEngageAndNewPerson(t *testing.T) {
	f := newFixture(t, Config{})
	if res, out := f.do(t, http.MethodPost, "/engage/", []byte(`{"$token":"`+token+`","$distinct_id":"known","$set":{"plan":"team"}}`)); res.StatusCode != 200 {
		t.Fatalf("engage: %d %s", res.StatusCode, out)
	}
	if res, out := f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"signup","distinct_id":"newbie"}`)); res.StatusCode != 200 {
		t.Fatalf("e: %d %s", res.StatusCode, out)
	}
	if res, out := f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"anon","distinct_id":"ghost","properties":{"$process_person_profile":false}}`)); res.StatusCode != 200 {
		t.Fatalf("e: %d %s", res.StatusCode, out)
	}
	equal(t, summary(f.published(t)), []string{
		`person p-known ids= set={"plan":"\"team\""} once=null`,
		"person " + PersonID(7, "newbie") + " ids=newbie set=null once=null",
		"event newbie signup",
		"event ghost anon",
	})
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, Config{MaxBodyBytes: 4096, MaxEvents: 3, TeamRate: 1, TeamBurst: 5})
	ev := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"event":"e","distinct_id":"known"}`
		}
		return `{"api_key":"` + token + `","batch":[` + strings.Join(parts, ",") + `]}`
	}
	cases := []struct {
		name, target, body string
		status             int
		code, attr         string
	}{
		{"no token", "/batch/", `{"batch":[{"event":"e","distinct_id":"d"}]}`, 401, "no_token", "token"},
		{"bad token", "/batch/", `{"api_key":"phc_nope","batch":[{"event":"e","distinct_id":"d"}]}`, 401, "invalid_token", "token"},
		{"two tokens", "/e/", `[{"event":"e","properties":{"distinct_id":"d","token":"a"}},{"event":"e","properties":{"distinct_id":"d","token":"b"}}]`, 400, "invalid_payload", "batch[1].token"},
		{"not json", "/e/", `{"event":`, 400, "invalid_payload", "body"},
		{"no distinct id", "/batch/", `{"api_key":"` + token + `","batch":[{"event":"e"}]}`, 400, "invalid_payload", "batch[0].distinct_id"},
		{"alias without alias", "/batch/", `{"api_key":"` + token + `","batch":[{"event":"$create_alias","distinct_id":"d"}]}`, 400, "invalid_payload", "batch[0].properties.alias"},
		{"lz64", "/e/?compression=lz64", `x`, 400, "unsupported_compression", "compression"},
		{"too many events", "/batch/", ev(4), 413, "too_many_events", "batch"},
		{"too large", "/batch/", ev(3) + strings.Repeat(" ", 5000), 413, "request_too_large", "body"},
		{"property key too long", "/batch/", `{"api_key":"` + token + `","batch":[{"event":"e","distinct_id":"d","properties":{"` + strings.Repeat("k", 2000) + `":1}}]}`, 400, "invalid_payload", "batch[0]"},
	}
	for _, c := range cases {
		res, out := f.do(t, http.MethodPost, c.target, []byte(c.body))
		var e apiError
		_ = json.Unmarshal([]byte(out), &e)
		if res.StatusCode != c.status || e.Code != c.code || e.Attr != c.attr {
			t.Errorf("%s: %d %s, want %d code %s attr %s", c.name, res.StatusCode, out, c.status, c.code, c.attr)
		}
	}
	// A gzip bomb stops one byte past the decompressed limit.
	f = newFixture(t, Config{MaxDecodedBytes: 64 << 10, TeamRate: 1, TeamBurst: 5})
	res, out := f.do(t, http.MethodPost, "/e/?compression=gzip-js", gz(bytes.Repeat([]byte(" "), 8<<20)))
	if res.StatusCode != 413 || !strings.Contains(out, `"decompressed body"`) {
		t.Errorf("gzip bomb: %d %s", res.StatusCode, out)
	}
	// The rate: a burst of 5 events, then 1 per second (the clock is fixed).
	if res, out := f.do(t, http.MethodPost, "/batch/", []byte(ev(3))); res.StatusCode != 200 {
		t.Fatalf("within the burst: %d %s", res.StatusCode, out)
	}
	res, out = f.do(t, http.MethodPost, "/batch/", []byte(ev(3)))
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(out, `"rate_limited"`) || res.Header.Get("Retry-After") == "" {
		t.Errorf("over the rate: %d %s, Retry-After %q", res.StatusCode, out, res.Header.Get("Retry-After"))
	}
}

// Its own concurrency limit: a request past it is refused at once, never
// queued behind the others.
func TestOverloaded(t *testing.T) {
	f := newFixture(t, Config{MaxInFlight: 1})
	f.maps.block = make(chan struct{})
	done := make(chan int)
	go func() {
		res, _ := f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"e","distinct_id":"known"}`))
		done <- res.StatusCode
	}()
	// Wait until the first request holds the slot.
	for len(f.cap.slots) == 0 {
		time.Sleep(time.Millisecond)
	}
	res, out := f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"e","distinct_id":"known"}`))
	if res.StatusCode != 503 || !strings.Contains(out, `"overloaded"`) || res.Header.Get("Retry-After") != "1" {
		t.Errorf("second request: %d %s", res.StatusCode, out)
	}
	close(f.maps.block)
	if s := <-done; s != 200 {
		t.Errorf("first request: %d", s)
	}
}

// NATS down: 503 with Retry-After at once, so SDKs retry; nothing is lost
// silently. And a store that cannot say who a distinct id is: 503 too.
func TestUnavailable(t *testing.T) {
	f := newFixture(t, Config{})
	f.maps.err = io.ErrUnexpectedEOF
	res, out := f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"e","distinct_id":"someone","properties":{"$set":{"a":1}}}`))
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "5" || !strings.Contains(out, `"unavailable"`) {
		t.Errorf("store failing: %d %s", res.StatusCode, out)
	}
	f.maps.err = nil
	f.nats.Stop()
	res, out = f.do(t, http.MethodPost, "/e/", []byte(`{"token":"`+token+`","event":"e","distinct_id":"known"}`))
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "5" || !strings.Contains(out, `"unavailable"`) {
		t.Errorf("NATS down: %d %s", res.StatusCode, out)
	}
}

func TestCaptureCORS(t *testing.T) {
	f := newFixture(t, Config{})
	res, _ := f.do(t, http.MethodOptions, "/e/?compression=gzip-js", nil, "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
	res, _ = f.do(t, http.MethodPost, "/e", []byte(`{"token":"`+token+`","event":"e","distinct_id":"known"}`), "Origin", "http://localhost:3000")
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("POST: %d %v", res.StatusCode, res.Header)
	}
}

func TestRemoteConfig(t *testing.T) {
	f := newFixture(t, Config{})
	res, out := f.do(t, http.MethodGet, "/array/"+token+"/config", nil, "Origin", "http://localhost:3000")
	var cfg map[string]any
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || res.StatusCode != 200 || cfg["token"] != token || cfg["hasFeatureFlags"] != true {
		t.Fatalf("config: %d %s", res.StatusCode, out)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("no CORS: %v", res.Header)
	}
	if res, out := f.do(t, http.MethodGet, "/array/phc_nope/config", nil); res.StatusCode != 401 {
		t.Errorf("unknown token: %d %s", res.StatusCode, out)
	}
	if res, _ := f.do(t, http.MethodGet, "/array/"+token+"/other", nil); res.StatusCode != 404 {
		t.Errorf("other file: %d", res.StatusCode)
	}
}
