package admin

import (
	"context"
	"net"
	"net/http"
	"testing"
)

// The management API keeps CORS off unless configured; then only the
// listed origins are answered, preflights before the key check (they carry
// no key). The public early access list answers every origin.
func TestManagementCORS(t *testing.T) {
	e := newEnv(t)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(ServerConfig{Service: e.svc, CORSOrigins: []string{"https://console.example/"}}); err == nil {
		t.Fatal("an origin with a path was accepted")
	}
	srv, err := NewServer(ServerConfig{Service: e.svc, GRPCListener: gl, HTTPListener: hl, CORSOrigins: []string{"https://console.example"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	configured := "http://" + srv.HTTPAddr()

	do := func(base, method, path, origin string, preflight bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Origin", origin)
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		} else {
			req.Header.Set("Authorization", "Bearer "+e.root)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	const console = "https://console.example"
	for _, c := range []struct {
		name, base, method, path, origin string
		preflight                        bool
		status                           int
		allow                            string
	}{
		{"off: preflight", e.base, http.MethodOptions, "/api/projects", console, true, 0, ""},
		{"off: request", e.base, http.MethodGet, "/api/projects", console, false, 200, ""},
		{"on: preflight", configured, http.MethodOptions, "/api/projects", console, true, 204, console},
		{"on: request", configured, http.MethodGet, "/api/projects", console, false, 200, console},
		{"on: other origin", configured, http.MethodGet, "/api/projects", "https://evil.example", false, 200, ""},
		{"early access preflight", e.base, http.MethodOptions, "/api/early_access_features/", "https://shop.example", true, 204, "https://shop.example"},
	} {
		res := do(c.base, c.method, c.path, c.origin, c.preflight)
		if c.status != 0 && res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, res.StatusCode, c.status)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != c.allow {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", c.name, got, c.allow)
		}
		if c.allow != "" && res.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("%s: no Access-Control-Allow-Credentials", c.name)
		}
	}
}
