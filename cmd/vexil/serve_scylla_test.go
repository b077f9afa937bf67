package main

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/schema/schematest"
)

// TestServeOnScylla runs vexil serve with the store and the catalog in
// ScyllaDB (the test Cassandra): definitions through the management API,
// persons through the ingest stream, /flags answers from the rows.
func TestServeOnScylla(t *testing.T) {
	addr := schematest.Addr(t) // skips locally without Cassandra; fails under CI=true
	ks := schematest.Keyspace(t, schematest.Session(t))
	c := config.Default()
	c.Scylla.Hosts, c.Scylla.Keyspace = strings.Split(addr, ","), ks
	n := testNodeWith(t, c)
	tm := defineTeam(t, n)
	const persons = 30
	seedE2E(t, n, tm, persons)
	checkFlagsMatchEngine(t, n, tm, persons)
	checkPrecompute(t, n, tm, persons)
	if got := counterValue(t, n, "vexil_scyllastore_applied_writes_total"); got < persons {
		t.Errorf("vexil_scyllastore_applied_writes_total = %v, want at least one per person (%d): the store's metrics are not on the node's registry", got, persons)
	}
}

// TestDemoSeededOncePerCluster starts two nodes on one ScyllaDB keyspace
// (each with its own data directory) and seeds the demo on both at once:
// one demo team is created, and both nodes, and a later start, print the
// same team and keys.
func TestDemoSeededOncePerCluster(t *testing.T) {
	addr := schematest.Addr(t)
	ks := schematest.Keyspace(t, schematest.Session(t))
	c := config.Default()
	c.Scylla.Hosts, c.Scylla.Keyspace = strings.Split(addr, ","), ks
	c.Precompute.Enabled = false
	c.Demo.Enabled, c.Demo.Persons = true, 20
	nodes := []*node{testNodeWith(t, c), testNodeWith(t, c)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	infos := make([]demoInfo, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { infos[i], errs[i] = seedDemo(t.Context(), n, c, log) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if infos[0] != infos[1] || infos[0].TeamID <= 0 || !strings.HasPrefix(infos[0].PersonalKey, "phx_") {
		t.Fatalf("the nodes print %+v and %+v", infos[0], infos[1])
	}
	teams, err := nodes[0].catalog.ListTeams(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(teams) != 1 || teams[0].ID != infos[0].TeamID || teams[0].Name != "Demo" {
		t.Fatalf("teams %+v, want the one demo team", teams)
	}
	again, err := seedDemo(t.Context(), nodes[1], c, log)
	if err != nil || again != infos[0] {
		t.Fatalf("a later start: %+v %v, want %+v", again, err, infos[0])
	}
}
