package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeSnapshots takes a snapshot through a running node's management
// API: refused without a key, then created in the background and followed
// to complete, with the projector's applied sequence as its cut and the
// team's definitions.
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
	if code, list := do("GET", base, tm.personal, ""); code != 200 || len(list["results"].([]any)) != 1 {
		t.Errorf("list: %d %v", code, list)
	}
}
