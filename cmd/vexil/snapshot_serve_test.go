package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admin"
)

// TestServeSnapshots takes a snapshot through a running node's management
// API: refused without a key, then created in the background and followed
// to complete, with the projector's applied sequence as its cut and the
// team's definitions; listed and inspected with a team:read key, which
// may not create or verify; verified in the background, and found corrupt
// once a part is changed on disk.
func TestServeSnapshots(t *testing.T) {
	n := testNode(t)
	tm := defineTeam(t, n)
	seedE2E(t, n, tm, 30)
	base := "http://" + n.adminSrv.HTTPAddr() + "/api/snapshots"
	do := func(method, url, key, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %d %q", method, url, resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}
	if code, _ := do("POST", base, "", `{"name":"s1"}`); code != http.StatusUnauthorized {
		t.Fatalf("without a key: %d, want 401", code)
	}
	if code, out := do("POST", base, tm.personal, `{"name":"s1"}`); code != http.StatusAccepted {
		t.Fatalf("create: %d %v", code, out)
	}
	var job map[string]any
	for {
		var code int
		code, job = do("GET", base+"/s1", tm.personal, "")
		if code != http.StatusOK {
			t.Fatalf("status: %d %v", code, job)
		}
		if job["state"] != "running" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if job["state"] != "complete" {
		t.Fatalf("snapshot: %v", job)
	}
	m := job["manifest"].(map[string]any)
	// The cut is the ack floor, which may lag the rows already visible
	// (acks are sent after the write): lower is conservative, never wrong.
	if cut, end := m["cut_sequence"].(float64), m["end_sequence"].(float64); cut > end || end < 30 || m["stream"] != "VEXIL_INGEST" {
		t.Errorf("manifest cut %v end %v on %v, want cut <= end and end >= the 30 persons published", cut, end, m["stream"])
	}
	tables := map[string]float64{}
	for _, tb := range m["tables"].([]any) {
		tb := tb.(map[string]any)
		tables[tb["name"].(string)] = tb["rows"].(float64)
	}
	if tables["rows"] < 30 || tables["definitions"] < 2 {
		t.Errorf("tables %v: want the 30 rows and the team's definitions", tables)
	}
	// The snapshot read a Pebble checkpoint beside the store, removed after.
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(n.snapshots.Root()), checkpointPrefix+"*")); len(left) != 0 || n.pebble == nil {
		t.Errorf("checkpoints left in the data directory: %v (pebble store %v)", left, n.pebble != nil)
	}
	if code, list := do("GET", base, tm.personal, ""); code != 200 || len(list["results"].([]any)) != 1 || list["truncated"] != false {
		t.Errorf("list: %d %v", code, list)
	}
	var parts float64
	for _, tb := range m["tables"].([]any) {
		parts += float64(len(tb.(map[string]any)["parts"].([]any)))
	}
	if job["parts"] != parts || parts < 6 {
		t.Errorf("job parts %v, manifest parts %v (want equal, at least one per non-empty table)", job["parts"], parts)
	}

	_, reader, err := admin.CreatePersonalKey(context.Background(), n.catalog, nil, []string{admin.ScopeTeamRead}, "reader", "test")
	if err != nil {
		t.Fatal(err)
	}
	if code, list := do("GET", base, reader, ""); code != 200 || len(list["results"].([]any)) != 1 {
		t.Errorf("list with team:read: %d %v", code, list)
	}
	if code, out := do("GET", base+"/s1", reader, ""); code != 200 || out["state"] != "complete" || out["manifest"] == nil {
		t.Errorf("inspect with team:read: %d %v", code, out)
	}
	for _, p := range []string{base, base + "/s1/verify"} {
		if code, out := do("POST", p, reader, `{}`); code != http.StatusForbidden || reason(out) != "permission_denied" {
			t.Errorf("POST %s with team:read: %d %v, want 403 permission_denied", p, code, out)
		}
	}

	if code, out := do("GET", base+"/s1/verify", tm.personal, ""); code != http.StatusNotFound || reason(out) != "not_found" {
		t.Errorf("verification before any: %d %v, want 404", code, out)
	}
	if code, out := do("POST", base+"/nope/verify", tm.personal, ""); code != http.StatusNotFound || reason(out) != "not_found" {
		t.Errorf("verify of a missing snapshot: %d %v, want 404", code, out)
	}
	verify := func() map[string]any {
		t.Helper()
		if code, out := do("POST", base+"/s1/verify", tm.personal, ""); code != http.StatusAccepted {
			t.Fatalf("verify: %d %v", code, out)
		}
		for {
			code, out := do("GET", base+"/s1/verify", tm.personal, "")
			if code != http.StatusOK {
				t.Fatalf("verification: %d %v", code, out)
			}
			if out["state"] != "running" {
				return out
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if v := verify(); v["state"] != "ok" || v["parts_checked"] != parts || v["parts_total"] != parts || v["finished_at"] == nil {
		t.Errorf("verification: %v, want ok with %v parts checked", v, parts)
	}
	// One byte changed in the persons part: same size, another SHA-256.
	part := filepath.Join(n.snapshots.Root(), "s1", "persons", "part-00000.parquet")
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := verify(); v["state"] != "corrupt" || !strings.Contains(v["error"].(string), "persons/part-00000.parquet: SHA-256") {
		t.Errorf("verification of a changed part: %v, want corrupt naming the part and the check", v)
	}
	if code, out := do("GET", base+"/s1/restore", tm.personal, ""); code != http.StatusNotFound {
		t.Errorf("GET restore: %d %v, want 404 (restore is a CLI operation)", code, out)
	}
}

// reason is the stable error code of a management API error body (a
// google.rpc.Status whose ErrorInfo's reason is errcode's code).
func reason(body map[string]any) string {
	ds, _ := body["details"].([]any)
	for _, d := range ds {
		if m, ok := d.(map[string]any); ok {
			if r, ok := m["reason"].(string); ok {
				return r
			}
		}
	}
	return ""
}
