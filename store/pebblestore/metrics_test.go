package pebblestore_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	b.PutRow(&store.Row{Team: 1, DistinctID: "d", PersonID: "p", Properties: []byte("{}")})
	b.PutMapping(store.Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: 1})
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	s.GetRow(ctx, 1, "d")
	s.GetRow(ctx, 1, "d")
	s.GetRow(ctx, 1, "missing")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"vexil_pebblestore_apply_seconds", "vexil_pebblestore_applied_writes_total", "vexil_pebblestore_op_errors_total",
		"vexil_pebblestore_get_row_total", "vexil_pebblestore_disk_bytes", "vexil_pebblestore_memtable_bytes",
		"vexil_pebblestore_read_amplification", "vexil_pebblestore_compaction_debt_bytes",
		"vexil_pebblestore_block_cache_hits_total", "vexil_pebblestore_block_cache_misses_total",
		"vexil_pebblestore_write_stalls_total", "vexil_pebblestore_write_stall_seconds_total",
		"vexil_pebblestore_flushes_total", "vexil_pebblestore_compactions_total", "vexil_pebblestore_l0_files",
	} {
		if !got[name] {
			t.Errorf("metric %s not gathered", name)
		}
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vexil_pebblestore_applied_writes_total":
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 2 {
				t.Errorf("applied writes = %v, want 2", v)
			}
		case "vexil_pebblestore_apply_seconds":
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
				t.Errorf("apply_seconds count = %d, want 1", n)
			}
		case "vexil_pebblestore_disk_bytes":
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v <= 0 {
				t.Errorf("disk bytes = %v", v)
			}
		}
	}
	for _, m := range mfs {
		if m.GetName() != "vexil_pebblestore_get_row_total" {
			continue
		}
		for _, s := range m.GetMetric() {
			want := map[string]float64{"hit": 2, "miss": 1}[s.GetLabel()[0].GetValue()]
			if s.GetCounter().GetValue() != want {
				t.Errorf("get_row %s = %v, want %v", s.GetLabel()[0].GetValue(), s.GetCounter().GetValue(), want)
			}
		}
	}
	// A second store on the same registry is refused.
	if _, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir(), Registerer: reg}); err == nil {
		t.Fatal("a second store registered the same metrics")
	}
}
