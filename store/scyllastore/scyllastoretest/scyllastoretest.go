// Package scyllastoretest opens a scyllastore.Store for tests on the
// Cassandra named by VEXIL_TEST_CASSANDRA, in a fresh keyspace with the
// schema applied, dropped when the test ends. Without the variable the test
// is skipped, or fails under CI=true (see schema/schematest).
package scyllastoretest

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/schema/schematest"
	"github.com/vexil-dev/vexil/store/scyllastore"
)

// Config returns a store Config for a fresh keyspace on the test Cassandra,
// with retries off (tests that expect errors see each once). The keyspace is
// dropped when tb ends; nothing creates it until a Store is opened with
// ApplySchema (set here).
func Config(tb testing.TB) scyllastore.Config {
	tb.Helper()
	addr := schematest.Addr(tb)
	ks := schematest.Keyspace(tb, schematest.Session(tb))
	return scyllastore.Config{
		Hosts:          []string{addr},
		Keyspace:       ks,
		Retries:        -1,
		Timeout:        30 * time.Second,
		ConnectTimeout: 30 * time.Second,
		ApplySchema:    true,
	}
}

// ClusterConfig is Config on the test cluster of
// VEXIL_TEST_CASSANDRA_CLUSTER (skipped without it, failed under CI=true):
// every node as a contact point, a fresh keyspace at replication factor
// len(nodes), dropped when tb ends.
func ClusterConfig(tb testing.TB) scyllastore.Config {
	tb.Helper()
	addrs := schematest.ClusterAddrs(tb)
	ks := schematest.Keyspace(tb, schematest.SessionOn(tb, addrs...))
	return scyllastore.Config{
		Hosts:             addrs,
		Keyspace:          ks,
		Retries:           -1,
		Timeout:           30 * time.Second,
		ConnectTimeout:    30 * time.Second,
		ApplySchema:       true,
		ReplicationFactor: len(addrs),
	}
}

// New opens a Store on a fresh keyspace (see Config), closed when tb ends.
func New(tb testing.TB) *scyllastore.Store {
	tb.Helper()
	return Open(tb, Config(tb))
}

// Open opens a Store with cfg, closed when tb ends (a second Close is
// harmless, so tests may close it themselves).
func Open(tb testing.TB, cfg scyllastore.Config) *scyllastore.Store {
	tb.Helper()
	s, err := scyllastore.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open scyllastore on %v/%s: %v", cfg.Hosts, cfg.Keyspace, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
