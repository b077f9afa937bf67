package evalsvc

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// posthog-js calls /flags from the customer's site: the preflight is
// answered without evaluating, and the answer (an error too) carries the
// caller's origin, with credentials, as PostHog's server sends them.
func TestFlagsCORS(t *testing.T) {
	cat, st := newFixture(t)
	h := newService(t, Config{Store: st, Catalog: cat, HashKey: hashKey}).Handler()
	const origin = "http://127.0.0.1:4173"
	for _, path := range []string{"/flags/?v=2", "/decide/?v=4", "/flags"} {
		req := httptest.NewRequest(http.MethodOptions, path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			t.Errorf("%s preflight: status %d", path, w.Code)
		}
		for k, v := range map[string]string{"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "7200"} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s preflight: %s = %q, want %q", path, k, got, v)
			}
		}
		if got := w.Header().Get("Access-Control-Allow-Headers"); !strings.Contains(got, "Content-Type") {
			t.Errorf("%s preflight: Allow-Headers %q", path, got)
		}
	}
	res, body := post(t, h, "/flags/?v=2", `{"token":"phc_team1","distinct_id":"u1"}`, "Origin", origin)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != origin || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("POST: status %d, headers %v", res.StatusCode, res.Header)
	}
	if r := decodeFlags(t, body); !r.Flags["beta"].Enabled {
		t.Errorf("beta not enabled for u1: %s", body)
	}
	res, _ = post(t, h, "/flags/?v=2", `{"token":"phc_nope","distinct_id":"u1"}`, "Origin", origin)
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("refused POST: status %d, Allow-Origin %q: a browser could not read the error", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	// The local-evaluation definitions are for servers: no CORS.
	req := httptest.NewRequest(http.MethodGet, "/flags/definitions", nil)
	req.Header.Set("Origin", origin)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("definitions: Allow-Origin %q, want none", got)
	}
}
