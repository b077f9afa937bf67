package evalsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// fakeCatalog is an in-memory Definitions for these tests.
type fakeCatalog struct {
	mu      sync.Mutex
	snaps   map[int64]catalog.TeamSnapshot
	keys    map[string]catalog.APIKey // by hash
	members map[string]bool           // "team/cohort/distinct"
	loads   int
}

func hashKey(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func (f *fakeCatalog) Snapshot(_ context.Context, team int64) (catalog.TeamSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	s, ok := f.snaps[team]
	if !ok {
		return catalog.TeamSnapshot{}, catalog.ErrNotFound
	}
	return s, nil
}

func (f *fakeCatalog) GetKeyByHash(_ context.Context, hash []byte) (catalog.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[string(hash)]
	if !ok {
		return catalog.APIKey{}, catalog.ErrNotFound
	}
	return k, nil
}

func (f *fakeCatalog) IsCohortMember(_ context.Context, team, cohort int64, did string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[fmt.Sprintf("%d/%d/%s", team, cohort, did)], nil
}

func (f *fakeCatalog) ListTeams(context.Context) ([]catalog.Team, error) { return nil, nil }

func (f *fakeCatalog) addKey(secret string, kind catalog.KeyKind, teams []int64, scopes ...string) {
	f.keys[string(hashKey(secret))] = catalog.APIKey{ID: secret[:6], Kind: kind, Hash: hashKey(secret), Teams: teams, Scopes: scopes}
}

const teamDefs = `{"group_type_mapping":{"0":"company"},
 "flags":[
  {"id":1,"key":"beta","active":true,"version":3,"description":"Beta","filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}],"payloads":{"true":"\"on\""}}},
  {"id":2,"key":"company-flag","active":true,"version":1,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"value":"enterprise"}],"rollout_percentage":100}]}},
  {"id":3,"key":"mv","active":true,"version":1,"filters":{"groups":[{"properties":[],"rollout_percentage":100,"variant":"test"}],"multivariate":{"variants":[{"key":"control","rollout_percentage":50},{"key":"test","rollout_percentage":50}]},"payloads":{"test":"{\"price\": 9}"}}},
  {"id":4,"key":"everyone","active":true,"version":1,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}},
  {"id":5,"key":"static-cohort","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":9}],"rollout_percentage":100}]}},
  {"id":6,"key":"client-only","active":true,"version":1,"evaluation_runtime":"client","filters":{"groups":[{"properties":[],"rollout_percentage":100}]}}]}`

func newFixture(t *testing.T) (*fakeCatalog, *memstore.Store) {
	t.Helper()
	defs, err := flags.ParseDefinitions([]byte(teamDefs))
	if err != nil {
		t.Fatal(err)
	}
	defs.Cohorts = []flags.Cohort{{ID: 9, Kind: flags.CohortStatic}}
	cat := &fakeCatalog{snaps: map[int64]catalog.TeamSnapshot{1: {Team: catalog.Team{ID: 1, GroupTypes: defs.GroupTypes}, Definitions: defs}},
		keys: map[string]catalog.APIKey{}, members: map[string]bool{"1/9/u1": true}}
	cat.snaps[2] = catalog.TeamSnapshot{Team: catalog.Team{ID: 2}}
	cat.addKey("phc_team1", catalog.KeyProjectToken, []int64{1})
	cat.addKey("phc_team2", catalog.KeyProjectToken, []int64{2})
	cat.addKey("phs_team1", catalog.KeySecure, []int64{1})
	cat.addKey("phx_reader", catalog.KeyPersonal, []int64{1}, "flag:read")
	cat.addKey("phx_all", catalog.KeyPersonal, nil, "*")
	cat.addKey("phx_noscope", catalog.KeyPersonal, []int64{1}, "cohort:read")
	cat.addKey("phx_team2", catalog.KeyPersonal, []int64{2}, "flag:read")
	revoked := catalog.APIKey{ID: "revoked", Kind: catalog.KeyProjectToken, Hash: hashKey("phc_revoked"), Teams: []int64{1}, RevokedAt: time.Unix(1, 0)}
	cat.keys[string(revoked.Hash)] = revoked

	st := memstore.New()
	var b store.Batch
	b.PutRow(&store.Row{Team: 1, DistinctID: "u1", PersonID: "p1", PersonVersion: 1, Properties: []byte(`{"plan":"pro","email":"a@corp.com"}`)})
	b.PutRow(&store.Row{Team: 1, DistinctID: "u2", PersonID: "p2", PersonVersion: 1, Properties: []byte(`{"plan":"free"}`)})
	b.PutGroup(&store.Group{Team: 1, TypeIndex: 0, Key: "acme", Version: 1, Set: map[string]store.Register{}, Properties: []byte(`{"plan":"enterprise"}`)})
	if err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return cat, st
}

// oneSlot is an admission controller whose limit is one request.
func oneSlot(t *testing.T) *admission.Controller {
	t.Helper()
	c, err := admission.New(admission.Config{InitialLimit: 1, MinLimit: 1, MaxLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.StoreTimeout == 0 {
		// Tests that want the deadline set it; the others check answers,
		// which a loaded machine must not turn into timeouts.
		cfg.StoreTimeout = time.Minute
	}
	if cfg.EvalTimeout == 0 {
		cfg.EvalTimeout = time.Minute // likewise
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type flagsResp struct {
	Flags map[string]struct {
		Enabled  bool    `json:"enabled"`
		Variant  *string `json:"variant"`
		Failed   bool    `json:"failed"`
		Reason   struct{ Code string }
		Metadata struct {
			ID          int64
			Version     int64
			Payload     any
			Description *string
		}
	} `json:"flags"`
	FeatureFlags     map[string]any `json:"featureFlags"`
	ErrorsWhile      bool           `json:"errorsWhileComputingFlags"`
	RequestID        string         `json:"requestId"`
	QuotaLimited     []string       `json:"quotaLimited"`
	SupportedCompres []string       `json:"supportedCompression"`
}

func post(t *testing.T, h http.Handler, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func decodeFlags(t *testing.T, b []byte) flagsResp {
	t.Helper()
	var r flagsResp
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("bad response %s: %v", b, err)
	}
	return r
}

func TestFlagsFromTheRow(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()

	res, body := post(t, h, "/flags/?v=2", `{"token":"phc_team1","distinct_id":"u1"}`, "X-Request-ID", "0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	r := decodeFlags(t, body)
	beta := r.Flags["beta"]
	if !beta.Enabled || beta.Reason.Code != "condition_match" || beta.Metadata.ID != 1 || beta.Metadata.Version != 3 || beta.Metadata.Payload != `"on"` || *beta.Metadata.Description != "Beta" {
		t.Errorf("beta from the stored plan: %+v", beta)
	}
	if mv := r.Flags["mv"]; !mv.Enabled || *mv.Variant != "test" || mv.Metadata.Payload != `{"price": 9}` {
		t.Errorf("mv %+v", mv)
	}
	if !r.Flags["static-cohort"].Enabled {
		t.Error("u1 is a member of static cohort 9")
	}
	if r.Flags["company-flag"].Enabled || r.Flags["company-flag"].Reason.Code != "no_group_type" {
		t.Errorf("no group in the request: %+v", r.Flags["company-flag"])
	}
	if r.ErrorsWhile || r.RequestID != "0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11" {
		t.Errorf("errors %v, request id %q", r.ErrorsWhile, r.RequestID)
	}

	// Request properties win over stored ones; groups are read from the store.
	_, body = post(t, h, "/flags?v=2", `{"api_key":"phc_team1","distinct_id":"u1","person_properties":{"plan":"free"},"groups":{"company":"acme"}}`)
	r = decodeFlags(t, body)
	if r.Flags["beta"].Enabled {
		t.Error("request person_properties must override the stored plan")
	}
	if !r.Flags["company-flag"].Enabled {
		t.Error("company acme is enterprise in the store")
	}
	_, body = post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","groups":{"company":"acme"},"group_properties":{"company":{"plan":"free"}}}`)
	if decodeFlags(t, body).Flags["company-flag"].Enabled {
		t.Error("request group_properties must override stored group properties")
	}
	// An unknown person is evaluated from the request alone, definitely.
	_, body = post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"nobody"}`)
	r = decodeFlags(t, body)
	if r.Flags["beta"].Enabled || r.Flags["beta"].Failed || !r.Flags["everyone"].Enabled || r.ErrorsWhile {
		t.Errorf("unknown person: %+v", r)
	}
	// Requested keys only, and the runtime filter.
	_, body = post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","flag_keys_to_evaluate":["beta","nope"],"evaluation_runtime":"server"}`)
	if r := decodeFlags(t, body); len(r.Flags) != 1 || !r.Flags["beta"].Enabled {
		t.Errorf("flag_keys_to_evaluate: %s", body)
	}
	_, body = post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","evaluation_runtime":"server"}`)
	if _, has := decodeFlags(t, body).Flags["client-only"]; has {
		t.Error("a client-only flag is not sent to a server runtime")
	}
	// Legacy and decide shapes.
	_, body = post(t, h, "/flags", `{"token":"phc_team1","distinct_id":"u1"}`)
	if r := decodeFlags(t, body); r.Flags == nil || r.SupportedCompres == nil {
		t.Errorf("no v and no config means v=2 with config: %s", body)
	}
	_, body = post(t, h, "/flags?v=1", `{"token":"phc_team1","distinct_id":"u2"}`)
	if r := decodeFlags(t, body); r.FeatureFlags["beta"] != false || r.FeatureFlags["mv"] != "test" {
		t.Errorf("legacy: %s", body)
	}
	_, body = post(t, h, "/decide/?v=2", `{"token":"phc_team1","distinct_id":"u2"}`)
	if r := decodeFlags(t, body); r.FeatureFlags["mv"] != "test" || r.FeatureFlags["beta"] != nil {
		t.Errorf("decide v2 lists enabled flags only: %s", body)
	}
	// Another team's token sees its own (empty) flags.
	_, body = post(t, h, "/flags?v=2", `{"token":"phc_team2","distinct_id":"u1"}`)
	if r := decodeFlags(t, body); len(r.Flags) != 0 {
		t.Errorf("team 2 has no flags: %s", body)
	}
}

func TestFlagsErrors(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat, MaxBodyBytes: 4096}).Handler()
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"missing token", `{"distinct_id":"u1"}`, 401, "missing_token"},
		{"unknown token", `{"token":"phc_nope","distinct_id":"u1"}`, 401, "invalid_token"},
		{"revoked token", `{"token":"phc_revoked","distinct_id":"u1"}`, 401, "invalid_token"},
		{"a personal key is not a project token", `{"token":"phx_reader","distinct_id":"u1"}`, 401, "invalid_token"},
		{"missing distinct id", `{"token":"phc_team1"}`, 400, "missing_distinct_id"},
		{"malformed body", `{"token":`, 400, "invalid_body"},
		{"body too large", `{"token":"phc_team1","distinct_id":"` + strings.Repeat("x", 5000) + `"}`, 413, "body_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := post(t, h, "/flags?v=2", c.body)
			var e apiError
			_ = json.Unmarshal(body, &e)
			if res.StatusCode != c.status || e.Code != c.code || e.Detail == "" {
				t.Errorf("got %d %s, want %d %s", res.StatusCode, body, c.status, c.code)
			}
		})
	}
	for _, m := range []struct {
		method string
		status int
	}{{http.MethodGet, 200}, {http.MethodHead, 200}, {http.MethodOptions, 204}, {http.MethodPut, 405}} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m.method, "/flags/?v=2", nil))
		if w.Code != m.status {
			t.Errorf("%s: status %d, want %d", m.method, w.Code, m.status)
		}
		if m.method == http.MethodOptions && w.Header().Get("Allow") != "GET, POST, OPTIONS, HEAD" {
			t.Errorf("Allow %q", w.Header().Get("Allow"))
		}
	}
}

