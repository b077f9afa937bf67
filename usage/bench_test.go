package usage_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// BenchmarkRecord50 is the cost Record adds to one /flags request of 50
// flags (BenchmarkServeFlags50's workload), distinct ids over 10,000
// persons; layout counts through RecordAll, as evalsvc does; the parallel
// variant has GOMAXPROCS×4 goroutines recording.
func BenchmarkRecord50(b *testing.B) {
	evals := make([]usage.Eval, 50)
	for i := range evals {
		evals[i] = usage.Eval{Flag: fmt.Sprintf("flag-%02d", i), Value: []string{"true", "false", "a", "b", "c"}[i%5], Stored: i%2 == 0}
	}
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
	}
	b.Run("serial", func(b *testing.B) {
		r, _ := usage.NewRecorder(usage.RecorderConfig{Store: memstore.New()})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Record(1, usage.EndpointFlags, ids[(i*7919)%len(ids)], true, evals)
			i++
		}
	})
	// layout is serial through RecordAll, as evalsvc counts: the keys
	// checked once per request, by the Layout's pointer; every answer
	// stored, as for a person with precomputed results (mixed: half of
	// them, which RecordAll reads flag by flag).
	for _, mixed := range []bool{false, true} {
		name := map[bool]string{false: "layout", true: "layout-mixed"}[mixed]
		b.Run(name, func(b *testing.B) {
			r, _ := usage.NewRecorder(usage.RecorderConfig{Store: memstore.New()})
			keys := make([]string, len(evals))
			results := make([]flags.Result, len(evals))
			answers := make([]usage.Answer, len(evals))
			var tally usage.Tally
			for i, e := range evals {
				keys[i] = e.Flag
				results[i] = flags.Result{Key: e.Flag, Enabled: e.Value != "false"}
				if e.Value != "true" && e.Value != "false" {
					results[i].Variant = e.Value
				}
				answers[i] = usage.Answer{Result: &results[i], Stored: !mixed || e.Stored}
				if answers[i].Stored {
					tally.Stored++
				}
			}
			l := usage.NewLayout(1, keys)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.RecordAll(l, usage.EndpointFlags, ids[(i*7919)%len(ids)], answers, tally)
				i++
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		r, _ := usage.NewRecorder(usage.RecorderConfig{Store: memstore.New()})
		b.ReportAllocs()
		b.SetParallelism(4)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				r.Record(1, usage.EndpointFlags, ids[(i*7919)%int64(len(ids))], true, evals)
			}
		})
	})
}
