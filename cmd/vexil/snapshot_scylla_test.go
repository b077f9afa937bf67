package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
	"github.com/vexil-dev/vexil/store/storetest"
)

// TestSnapshotCommandsScylla: vexil snapshot create from a ScyllaDB
// keyspace (with its catalog's definitions) and restore into another one.
func TestSnapshotCommandsScylla(t *testing.T) {
	ctx := context.Background()
	srcCfg := scyllastoretest.Config(t)
	src := scyllastoretest.Open(t, srcCfg)
	var b store.Batch
	for i := range 50 {
		p := store.NewPerson(1, fmt.Sprintf("p%d", i))
		p.Version = 1
		b.PutPerson(p)
		b.PutMapping(store.Mapping{Team: 1, DistinctID: fmt.Sprintf("d%d", i), PersonID: p.ID, Version: 1})
		b.PutRow(&store.Row{Team: 1, DistinctID: fmt.Sprintf("d%d", i), PersonID: p.ID, PersonVersion: 1, Properties: []byte(`{}`)})
	}
	if err := src.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	want, err := storetest.Digest(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	hosts := strings.Join(srcCfg.Hosts, ",")
	snap := filepath.Join(t.TempDir(), "s")
	if code, out, errs := vexil(t, "snapshot", "create", "--scylla-hosts", hosts, "--scylla-keyspace", srcCfg.Keyspace, "--out", snap); code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errs)
	}
	if code, out, _ := vexil(t, "snapshot", "inspect", "--snapshot", snap); code != 0 || !strings.Contains(out, "backend scylla") || !strings.Contains(out, "definitions") {
		t.Fatalf("inspect: %d %s", code, out)
	}
	dstCfg := scyllastoretest.Config(t)
	if code, out, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--scylla-hosts", hosts, "--scylla-keyspace", dstCfg.Keyspace); code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	dst := scyllastoretest.Open(t, dstCfg)
	got, err := storetest.Digest(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("restored keyspace digest %x, want %x", got, want)
	}
}
