package memcatalog_test

import (
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/catalogtest"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
)

func TestContract(t *testing.T) {
	catalogtest.Run(t, catalogtest.Harness{
		New: func(t *testing.T) catalog.Catalog {
			return memcatalog.New(memcatalog.Config{Now: catalogtest.Clock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))})
		},
	})
}