// failingStore fails every read; blockingStore blocks until the context ends.
type failingStore struct{}

func (failingStore) GetRow(context.Context, int64, string) (*store.Row, error) {
	return nil, errors.New("connection refused")
}
func (failingStore) GetGroup(context.Context, int64, int, string) (*store.Group, error) {
	return nil, errors.New("connection refused")
}

type blockingStore struct {
	entered chan struct{}
	release chan struct{} // closed: reads answer "not found" at once
}

func (b blockingStore) GetRow(ctx context.Context, _ int64, _ string) (*store.Row, error) {
	if b.entered != nil {
		select {
		case b.entered <- struct{}{}:
		default:
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.release:
		return nil, store.ErrNotFound
	}
}
func (b blockingStore) GetGroup(ctx context.Context, _ int64, _ int, _ string) (*store.Group, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestStoreUnavailable(t *testing.T) {
	cat, _ := newFixture(t)
	for name, st := range map[string]store.Reader{"failing": failingStore{}, "blocking past the deadline": blockingStore{}} {
		t.Run(name, func(t *testing.T) {
			h := newService(t, Config{Store: st, Catalog: cat, StoreTimeout: 20 * time.Millisecond}).Handler()
			res, body := post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","person_properties":{"email":"x"}}`)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			r := decodeFlags(t, body)
			if !r.ErrorsWhile {
				t.Error("errorsWhileComputingFlags must be true")
			}
			if b := r.Flags["beta"]; !b.Failed || b.Enabled {
				t.Errorf("beta needs the stored plan: it must fail, got %+v", b)
			}
			if e := r.Flags["everyone"]; !e.Enabled || e.Failed {
				t.Errorf("a flag that needs nothing still answers: %+v", e)
			}
		})
	}
}

func TestLoadShedding(t *testing.T) {
	cat, _ := newFixture(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	s := newService(t, Config{Store: blockingStore{entered: entered, release: release}, Catalog: cat, StoreTimeout: time.Hour, Admission: oneSlot(t)})
	h := s.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/flags?v=2", strings.NewReader(`{"token":"phc_team1","distinct_id":"u1"}`)).WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		done <- w.Code
	}()
	<-entered // the first request holds the only slot
	res, body := post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u2"}`)
	if res.StatusCode != 503 || !bytes.Contains(body, []byte(`"code":"overloaded"`)) || res.Header.Get("Retry-After") != "1" {
		t.Errorf("second request: %d %s (Retry-After %q), want 503 overloaded with Retry-After 1", res.StatusCode, body, res.Header.Get("Retry-After"))
	}
	// A definitions poll is refused alike: the limit is the node's.
	if w := get(h, "/flags/definitions", "Authorization", "Bearer phs_team1"); w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("a poll while the slot is held: %d %s, want 503 with Retry-After", w.Code, w.Body)
	}
	cancel()
	<-done
	close(release)
	if res, _ := post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u2"}`); res.StatusCode != 200 {
		t.Errorf("after the slot is free: %d", res.StatusCode)
	}
}

