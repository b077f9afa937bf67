package cors

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func serve(h http.Handler, method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/flags", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })

func TestPublicPreflight(t *testing.T) {
	w := serve(Public(ok), http.MethodOptions, "http://127.0.0.1:5173", map[string]string{
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "content-type, x-posthog-thing, bad header",
	})
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204 (the handler must not run)", w.Code)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      "http://127.0.0.1:5173",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, POST, OPTIONS",
		"Access-Control-Allow-Headers":     "Content-Type, X-Requested-With, Authorization, X-Request-Id, x-posthog-thing",
		"Access-Control-Max-Age":           "7200",
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Vary starts as the shared value; what a preflight adds goes to a
	// copy of it.
	if got := w.Header().Values("Vary"); !slices.Equal(got, []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}) {
		t.Errorf("Vary %q", got)
	}
	if !slices.Equal(varyOrigin, []string{"Origin"}) || cap(varyOrigin) != 1 {
		t.Errorf("the shared Vary value became %q (capacity %d)", varyOrigin, cap(varyOrigin))
	}
	// A handler's own Vary is kept, Origin after it.
	vh := Public(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	rec := httptest.NewRecorder()
	rec.Header().Set("Vary", "Accept-Encoding")
	vh.ServeHTTP(rec, req)
	if got := rec.Header().Values("Vary"); !slices.Equal(got, []string{"Accept-Encoding", "Origin"}) {
		t.Errorf("Vary after the wrapped writer's own: %q", got)
	}
}

func TestPublicActualRequest(t *testing.T) {
	w := serve(Public(ok), http.MethodPost, "https://shop.example:8443", nil)
	if w.Code != http.StatusTeapot {
		t.Fatalf("status %d: the handler did not run", w.Code)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://shop.example:8443" {
		t.Errorf("Allow-Origin %q", got)
	}
	if got := w.Header().Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Allow-Credentials %q", got)
	}
	if got := w.Header().Get("Vary"); got != "Origin" {
		t.Errorf("Vary %q, want Origin", got)
	}
	// An OPTIONS without Access-Control-Request-Method is not a preflight.
	if w := serve(Public(ok), http.MethodOptions, "https://shop.example", nil); w.Code != http.StatusTeapot {
		t.Errorf("plain OPTIONS: status %d, want the handler's", w.Code)
	}
}

func TestNoOriginOrBadOrigin(t *testing.T) {
	for _, origin := range []string{"", "null", "file://x", "https://a.example/path", "javascript:alert(1)"} {
		w := serve(Public(ok), http.MethodPost, origin, nil)
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("origin %q: Allow-Origin %q, want none", origin, got)
		}
		if w.Code != http.StatusTeapot {
			t.Errorf("origin %q: status %d", origin, w.Code)
		}
	}
}

func TestAllowList(t *testing.T) {
	h := AllowList([]string{"https://console.example"}, ok)
	pre := map[string]string{"Access-Control-Request-Method": "DELETE"}
	if w := serve(h, http.MethodOptions, "https://console.example", pre); w.Code != http.StatusNoContent ||
		w.Header().Get("Access-Control-Allow-Origin") != "https://console.example" {
		t.Errorf("listed origin: status %d, Allow-Origin %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
	}
	w := serve(h, http.MethodOptions, "https://evil.example", pre)
	if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code != http.StatusTeapot {
		t.Errorf("unlisted origin: status %d, Allow-Origin %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
	}
	// Off by default: the handler itself, no header at all.
	if w := serve(AllowList(nil, ok), http.MethodGet, "https://console.example", nil); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Vary") != "" {
		t.Errorf("empty list: headers %v", w.Header())
	}
	if w := serve(AllowList([]string{"*"}, ok), http.MethodGet, "https://any.example", nil); w.Header().Get("Access-Control-Allow-Origin") != "https://any.example" {
		t.Errorf("*: Allow-Origin %q", w.Header().Get("Access-Control-Allow-Origin"))
	}
}

func TestCheckOrigins(t *testing.T) {
	if err := CheckOrigins([]string{"*", "https://a.example", "http://127.0.0.1:3000"}); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"a.example", "https://a.example/", "ftp://a.example", "https://a.example/x"} {
		if err := CheckOrigins([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
