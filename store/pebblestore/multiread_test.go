package pebblestore_test

import (
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/storetest"
)

func TestIndexReader(t *testing.T) {
	storetest.RunIndexReader(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}
