package projector_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/projector"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

var (
	benchNull    = flag.Bool("bench.null", false, "also measure against a store that reads nothing and writes nothing (the pipeline's ceiling)")
	benchPersons = flag.Int("bench.persons", 100_000, "distinct persons the benchmark workloads write to")
	benchRate    = flag.Int("bench.rate", 10_000, "BenchmarkWriteToVisible: person writes per second")
	benchBatch   = flag.Int("bench.batch", 0, "projector BatchSize for the benchmarks (0: the default)")
	benchReads   = flag.Int("bench.reads", 0, "projector ReadConcurrency for the benchmarks (0: the default)")
	benchCacheMB = flag.Int("bench.cachemb", 0, "Pebble block cache in MiB for the benchmarks (0: pebblestore's default; vexil serve uses 256)")
	benchProfile = flag.String("bench.cpuprofile", "", "BenchmarkProjectorThroughput, BenchmarkEventThroughput: write a CPU profile of the timed part only (not the publishing before it) to this file")
)

// benchUpdate is the benchmark's person write: person i%persons, its own
// distinct id, three properties, version = message number (so that a row's
// PersonVersion names the write that produced it).
func benchUpdate(i, persons int) []byte {
	p := i % persons
	env := &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: 1, PersonId: fmt.Sprintf("person-%07d", p), DistinctIds: []string{fmt.Sprintf("distinct-%07d", p)},
		Set:     map[string]string{"plan": `"pro"`, "seats": fmt.Sprint(i % 97), "email": fmt.Sprintf(`"user%d@example.com"`, p)},
		Version: i64(int64(i + 1)),
	}}}
	b, err := proto.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

// publishN publishes n benchmark person writes with async JetStream acks.
func publishN(tb testing.TB, js jetstream.JetStream, n, persons int) {
	tb.Helper()
	publishAsync(tb, js, n, func(i int) *nats.Msg {
		return &nats.Msg{Subject: "vexil.persons.1", Data: benchUpdate(i, persons)}
	})
}

// publishAsync publishes msg(0) … msg(n-1) with async JetStream acks and
// waits for them all.
func publishAsync(tb testing.TB, js jetstream.JetStream, n int, msg func(i int) *nats.Msg) {
	tb.Helper()
	for i := range n {
		m := msg(i)
		_, err := js.PublishMsgAsync(m)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// A busy machine: wait for the acks in flight, then go on.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				tb.Fatal("publish acks did not complete")
			}
			_, err = js.PublishMsgAsync(m)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("publish acks did not complete")
	}
}

// BenchmarkProjectorThroughput measures person writes per second from
// JetStream (already stored) into the store, through decode, convergence,
// the durable store write and the ack. Run it with a fixed count, e.g.
//
//	go test ./projector -run '^$' -bench ProjectorThroughput -benchtime 300000x
func BenchmarkProjectorThroughput(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startNATS(b)
			js, _ := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
			publishN(b, js, b.N, *benchPersons)
			st := be.open(b)
			reg := prometheus.NewRegistry()
			p, err := projector.New(projector.Config{Conn: e.nc, Store: st, Logger: testLogger(b), Registerer: reg, BatchSize: *benchBatch, ReadConcurrency: *benchReads, AtomicStore: be.atomic})
			if err != nil {
				b.Fatal(err)
			}
			stopProfile := startProfile(b, *benchProfile)
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			r := run(p)
			e.waitApplied(b, projector.DefaultDurable)
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			stopProfile()
			b.StopTimer()
			// CPU per write (this process: projector, NATS server, Pebble)
			// is steadier than wall time on a shared machine.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/write")
			if err := r.stop(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			if batches := metricValue(b, reg, "vexil_projector_batch_messages", nil); batches > 0 {
				b.ReportMetric(float64(b.N)/batches, "writes/batch")
			}
			if be.name == "null" {
				return
			}
			// Spot-check the last write is visible.
			last := b.N - 1
			row, err := st.GetRow(context.Background(), 1, fmt.Sprintf("distinct-%07d", last%*benchPersons))
			if err != nil || row.PersonVersion != int64(last+1) {
				b.Fatalf("last row = %+v, %v", row, err)
			}
		})
	}
}

// startProfile starts a CPU profile into path ("": none) and returns the
// function that stops it.
func startProfile(tb testing.TB, path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
}

