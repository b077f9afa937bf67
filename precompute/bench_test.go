package precompute_test

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/precompute/results"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

var (
	benchPersons = flag.Int("bench.persons", 100_000, "rows BenchmarkRematerialize stores")
	benchFlags   = flag.Int("bench.flags", 50, "flags of the benchmark team")
	benchRate    = flag.Int("bench.rate", 10_000, "person writes/s of BenchmarkPersonWrites")
	benchSeconds = flag.Int("bench.seconds", 10, "duration of BenchmarkPersonWrites")
)

// benchFlagJSON is flag i of the peers' workload: half boolean at 50%, half
// multivariate gated on country US.
func benchFlagJSON(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf(`{"key":"bench-%03d","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`, i)
	}
	return fmt.Sprintf(`{"key":"bench-%03d","active":true,"filters":{"groups":[{"properties":[{"key":"country","type":"person","value":"US"}],"rollout_percentage":100}],
		"multivariate":{"variants":[{"key":"a","rollout_percentage":34},{"key":"b","rollout_percentage":33},{"key":"c","rollout_percentage":33}]}}}`, i)
}

func benchProps(i int) []byte {
	countries := []string{"US", "DE", "FR", "GB"}
	plans := []string{"free", "pro", "enterprise"}
	return fmt.Appendf(nil, `{"country":%q,"email":"user-%d@example.com","plan":%q,"signup":"2026-0%d-1%dT00:00:00Z"}`,
		countries[i%4], i, plans[i%3], 1+i%9, i%10)
}

