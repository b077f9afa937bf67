package snapshot_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/snapshot"
)

// TestIndependentReader has DuckDB (from PyPI, scripts/snapshot-read.sh)
// read a snapshot and a what-if result: counts per table, sample rows, a
// JSON query on the properties, and the what-if answers.
func TestIndependentReader(t *testing.T) {
	python := os.Getenv("VEXIL_SNAPSHOT_PYTHON")
	if python == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VEXIL_SNAPSHOT_PYTHON is not set (scripts/snapshot-read.sh --venv makes it); CI must run this test")
		}
		t.Skip("VEXIL_SNAPSHOT_PYTHON not set: run scripts/snapshot-read.sh")
	}
	ctx := context.Background()
	src := seeded(t, 500)
	dir := filepath.Join(t.TempDir(), "snap")
	if _, err := snapshot.Create(ctx, snapshot.Options{Store: src, Dir: dir, RowGroupRows: 64, PartRows: 200}); err != nil {
		t.Fatal(err)
	}
	defs, err := snapshot.ParseFlagFile([]byte(`{"id":7,"key":"beta","active":true,"filters":{"groups":[
		{"properties":[{"key":"n","type":"person","operator":"lt","value":100}],"rollout_percentage":100}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results.parquet")
	n, err := snapshot.WhatIfFile(ctx, dir, snapshot.WhatIfOptions{Definitions: defs, Now: time.Unix(1_800_000_000, 0)}, out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 500 {
		t.Fatalf("what-if wrote %d results, want 500", n)
	}
	expect := map[string]any{
		"counts": map[string]int{"persons": 500, "mappings": 500, "person_distinct_ids": 500, "rows": 500, "groups": 10, "group_types": 1},
		"rows": []map[string]any{
			{"team": 1, "distinct_id": "d0", "person_id": "p0", "properties": map[string]any{"n": 0, "plan": "pro"}},
			{"team": 2, "distinct_id": "d377", "person_id": "p377", "properties": map[string]any{"n": 377, "plan": "pro"}},
		},
		"plans": [][]any{{"pro", 500}},
		"whatif": map[string]any{"rows": 500, "enabled": 100, "sample": []map[string]any{
			{"distinct_id": "d42", "enabled": true, "reason": "condition_match"},
			{"distinct_id": "d420", "enabled": false, "reason": "no_condition_match"},
		}},
	}
	b, err := json.Marshal(expect)
	if err != nil {
		t.Fatal(err)
	}
	ef := filepath.Join(t.TempDir(), "expect.json")
	if err := os.WriteFile(ef, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/read_snapshot.py", dir, ef, out)
	got, err := cmd.CombinedOutput()
	t.Logf("%s", got)
	if err != nil {
		t.Fatalf("read_snapshot.py: %v", err)
	}
}
