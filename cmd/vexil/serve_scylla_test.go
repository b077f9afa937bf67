package main

import (
	"strings"
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