// loadRows writes n rows straight into the store (the projector's output,
// without the projector: this benchmark measures precompute).
func loadRows(b *testing.B, e *env, n int) {
	ctx := context.Background()
	var batch store.Batch
	for i := range n {
		props := benchProps(i)
		batch.PutRow(&store.Row{Team: e.team, DistinctID: fmt.Sprintf("user-%07d", i), PersonID: fmt.Sprintf("p-%d", i),
			PersonVersion: 1, Revision: store.Revision(props), Properties: props})
		if batch.Len() == 10_000 || i == n-1 {
			if err := e.st.Apply(ctx, &batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
}

// waitRun waits for the team's run state to finish with a plan other than
// the fingerprint given, and returns it.
func waitRun(b *testing.B, e *env, after uint64) *precompute.RunState {
	var st *precompute.RunState
	polltest.Eventually(b, 30*time.Minute, func() error {
		var err error
		if st, err = precompute.Status(e.ctx, e.js, "", e.team); err != nil {
			b.Fatal(err)
		}
		if st == nil || st.Fingerprint == after || !st.Finished() {
			return fmt.Errorf("run did not finish: %+v", st)
		}
		return nil
	})
	return st
}

// BenchmarkRematerialize measures, on Pebble with -bench.persons rows and
// -bench.flags flags: the first materialisation of every flag on every row,
// then the re-materialisation of one changed flag across all rows (the
// issue's target: < 30 s for 1M rows and 50 flags), and what the stored
// results cost per row and per flag. Run it once per size:
//
//	go test ./precompute -run '^$' -bench Rematerialize -benchtime 1x -args -bench.persons 1000000
func BenchmarkRematerialize(b *testing.B) {
	for range b.N {
		e := newEnv(b, backends[1]) // pebblestore
		b.StopTimer()
		n := *benchPersons
		start := time.Now()
		loadRows(b, e, n)
		b.Logf("%d rows loaded in %v", n, time.Since(start).Round(time.Millisecond))
		for i := range *benchFlags {
			e.createFlag(parseFlag(b, benchFlagJSON(i)))
		}
		reg := prometheus.NewRegistry()
		e.startWorker(precompute.Config{PageSize: 1000, Concurrency: 4, AckWait: time.Minute, Registry: reg, Logger: quiet()})

		b.StartTimer()
		first := waitRun(b, e, 0) // the first materialisation, from the worker's reconcile
		b.StopTimer()
		took := first.FinishedAt.Sub(first.StartedAt)
		b.Logf("first materialisation: %d rows × %d flags in %v (%.0f rows/s)", first.RowsDone, *benchFlags, took.Round(time.Millisecond),
			float64(first.RowsDone)/took.Seconds())

		// One flag changes: its rollout.
		b.StartTimer()
		e.updateFlag("bench-000", func(f *flags.Flag) { p := 30.0; f.Filters.Groups[0].RolloutPercentage = &p })
		e.notify("flag")
		second := waitRun(b, e, first.Fingerprint)
		b.StopTimer()
		took = second.FinishedAt.Sub(second.StartedAt)
		b.Logf("one changed flag re-materialised: %d rows in %v (%.0f rows/s), flags %v", second.RowsDone, took.Round(time.Millisecond),
			float64(second.RowsDone)/took.Seconds(), second.Flags)
		b.ReportMetric(took.Seconds(), "s/flag-change")
		b.ReportMetric(float64(second.RowsDone)/took.Seconds(), "rows/s")

		// Storage: the stored results of a sample of rows.
		var resBytes, propBytes, entries int
		sample := 0
		for i := 0; i < n; i += max(1, n/1000) {
			row, err := e.st.GetRow(e.ctx, e.team, fmt.Sprintf("user-%07d", i))
			if err != nil {
				b.Fatal(err)
			}
			_, es, err := results.Decode(row.Results, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			resBytes += len(row.Results)
			propBytes += len(row.Properties)
			entries += len(es)
			sample++
		}
		b.ReportMetric(float64(resBytes)/float64(sample), "results-B/row")
		b.ReportMetric(float64(resBytes)/float64(entries), "B/flag")
		b.Logf("stored results: %.0f B per row for %.1f flags (%.1f B per flag); properties %.0f B per row",
			float64(resBytes)/float64(sample), float64(entries)/float64(sample), float64(resBytes)/float64(entries), float64(propBytes)/float64(sample))
		e.stopWorkers()
	}
}

// BenchmarkPersonWrites publishes person writes through JetStream at
// -bench.rate for -bench.seconds into the projector (Pebble) with the
// precompute worker running, and reports the recompute rate and how far
// precompute lagged: the time from the last write until every triggered
// row was recomputed.
//
//	go test ./precompute -run '^$' -bench PersonWrites -benchtime 1x -args -bench.rate 10000 -bench.seconds 20
func BenchmarkPersonWrites(b *testing.B) {
	for range b.N {
		e := newEnv(b, backends[1])
		b.StopTimer()
		for i := range *benchFlags {
			e.createFlag(parseFlag(b, benchFlagJSON(i)))
		}
		reg := prometheus.NewRegistry()
		e.startWorker(precompute.Config{Registry: reg, Logger: quiet(), AckWait: time.Minute})
		e.waitQuiet()
		persons := 100_000
		total := *benchRate * *benchSeconds
		b.StartTimer()
		start := time.Now()
		for i := range total {
			target := start.Add(time.Duration(i) * time.Second / time.Duration(*benchRate))
			if d := time.Until(target); d > 0 {
				time.Sleep(d)
			}
			p := i % persons
			set := map[string]string{"plan": strconv.Quote([]string{"free", "pro"}[i%2]), "country": `"US"`}
			env := &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: e.team, PersonId: fmt.Sprintf("p-%d", p), DistinctIds: []string{fmt.Sprintf("user-%d", p)},
				Set: set, Version: ptr(int64(i + 1))}}}
			data, err := proto.Marshal(env)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.js.PublishAsync(fmt.Sprintf("vexil.persons.%d", e.team), data); err != nil {
				b.Fatal(err)
			}
		}
		<-e.js.PublishAsyncComplete()
		published := time.Since(start)
		e.waitQuiet()
		b.StopTimer()
		drained := time.Since(start)
		computed := counter(b, reg, "vexil_precompute_computed_total")
		b.Logf("%d writes published in %v (%.0f/s); precompute recomputed %.0f rows (%.0f/s over the run), caught up %v after the last write",
			total, published.Round(time.Millisecond), float64(total)/published.Seconds(), computed, computed/drained.Seconds(),
			(drained - published).Round(time.Millisecond))
		b.ReportMetric(computed/drained.Seconds(), "recomputes/s")
		b.ReportMetric((drained - published).Seconds(), "s-lag-at-end")
		e.stopWorkers()
	}
}

func ptr[T any](v T) *T { return &v }

// counter sums a metric of reg over its series.
func counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	sum, err := gatherSum(reg, name)
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

// gatherSum is counter's sum, or the error of a collector that could not
// be read (the backlog's, while NATS is away).
func gatherSum(reg *prometheus.Registry, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
	}
	return sum, nil
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if h := m.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return m.GetGauge().GetValue()
}
