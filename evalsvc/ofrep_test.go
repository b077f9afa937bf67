package evalsvc

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOFREPSingle(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()
	auth := []string{"Authorization", "Bearer phc_team1"}
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		status           int
		want             string
	}{
		{"boolean from the stored row", "/ofrep/v1/evaluate/flags/beta", `{"context":{"targetingKey":"u1"}}`, auth, 200,
			`{"key":"beta","value":true,"reason":"TARGETING_MATCH","variant":"true","metadata":{"conditionIndex":0,"flagId":1,"payload":"\"on\"","posthogReason":"condition_match","version":3}}`},
		{"context properties win", "/ofrep/v1/evaluate/flags/beta", `{"context":{"targetingKey":"u1","plan":"free"}}`, auth, 200,
			`{"key":"beta","value":false,"reason":"DEFAULT","variant":"false","metadata":{"conditionIndex":0,"flagId":1,"posthogReason":"no_condition_match","version":3}}`},
		{"multivariate", "/ofrep/v1/evaluate/flags/mv", `{"context":{"targetingKey":"anyone"}}`, auth, 200,
			`{"key":"mv","value":"test","reason":"TARGETING_MATCH","variant":"test","metadata":{"conditionIndex":0,"flagId":3,"payload":"{\"price\": 9}","posthogReason":"condition_match","version":1}}`},
		{"groups", "/ofrep/v1/evaluate/flags/company-flag", `{"context":{"targetingKey":"u9","groups":{"company":"acme"}}}`, []string{"X-API-Key", "phc_team1"}, 200,
			`{"key":"company-flag","value":true,"reason":"TARGETING_MATCH","variant":"true","metadata":{"conditionIndex":0,"flagId":2,"posthogReason":"condition_match","version":1}}`},
		{"group properties", "/ofrep/v1/evaluate/flags/company-flag", `{"context":{"targetingKey":"u9","groups":{"company":"acme"},"groupProperties":{"company":{"plan":"free"}}}}`, auth, 200,
			`{"key":"company-flag","value":false,"reason":"DEFAULT","variant":"false","metadata":{"conditionIndex":0,"flagId":2,"posthogReason":"no_condition_match","version":1}}`},
		{"static cohort", "/ofrep/v1/evaluate/flags/static-cohort", `{"context":{"targetingKey":"u1"}}`, auth, 200,
			`{"key":"static-cohort","value":true,"reason":"TARGETING_MATCH","variant":"true","metadata":{"conditionIndex":0,"flagId":5,"posthogReason":"condition_match","version":1}}`},
		{"unknown flag", "/ofrep/v1/evaluate/flags/nope", `{"context":{"targetingKey":"u1"}}`, auth, 404,
			`{"key":"nope","errorCode":"FLAG_NOT_FOUND","errorDetails":"no flag \"nope\" in this project"}`},
		{"no targeting key", "/ofrep/v1/evaluate/flags/beta", `{"context":{"plan":"pro"}}`, auth, 400,
			`{"key":"beta","errorCode":"TARGETING_KEY_MISSING","errorDetails":"context.targetingKey must be a string: it is the distinct id"}`},
		{"not JSON", "/ofrep/v1/evaluate/flags/beta", `{"context":`, auth, 400,
			`{"key":"beta","errorCode":"PARSE_ERROR","errorDetails":"the body is not a JSON object: unexpected end of JSON input"}`},
		{"groups not an object of strings", "/ofrep/v1/evaluate/flags/beta", `{"context":{"targetingKey":"u1","groups":["acme"]}}`, auth, 400,
			`{"key":"beta","errorCode":"INVALID_CONTEXT","errorDetails":"context.groups must map group type names to group keys (strings)"}`},
		{"no token", "/ofrep/v1/evaluate/flags/beta", `{"context":{"targetingKey":"u1"}}`, nil, 401,
			`{"errorDetails":"send the project token as \"Authorization: Bearer phc_...\""}`},
		{"wrong token", "/ofrep/v1/evaluate/flags/beta", `{"context":{"targetingKey":"u1"}}`, []string{"Authorization", "Bearer phc_nope"}, 401,
			`{"errorDetails":"the project token is not valid"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := post(t, h, tc.path, tc.body, tc.hdr...)
			if res.StatusCode != tc.status || strings.TrimSpace(string(body)) != tc.want {
				t.Fatalf("got %d %s\nwant %d %s", res.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	// Only POST.
	req := httptest.NewRequest(http.MethodGet, "/ofrep/v1/evaluate/flags/beta", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET: %d %v", w.Code, w.Header())
	}
}

func TestOFREPBulk(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()
	auth := []string{"Authorization", "Bearer phc_team1"}
	res, body := post(t, h, "/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"u2"}}`, auth...)
	want := `{"flags":[` +
		`{"key":"beta","value":false,"reason":"DEFAULT","variant":"false","metadata":{"conditionIndex":0,"flagId":1,"posthogReason":"no_condition_match","version":3}},` +
		`{"key":"company-flag","value":false,"reason":"DEFAULT","variant":"false","metadata":{"flagId":2,"posthogReason":"no_group_type","version":1}},` +
		`{"key":"mv","value":"test","reason":"TARGETING_MATCH","variant":"test","metadata":{"conditionIndex":0,"flagId":3,"payload":"{\"price\": 9}","posthogReason":"condition_match","version":1}},` +
		`{"key":"everyone","value":true,"reason":"TARGETING_MATCH","variant":"true","metadata":{"conditionIndex":0,"flagId":4,"posthogReason":"condition_match","version":1}},` +
		`{"key":"static-cohort","value":false,"reason":"DEFAULT","variant":"false","metadata":{"conditionIndex":0,"flagId":5,"posthogReason":"no_condition_match","version":1}},` +
		`{"key":"client-only","value":true,"reason":"TARGETING_MATCH","variant":"true","metadata":{"conditionIndex":0,"flagId":6,"posthogReason":"condition_match","version":1}}]}`
	if res.StatusCode != 200 || string(body) != want {
		t.Fatalf("got %d %s\nwant %s", res.StatusCode, body, want)
	}
	etag := res.Header.Get("ETag")
	if len(etag) != 18 || etag[0] != '"' {
		t.Fatalf("ETag %q", etag)
	}
	// The same context: 304 with no body.
	res, body = post(t, h, "/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"u2"}}`, "Authorization", "Bearer phc_team1", "If-None-Match", etag)
	if res.StatusCode != http.StatusNotModified || len(body) != 0 || res.Header.Get("ETag") != etag {
		t.Fatalf("If-None-Match: %d %q %v", res.StatusCode, body, res.Header)
	}
	// Another answer: another ETag, 200.
	res, _ = post(t, h, "/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"u1"}}`, "Authorization", "Bearer phc_team1", "If-None-Match", etag)
	if res.StatusCode != 200 || res.Header.Get("ETag") == etag {
		t.Fatalf("another person: %d %v", res.StatusCode, res.Header)
	}
	// Refusals in the bulk shape.
	res, body = post(t, h, "/ofrep/v1/evaluate/flags", `{"context":{}}`, auth...)
	if res.StatusCode != 400 || string(body) != `{"errorCode":"TARGETING_KEY_MISSING","errorDetails":"context.targetingKey must be a string: it is the distinct id"}` {
		t.Fatalf("no targeting key: %d %s", res.StatusCode, body)
	}
	res, body = post(t, h, "/ofrep/v1/evaluate/flags", `{"context":{"targetingKey":"u1","p":"`+strings.Repeat("x", 9000)+`"}}`, auth...)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"errorCode":"INVALID_CONTEXT"`) || !strings.Contains(string(body), "person_properties") {
		t.Fatalf("a property over the limit: %d %s", res.StatusCode, body)
	}
}

// TestOFREPCORS: a page on another origin (ofrep-web-provider) may call
// OFREP: the preflight is answered without a token and the answer carries
// the caller's origin.
func TestOFREPCORS(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat}).Handler()
	req := httptest.NewRequest(http.MethodOptions, "/ofrep/v1/evaluate/flags", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.ToLower(w.Header().Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	req = httptest.NewRequest(http.MethodPost, "/ofrep/v1/evaluate/flags/beta", strings.NewReader(`{"context":{"targetingKey":"u1"}}`))
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Authorization", "Bearer phc_team1")
	req.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("answer: %d %v %s", w.Code, w.Header(), w.Body)
	}
}
