package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/scyllacatalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
	"github.com/vexil-dev/vexil/store/storetest"
)

// TestSnapshotCommandsScylla: vexil snapshot create from a ScyllaDB
// keyspace (with its catalog's definitions) and restore into another one:
// the store's digest and the catalog's flag (id, version, key claim) and
// project token come back.
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
	srcCat, err := scyllacatalog.New(scyllacatalog.Config{Session: src.Session(), Keyspace: srcCfg.Keyspace})
	if err != nil {
		t.Fatal(err)
	}
	ch := catalog.Change{Actor: "test"}
	team, err := srcCat.CreateTeam(ctx, catalog.Team{ID: 1, Name: "one", GroupTypes: map[int]string{0: "company"}}, ch)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := flags.ParseFlag([]byte(`{"key":"beta","active":true,"filters":{"groups":[{"rollout_percentage":30}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	fl.TeamID = team.ID
	rec, err := srcCat.CreateFlag(ctx, catalog.FlagRecord{Flag: fl}, ch)
	if err != nil {
		t.Fatal(err)
	}
	rec.Flag.Name = "renamed"
	if rec, err = srcCat.UpdateFlag(ctx, rec, ch); err != nil {
		t.Fatal(err)
	}
	token := catalog.APIKey{ID: "key_tok", Kind: catalog.KeyProjectToken, Prefix: "phc_scylla", Hash: []byte("hash-of-phc_scylla"), Teams: []int64{team.ID}}
	if _, err := srcCat.PutKey(ctx, token, ch); err != nil {
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
	dstCat, err := scyllacatalog.New(scyllacatalog.Config{Session: dst.Session(), Keyspace: dstCfg.Keyspace})
	if err != nil {
		t.Fatal(err)
	}
	f, err := dstCat.GetFlagByKey(ctx, team.ID, "beta")
	if err != nil || f.Flag.ID != rec.Flag.ID || f.Flag.Version != 2 || f.Flag.Name != "renamed" {
		t.Fatalf("restored flag %+v (%v), want id %d at version 2", f.Flag, err, rec.Flag.ID)
	}
	if k, err := dstCat.GetKeyByHash(ctx, token.Hash); err != nil || k.Prefix != "phc_scylla" {
		t.Fatalf("restored project token %+v (%v)", k, err)
	}
	if tm, err := dstCat.GetTeam(ctx, team.ID); err != nil || tm.GroupTypes[0] != "company" || tm.Version != team.Version {
		t.Fatalf("restored team %+v (%v)", tm, err)
	}
	// Ids allocated later come after the restored ones.
	var nf flags.Flag
	nf.Key, nf.TeamID = "later", team.ID
	if later, err := dstCat.CreateFlag(ctx, catalog.FlagRecord{Flag: nf}, ch); err != nil || later.Flag.ID <= rec.Flag.ID {
		t.Fatalf("flag created after the restore: id %d (%v), want > %d", later.Flag.ID, err, rec.Flag.ID)
	}
}
