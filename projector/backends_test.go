package projector_test

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// backend opens an empty store of one kind for a test.
type backend struct {
	name string
	open func(t testing.TB) store.Store
}

// backends lists the store backends every projector test runs against.
func backends(t testing.TB) []backend {
	return []backend{
		{"memstore", func(t testing.TB) store.Store { return newMemStore(t) }},
	}
}

func newMemStore(t testing.TB) store.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func nowTS() *timestamppb.Timestamp { return timestamppb.Now() }
