package scyllastore_test

import (
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
	"github.com/vexil-dev/vexil/store/storetest"
)

// TestContract runs the shared store contract suite, each subtest on a
// fresh keyspace of the test Cassandra (VEXIL_TEST_CASSANDRA).
func TestContract(t *testing.T) {
	scyllastoretest.Config(t) // skip (or fail under CI) before any subtest without Cassandra
	storetest.Run(t, func(t *testing.T) store.Store { return scyllastoretest.New(t) })
}

// TestInboxContract runs the inbox contract (store.InboxStore), each
// subtest on a fresh keyspace.
func TestInboxContract(t *testing.T) {
	scyllastoretest.Config(t)
	storetest.RunInbox(t, func(t *testing.T) store.Store { return scyllastoretest.New(t) })
}

// TestDurable checks that writes survive closing the store and opening a
// new one (a new session) on the same keyspace.
func TestDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T) (store.Store, func(t *testing.T) store.Store) {
		cfg := scyllastoretest.Config(t)
		s := scyllastoretest.Open(t, cfg)
		return s, func(t *testing.T) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return scyllastoretest.Open(t, cfg)
		}
	})
}
