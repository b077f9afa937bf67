package pebblecatalog_test

import (
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/catalogtest"
	"github.com/vexil-dev/vexil/catalog/pebblecatalog"
)

func TestContract(t *testing.T) {
	clock := catalogtest.Clock(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	dirs := map[catalog.Catalog]string{}
	open := func(t *testing.T, dir string) catalog.Catalog {
		c, err := pebblecatalog.Open(pebblecatalog.Config{Dir: dir, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		dirs[c] = dir
		return c
	}
	catalogtest.Run(t, catalogtest.Harness{
		New: func(t *testing.T) catalog.Catalog { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, c catalog.Catalog) catalog.Catalog {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dirs[c])
		},
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  pebblecatalog.Config
		ok   bool
	}{
		{"no dir", pebblecatalog.Config{}, false},
		{"negative cache", pebblecatalog.Config{Dir: "x", CacheSize: -1}, false},
		{"dir only", pebblecatalog.Config{Dir: "x"}, true},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
