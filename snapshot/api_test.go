package snapshot_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/snapshot"
)

func call(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out
}

// TestAPI: create in the background, follow it to complete, list it, and
// the refusals (bad name, an existing snapshot, unknown fields).
func TestAPI(t *testing.T) {
	src := seeded(t, 200)
	svc := snapshot.NewService(snapshot.ServiceConfig{Root: t.TempDir(), Store: src, Backend: "pebble"})
	t.Cleanup(svc.Close)
	h := svc.Handler()
	code, job := call(t, h, "POST", "/api/snapshots", `{"name":"nightly","team":1}`)
	if code != http.StatusAccepted || job["state"] != "running" {
		t.Fatalf("create: %d %v", code, job)
	}
	for {
		code, job = call(t, h, "GET", "/api/snapshots/nightly", "")
		if code != http.StatusOK {
			t.Fatalf("status: %d %v", code, job)
		}
		if job["state"] != "running" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if job["state"] != "complete" {
		t.Fatalf("status: %v", job)
	}
	m := job["manifest"].(map[string]any)
	if m["team"].(float64) != 1 {
		t.Errorf("manifest team %v, want 1", m["team"])
	}
	// Team 1 holds persons 0, 2, 4, ...: 100 persons, mappings, index
	// entries and rows, 10 groups and 1 group type.
	if rows := job["rows"].(float64); rows != 411 {
		t.Errorf("rows %v, want 411", rows)
	}
	code, list := call(t, h, "GET", "/api/snapshots", "")
	if res := list["results"].([]any); code != 200 || len(res) != 1 || res[0].(map[string]any)["name"] != "nightly" {
		t.Fatalf("list: %d %v", code, list)
	}
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{`{"name":"nightly"}`, http.StatusConflict, "already exists"},
		{`{"name":"../x"}`, http.StatusBadRequest, "name"},
		{`{"nmae":"x"}`, http.StatusBadRequest, "unknown field"},
		{`{"team":-1}`, http.StatusBadRequest, "team"},
	} {
		code, out := call(t, h, "POST", "/api/snapshots", c.body)
		if code != c.code || !strings.Contains(out["message"].(string), c.want) {
			t.Errorf("POST %s: %d %v, want %d with %q", c.body, code, out, c.code, c.want)
		}
	}
	if code, _ := call(t, h, "GET", "/api/snapshots/none", ""); code != http.StatusNotFound {
		t.Errorf("status of a missing snapshot: %d", code)
	}
}
