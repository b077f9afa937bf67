package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/storetest"
)

func vexil(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// seedDataDir writes n persons with their rows into DIR/store.
func seedDataDir(t *testing.T, dir string, n int) [32]byte {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b store.Batch
	for i := range n {
		p := store.NewPerson(1, fmt.Sprintf("p%d", i))
		p.Version = 1
		p.Set["plan"] = store.Register{Version: 1, Value: []byte(`"pro"`)}
		b.PutPerson(p)
		d := fmt.Sprintf("d%d", i)
		b.PutMapping(store.Mapping{Team: 1, DistinctID: d, PersonID: p.ID, Version: 1})
		b.PutIndex(store.IndexEntry{Team: 1, PersonID: p.ID, DistinctID: d})
		b.PutRow(&store.Row{Team: 1, DistinctID: d, PersonID: p.ID, PersonVersion: 1, Properties: []byte(fmt.Sprintf(`{"n":%d,"plan":"pro"}`, i))})
	}
	if err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	d, err := storetest.Digest(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func storeDigest(t *testing.T, dir string) [32]byte {
	t.Helper()
	st, err := pebblestore.Open(pebblestore.Config{Dir: storeDir(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := storetest.Digest(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSnapshotCommands runs vexil snapshot create, list, inspect, verify,
// restore and vexil whatif on a stopped node's data directory, and a
// corrupted file refused by verify and restore.
func TestSnapshotCommands(t *testing.T) {
	data := t.TempDir()
	want := seedDataDir(t, data, 300)
	root := t.TempDir()
	snap := filepath.Join(root, "s1")
	if code, out, errs := vexil(t, "snapshot", "create", "--data-dir", data, "--out", snap, "--row-group-rows", "64", "--part-rows", "128"); code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errs)
	}
	if code, out, _ := vexil(t, "snapshot", "list", "--dir", root); code != 0 || !strings.Contains(out, "s1") || !strings.Contains(out, "complete") {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out, _ := vexil(t, "snapshot", "inspect", "--snapshot", snap); code != 0 || !strings.Contains(out, "rows") || !strings.Contains(out, "300 records") {
		t.Fatalf("inspect: %d %s", code, out)
	}
	if code, out, errs := vexil(t, "snapshot", "verify", "--snapshot", snap); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}

	flagFile := filepath.Join(t.TempDir(), "f.json")
	os.WriteFile(flagFile, []byte(`{"key":"beta","active":true,"filters":{"groups":[{"properties":[{"key":"n","type":"person","operator":"lt","value":30}],"rollout_percentage":100}]}}`), 0o644)
	results := filepath.Join(t.TempDir(), "results.parquet")
	if code, out, errs := vexil(t, "whatif", "--snapshot", snap, "--flag-file", flagFile, "--out", results); code != 0 || !strings.Contains(out, "300 results") {
		t.Fatalf("whatif: %d %s %s", code, out, errs)
	}

	restored := t.TempDir()
	if code, out, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", restored); code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(restored, restoreMarker)); !os.IsNotExist(err) {
		t.Errorf("the incomplete marker is still there after a restore: %v", err)
	}
	if got := storeDigest(t, restored); got != want {
		t.Fatalf("restored digest %x, want %x", got, want)
	}

	// A truncated part: verify and restore refuse, naming the file.
	part := filepath.Join(snap, "rows", "part-00001.parquet")
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(part, b[:len(b)/2], 0o644)
	code, _, errs := vexil(t, "snapshot", "verify", "--snapshot", snap)
	if code != 1 || !strings.Contains(errs, "rows/part-00001.parquet") || !strings.Contains(errs, "truncated") {
		t.Fatalf("verify of a truncated file: %d %s", code, errs)
	}
	other := t.TempDir()
	code, _, errs = vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", other)
	if code != 1 || !strings.Contains(errs, "corrupt") {
		t.Fatalf("restore of a truncated snapshot: %d %s", code, errs)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("a refused restore wrote %d entries into the data directory", len(entries))
	}
}