func get(h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestDefinitionsEndpoint(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()
	cases := []struct {
		name, path, auth string
		status           int
	}{
		{"no key", "/flags/definitions?token=phc_team1&send_cohorts", "", 401},
		{"bad key", "/flags/definitions?token=phc_team1", "Bearer phx_bogus", 401},
		{"key without flag:read", "/flags/definitions?token=phc_team1", "Bearer phx_noscope", 403},
		{"key of another team", "/flags/definitions?token=phc_team1", "Bearer phx_team2", 403},
		{"unknown project token", "/flags/definitions?token=phc_nope", "Bearer phx_reader", 401},
		{"personal key", "/flags/definitions?token=phc_team1&send_cohorts", "Bearer phx_reader", 200},
		{"instance-wide key with every scope", "/flags/definitions?token=phc_team1&send_cohorts", "Bearer phx_all", 200},
		{"secure key, no token", "/api/feature_flag/local_evaluation?send_cohorts", "Bearer phs_team1", 200},
		{"secure key of another team", "/flags/definitions?token=phc_team2", "Bearer phs_team1", 403},
	}
	var bodies [][]byte
	for _, c := range cases {
		w := get(h, c.path, "Authorization", c.auth)
		if w.Code != c.status {
			t.Errorf("%s: status %d %s, want %d", c.name, w.Code, w.Body, c.status)
		}
		if c.status == 200 {
			bodies = append(bodies, w.Body.Bytes())
			var doc struct {
				Flags []struct{ Key string } `json:"flags"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || len(doc.Flags) != 6 {
				t.Errorf("%s: payload %s", c.name, w.Body)
			}
			if w.Header().Get("ETag") == "" {
				t.Errorf("%s: no ETag", c.name)
			}
		}
	}
	if len(bodies) == 3 && !bytes.Equal(bodies[0], bodies[2]) {
		t.Error("both definition routes must serve the same payload")
	}
	w := get(h, "/flags/definitions?token=phc_team1&send_cohorts", "Authorization", "Bearer phx_reader")
	etag := w.Header().Get("ETag")
	w2 := get(h, "/flags/definitions?token=phc_team1&send_cohorts", "Authorization", "Bearer phx_reader", "If-None-Match", etag)
	if w2.Code != 304 || w2.Body.Len() != 0 {
		t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and no body", etag, w2.Code, w2.Body.Len())
	}
	if w3 := get(h, "/flags/definitions?token=phc_team1&send_cohorts", "Authorization", "Bearer phx_reader", "If-None-Match", `"stale"`); w3.Code != 200 {
		t.Errorf("a stale ETag gets the payload, got %d", w3.Code)
	}
}

// TestDefinitionsEmptyTeam: a team with no flags, cohorts or group types
// still gets every top-level key, "group_type_mapping" and "cohorts" as {}
// (posthog-python 7.91 reads both unconditionally: without them every poll
// failed with KeyError: 'cohorts'), on both routes, with and without
// send_cohorts.
func TestDefinitionsEmptyTeam(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()
	for _, path := range []string{
		"/flags/definitions?token=phc_team2&send_cohorts",
		"/flags/definitions?token=phc_team2",
		"/api/feature_flag/local_evaluation?token=phc_team2&send_cohorts",
		"/api/feature_flag/local_evaluation?token=phc_team2",
	} {
		w := get(h, path, "Authorization", "Bearer phx_team2")
		if w.Code != 200 {
			t.Fatalf("%s: status %d %s", path, w.Code, w.Body)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v in %s", path, err, w.Body)
		}
		want := map[string]string{"flags": "[]", "group_type_mapping": "{}", "cohorts": "{}"}
		for k, v := range want {
			if got, ok := doc[k]; !ok || string(got) != v {
				t.Errorf("%s: %q is %s (present %v), want %s; body %s", path, k, got, ok, v, w.Body)
			}
		}
		if len(doc) != len(want) {
			t.Errorf("%s: keys %v, want exactly flags, group_type_mapping and cohorts", path, w.Body)
		}
	}
}

func TestChangeNoticeRefreshes(t *testing.T) {
	cat, st := newFixture(t)
	nc := natstest.Start(t).Conn
	s := newService(t, Config{Store: st, Catalog: cat, ReloadInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, nc) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	}()
	h := s.Handler()
	_, body := post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u2"}`)
	if decodeFlags(t, body).Flags["beta"].Enabled {
		t.Fatal("u2 is on the free plan")
	}
	<-s.subscribed // a notice sent before the subscription exists is lost (the periodic reload is the backstop)
	// The flag now targets free plans; the notice must reach the cache.
	cat.mu.Lock()
	snap := cat.snaps[1]
	defs := snap.Definitions
	defs.Flags = append([]flags.Flag(nil), defs.Flags...)
	defs.Flags[0].Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "plan", Type: "person", Value: json.RawMessage(`"free"`)}}}}
	defs.Flags[0].Version = 4
	snap.Definitions = defs
	cat.snaps[1] = snap
	cat.mu.Unlock()
	if err := nc.Publish("vexil.changes.1", []byte(`{"team_id":1,"kind":"flag","id":"1","key":"beta","version":4,"op":"updated"}`)); err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		_, body = post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u2"}`)
		if r := decodeFlags(t, body); !r.Flags["beta"].Enabled || r.Flags["beta"].Metadata.Version != 4 {
			return fmt.Errorf("the change notice did not refresh the cache: %s", body)
		}
		return nil
	})
}