// cpuTime is the user + system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// visibility wraps a store to record when each benchmark write becomes
// visible: right after the Apply that holds its row returns.
type visibility struct {
	store.Store
	mu      sync.Mutex
	visible map[int64]time.Time // version → when its row became visible
}

func (v *visibility) Apply(ctx context.Context, b *store.Batch) error {
	if err := v.Store.Apply(ctx, b); err != nil {
		return err
	}
	now := time.Now()
	v.mu.Lock()
	for _, op := range b.Rows() {
		if op.Put != nil {
			if _, ok := v.visible[op.Put.PersonVersion]; !ok {
				v.visible[op.Put.PersonVersion] = now
			}
		}
	}
	v.mu.Unlock()
	return nil
}

// DistinctIDsOf passes store.IndexReader through (the projector reads the
// index of a batch with it), with DistinctIDs per person when the store
// has none.
func (v *visibility) DistinctIDsOf(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey][]string, error) {
	if ir, ok := v.Store.(store.IndexReader); ok {
		return ir.DistinctIDsOf(ctx, keys)
	}
	out := make(map[store.PersonKey][]string, len(keys))
	for _, k := range keys {
		ids, err := v.Store.DistinctIDs(ctx, k.Team, k.ID)
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 {
			out[k] = ids
		}
	}
	return out, nil
}

// BenchmarkWriteToVisible measures the latency from a producer's publish
// to the row being readable, at a fixed rate of person writes (-bench.rate,
// default 10,000/s) for b.N writes. p50, p99 and max are reported. Run it
// with a fixed count, e.g. 10 s at 10k/s:
//
//	go test ./projector -run '^$' -bench WriteToVisible -benchtime 100000x
func BenchmarkWriteToVisible(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startNATS(b)
			js, _ := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(65536))
			vis := &visibility{Store: be.open(b), visible: map[int64]time.Time{}}
			p, err := projector.New(projector.Config{Conn: e.nc, Store: vis, Logger: testLogger(b), BatchSize: *benchBatch, ReadConcurrency: *benchReads, AtomicStore: be.atomic})
			if err != nil {
				b.Fatal(err)
			}
			r := run(p)
			defer r.stop()
			// Warm up: the projector's stream and consumer exist once it
			// applied one write.
			publishN(b, js, 1, *benchPersons)
			e.waitApplied(b, projector.DefaultDurable)

			n := b.N
			payloads := make([][]byte, n)
			for i := range n {
				payloads[i] = benchUpdate(i+1, *benchPersons)
			}
			published := make([]time.Time, n)
			b.ResetTimer()
			// Open loop: write i is due at start + i/rate, whatever the
			// projector does.
			interval := time.Second / time.Duration(*benchRate)
			start := time.Now()
			for i := range n {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				published[i] = time.Now()
				if _, err := js.PublishMsgAsync(&nats.Msg{Subject: "vexil.persons.1", Data: payloads[i]}); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			e.waitApplied(b, projector.DefaultDurable)
			b.StopTimer()

			lat := make([]time.Duration, 0, n)
			vis.mu.Lock()
			for i := range n {
				at, ok := vis.visible[int64(i+2)]
				if !ok {
					b.Fatalf("write %d never became visible", i)
				}
				lat = append(lat, at.Sub(published[i]))
			}
			vis.mu.Unlock()
			slices.Sort(lat)
			q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(1), "max-ms")
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "writes/s")
		})
	}
}

// nullStore reads nothing and discards writes: with it the benchmarks
// measure the pipeline without storage (NATS, decode, convergence, acks).
type nullStore struct{ store.Store }

func (nullStore) GetPersons(context.Context, []store.PersonKey) (map[store.PersonKey]*store.Person, error) {
	return nil, nil
}

func (nullStore) GetMappings(context.Context, []store.DistinctKey) (map[store.DistinctKey]store.Mapping, error) {
	return nil, nil
}

func (nullStore) DistinctIDs(context.Context, int64, string) ([]string, error) { return nil, nil }

func (nullStore) Apply(context.Context, *store.Batch) error { return nil }

func (nullStore) GetRow(_ context.Context, team int64, d string) (*store.Row, error) {
	return nil, store.ErrNotFound
}
