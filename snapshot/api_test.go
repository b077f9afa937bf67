package snapshot_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
	if code, out := call(t, h, "POST", "/api/snapshots/nightly/verify", ""); code != http.StatusAccepted || out["state"] != "running" {
		t.Errorf("verify: %d %v", code, out)
	}
	if code, out := call(t, h, "GET", "/api/snapshots/nightly/nope", ""); code != http.StatusNotFound || out["code"] != "not_found" {
		t.Errorf("unknown route: %d %v", code, out)
	}
}

// TestAPIPartial: a snapshot interrupted after some parts is listed as
// partial with the rows and parts it keeps, and creating it again under
// the same name completes it.
func TestAPIPartial(t *testing.T) {
	src := seeded(t, 2000)
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := snapshot.Create(ctx, snapshot.Options{Store: src, Dir: filepath.Join(root, "cut"), RowGroupRows: 50, PartRows: 100,
		Progress: func(p snapshot.Progress) {
			if p.Parts >= 1+20+20+20+5 { // in the rows table (key order: groups, index, mappings, persons, rows)
				cancel()
			}
		}})
	cancel()
	if err == nil {
		t.Fatal("the interrupted create succeeded")
	}
	svc := snapshot.NewService(snapshot.ServiceConfig{Root: root, Store: src, Backend: "pebble"})
	t.Cleanup(svc.Close)
	h := svc.Handler()
	code, job := call(t, h, "GET", "/api/snapshots/cut", "")
	if code != http.StatusOK || job["state"] != "partial" || job["table"] != "rows" || job["parts"].(float64) < 66 || job["rows"].(float64) < 6500 {
		t.Fatalf("interrupted snapshot: %d %v, want partial in the rows table with at least 66 parts and 6,500 rows kept", code, job)
	}
	if code, out := call(t, h, "POST", "/api/snapshots/nightly/verify", ""); code != http.StatusNotFound {
		t.Errorf("verify of a missing snapshot: %d %v", code, out)
	}
	if code, out := call(t, h, "POST", "/api/snapshots/cut/verify", ""); code != http.StatusConflict || out["code"] != "failed_precondition" {
		t.Errorf("verify of a partial snapshot: %d %v, want refused", code, out)
	}
	if code, out := call(t, h, "POST", "/api/snapshots", `{"name":"cut"}`); code != http.StatusAccepted {
		t.Fatalf("create again: %d %v", code, out)
	}
	for {
		_, job = call(t, h, "GET", "/api/snapshots/cut", "")
		if job["state"] != "running" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if job["state"] != "complete" || job["rows"].(float64) != 8011 {
		t.Fatalf("resumed through the API: %v, want complete with 8011 rows", job)
	}
}