// TestReloadKeepsUnchangedTeam: a reload that reads the snapshot the
// HyperCache already holds keeps its state (no compile, no wake-up of the
// team's watchers); one that reads a changed flag or team builds a new one.
func TestReloadKeepsUnchangedTeam(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat, ReloadInterval: time.Hour})
	ctx := context.Background()
	first, err := s.cache.get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	changed := s.cache.changes(1)
	for range 3 {
		if err := s.Refresh(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if cur, _ := s.cache.current(1); cur != first {
		t.Error("a reload of the same snapshot replaced the team's state")
	}
	select {
	case <-changed:
		t.Error("a reload of the same snapshot woke the team's watchers")
	default:
	}
	if got, want := testutil.ToFloat64(s.m.reloads), 1.0; got != want {
		t.Errorf("reloads compiled = %v, want %v", got, want)
	}
	if got, want := testutil.ToFloat64(s.m.reloadsUnchanged), 3.0; got != want {
		t.Errorf("reloads kept = %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name   string
		change func(*catalog.TeamSnapshot)
	}{
		{"a flag's rollout", func(snap *catalog.TeamSnapshot) {
			defs := snap.Definitions
			defs.Flags = append([]flags.Flag(nil), defs.Flags...)
			r := 10.0
			defs.Flags[3].Filters.Groups = []flags.Condition{{RolloutPercentage: &r}}
			snap.Definitions = defs
		}},
		{"the team's name", func(snap *catalog.TeamSnapshot) { snap.Team.Name = "renamed" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.cache.current(1)
			changed := s.cache.changes(1)
			cat.mu.Lock()
			snap := cat.snaps[1]
			tc.change(&snap)
			cat.snaps[1] = snap
			cat.mu.Unlock()
			if err := s.Refresh(ctx, 1); err != nil {
				t.Fatal(err)
			}
			after, _ := s.cache.current(1)
			if after == before || after.digest == before.digest {
				t.Error("a changed snapshot kept the old state")
			}
			select {
			case <-changed:
			default:
				t.Error("a changed snapshot did not wake the team's watchers")
			}
		})
	}
}

// TestRequestUUID: a caller's UUID is kept (in its canonical form);
// otherwise each request gets a new random version 4 UUID.
func TestRequestUUID(t *testing.T) {
	if got := requestUUID("0C9A3E1B-5A7C-4A55-9B3E-6F1D2F2F0D11").String(); got != "0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11" {
		t.Errorf("the caller's id became %s", got)
	}
	seen := map[uuid.UUID]bool{}
	for _, h := range []string{"", "", "not-a-uuid", ""} {
		u := requestUUID(h)
		if u.Version() != 4 || u.Variant() != uuid.RFC4122 || seen[u] {
			t.Errorf("%q: %s (version %d, variant %v, seen %v)", h, u, u.Version(), u.Variant(), seen[u])
		}
		seen[u] = true
	}
	if n := testing.AllocsPerRun(100, func() { requestUUID("") }); n != 0 {
		t.Errorf("a new request id allocates %v times", n)
	}
}

// TestContentLength: the shared Content-Length values are right whatever
// sizes share a slot, and a size seen before allocates nothing.
func TestContentLength(t *testing.T) {
	for _, n := range []int{0, 1, 512, 1024, 14312, 14312 + 512, 14312, 1 << 20, 7} {
		if got := contentLength(n); len(got) != 1 || got[0] != strconv.Itoa(n) {
			t.Errorf("contentLength(%d) = %q", n, got)
		}
	}
	if a := testing.AllocsPerRun(100, func() { contentLength(14312) }); a != 0 {
		t.Errorf("a size seen before: %v allocations", a)
	}
}
