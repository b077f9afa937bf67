// Package schematest gives tests a real Cassandra (or ScyllaDB) to run
// against: the address comes from VEXIL_TEST_CASSANDRA (host:port, as printed
// by scripts/cassandra.sh addr), each test run gets a fresh keyspace with a
// random name, dropped when the test ends. Without an address the test is
// skipped, except under CI=true, where it fails: CI must run Cassandra.
// Tests that need several nodes take theirs from VEXIL_TEST_CASSANDRA_CLUSTER
// (scripts/cassandra-cluster.sh addr), under the same rule.
package schematest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// EnvAddr is the environment variable holding the host:port of the test
// Cassandra.
const EnvAddr = "VEXIL_TEST_CASSANDRA"

// Addr returns the test Cassandra's address, or skips the test (fails it
// under CI=true) when EnvAddr is empty.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VEXIL_TEST_CASSANDRA not set: CI must run Cassandra")
		}
		t.Skip("VEXIL_TEST_CASSANDRA not set: start a local Cassandra with scripts/cassandra.sh start and export VEXIL_TEST_CASSANDRA=$(scripts/cassandra.sh addr)")
	}
	return addr
}

// EnvCluster is the environment variable holding the comma-separated
// host:port of every node of the test cluster.
const EnvCluster = "VEXIL_TEST_CASSANDRA_CLUSTER"

// ClusterAddrs returns the nodes of the test cluster, or skips the test
// (fails it under CI=true) when EnvCluster is empty.
func ClusterAddrs(t testing.TB) []string {
	t.Helper()
	v := os.Getenv(EnvCluster)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VEXIL_TEST_CASSANDRA_CLUSTER not set: CI must run the Cassandra cluster")
		}
		t.Skip("VEXIL_TEST_CASSANDRA_CLUSTER not set: start a local cluster with scripts/cassandra-cluster.sh start and export VEXIL_TEST_CASSANDRA_CLUSTER=$(scripts/cassandra-cluster.sh addr)")
	}
	return strings.Split(v, ",")
}

// SessionOn opens a keyspace-less session on the given nodes (as Cluster
// configures it), closed when the test ends.
func SessionOn(t testing.TB, addrs ...string) *gocql.Session {
	t.Helper()
	s, err := clusterOn(addrs...).CreateSession()
	if err != nil {
		t.Fatalf("connect to %v: %v", addrs, err)
	}
	t.Cleanup(s.Close)
	return s
}

// Cluster returns a cluster config for the test Cassandra: protocol v4,
// token-aware round robin, no retries (tests that expect an error must see
// it once), generous timeouts for a shared 2-core machine.
func Cluster(t testing.TB) *gocql.ClusterConfig {
	t.Helper()
	return clusterOn(Addr(t))
}

func clusterOn(addrs ...string) *gocql.ClusterConfig {
	c := gocql.NewCluster(addrs...)
	c.ProtoVersion = 4
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	c.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: 0}
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 30 * time.Second
	c.Consistency = gocql.Quorum
	return c
}

// Session opens a keyspace-less session on the test Cassandra, closed when
// the test ends.
func Session(t testing.TB) *gocql.Session {
	t.Helper()
	s, err := Cluster(t).CreateSession()
	if err != nil {
		t.Fatalf("connect to %s: %v", os.Getenv(EnvAddr), err)
	}
	t.Cleanup(s.Close)
	return s
}

// Keyspace returns a fresh random keyspace name ("vexiltest_<hex>") and
// drops that keyspace (if something created it) when the test ends. The
// keyspace itself is not created: schema.Apply does that.
func Keyspace(t testing.TB, s *gocql.Session) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ks := "vexiltest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if err := s.Query(fmt.Sprintf("DROP KEYSPACE IF EXISTS %s", ks)).Exec(); err != nil {
			t.Errorf("drop keyspace %s: %v", ks, err)
		}
	})
	return ks
}
