package projector_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
)

// backend opens an empty store of one kind for a test.
type backend struct {
	name string
	open func(t testing.TB) store.Store
	// atomic is what the projector's Config.AtomicStore says for it.
	atomic bool
}

var (
	memBackend    = backend{"memstore", newMemStore, true}
	pebbleBackend = backend{"pebblestore", newPebbleStore, true}
	// scyllaBackend runs on the Cassandra of VEXIL_TEST_CASSANDRA; without
	// it a test using it skips, or fails when CI=true (scyllastoretest).
	scyllaBackend = backend{"scyllastore", func(t testing.TB) store.Store { return scyllastoretest.New(t) }, false}
)

// backends lists the store backends every projector test runs against.
func backends(testing.TB) []backend {
	return []backend{memBackend, pebbleBackend, scyllaBackend}
}

// benchBackends are the backends the benchmarks measure: Pebble, and the
// local Cassandra when VEXIL_TEST_CASSANDRA names one.
func benchBackends(testing.TB) []backend {
	bs := []backend{pebbleBackend}
	if *benchNull {
		bs = append(bs, backend{"null", func(testing.TB) store.Store { return nullStore{} }, true})
	}
	if os.Getenv("VEXIL_TEST_CASSANDRA") != "" {
		bs = append(bs, scyllaBackend)
	}
	return bs
}

func newMemStore(t testing.TB) store.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func newPebbleStore(t testing.TB) store.Store {
	s, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir(), CacheSize: int64(*benchCacheMB) << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func nowTS() *timestamppb.Timestamp { return timestamppb.Now() }
