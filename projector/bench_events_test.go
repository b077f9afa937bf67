package projector_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

var (
	benchEventPersons = flag.Int("bench.eventpersons", 20_000, "BenchmarkEventThroughput: persons (rows) the events go to")
	benchEventProps   = flag.Int("bench.eventprops", 0, "BenchmarkEventThroughput: properties per event, as PostHog's SDKs send ($browser, $current_url...; none read by a filter)")
)

// BenchmarkEventThroughput measures tracked events per second from
// JetStream (already stored) into the behavioural counters of the rows
// (eventSet: checkouts, purchases over 100): decode, the team's pairs
// matched, the row's counters read (through the overlay, else the store),
// counted once, compacted and written in the durable batch, acknowledged.
// Every event is a checkout, so every one is counted: the worst case (an
// untracked event is dropped before its properties are decoded). The rows
// exist before (-bench.eventpersons persons, projected untimed); b.N events
// spread over them, newest last, over the hour before the run. Run it with
// a fixed count, e.g.
//
//	go test ./projector -run '^$' -bench EventThroughput -benchtime 200000x
func BenchmarkEventThroughput(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startNATS(b)
			js, _ := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
			st := be.open(b)
			persons := *benchEventPersons
			publishN(b, js, persons, persons)
			set := eventSet(b)
			// The pairs count live from the first event on (registered
			// before: the batch in which the projector first sees a pair
			// is left to a backfill).
			starts := projector.NewPairStarts(e.js, "")
			for _, pr := range set.EventPairs() {
				if _, err := starts.Start(context.Background(), 1, pr.ID, 1); err != nil {
					b.Fatal(err)
				}
			}
			cfg := projector.Config{Conn: e.nc, Store: st, Logger: testLogger(b), BatchSize: *benchBatch, ReadConcurrency: *benchReads,
				AtomicStore: be.atomic, Events: func(int64) *flags.Set { return set },
				PairStarts: starts} // as vexil serve
			p, err := projector.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			r := run(p)
			e.waitApplied(b, projector.DefaultDurable)
			if err := r.stop(); err != nil {
				b.Fatal(err)
			}

			now := time.Now().Truncate(time.Second)
			publishEvents(b, js, b.N, persons, now)
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			if p, err = projector.New(cfg); err != nil {
				b.Fatal(err)
			}
			stopProfile := startProfile(b, *benchProfile)
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			r = run(p)
			e.waitApplied(b, projector.DefaultDurable)
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			stopProfile()
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if err := r.stop(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if batches := metricValue(b, reg, "vexil_projector_batch_messages", nil); batches > 0 {
				b.ReportMetric(float64(b.N)/batches, "events/batch")
			}
			if be.name == "null" {
				return
			}
			// Every event was counted once: the rows' checkouts add up to b.N.
			checkout := flags.PairID("checkout", nil)
			total := int64(0)
			for i := range persons {
				total += count(storedCounters(b, st, 1, fmt.Sprintf("distinct-%07d", i)), checkout)
			}
			if total != int64(b.N) {
				b.Fatalf("%d checkouts counted, %d published", total, b.N)
			}
		})
	}
}

// publishEvents publishes n checkouts (distinct id i%persons, uuid i, at
// an instant of the hour before now, the last one at now) with async
// JetStream acks.
func publishEvents(tb testing.TB, js jetstream.JetStream, n, persons int, now time.Time) {
	tb.Helper()
	publishAsync(tb, js, n, func(i int) *nats.Msg {
		at := now.Add(-time.Duration(n-1-i) * time.Hour / time.Duration(n))
		env := &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
			Team: 1, DistinctId: fmt.Sprintf("distinct-%07d", i%persons), Event: "checkout",
			Uuid: fmt.Sprintf("bench-%d", i), Timestamp: timestamppb.New(at), Properties: benchProps(i)}}}
		subject, err := ingest.SubjectOf("", env)
		if err != nil {
			tb.Fatal(err)
		}
		data, err := proto.Marshal(env)
		if err != nil {
			tb.Fatal(err)
		}
		return &nats.Msg{Subject: subject, Data: data}
	})
}

// benchProps returns -bench.eventprops properties like those PostHog's
// SDKs attach to every event: strings, numbers, booleans, an object.
func benchProps(i int) map[string]string {
	if *benchEventProps <= 0 {
		return nil
	}
	m := make(map[string]string, *benchEventProps)
	for k := range *benchEventProps {
		switch k % 4 {
		case 0:
			m[fmt.Sprintf("$prop_%d", k)] = fmt.Sprintf(`"https://example.com/shop/item/%d?ref=campaign-%d"`, i, k)
		case 1:
			m[fmt.Sprintf("$prop_%d", k)] = fmt.Sprint(i * k)
		case 2:
			m[fmt.Sprintf("$prop_%d", k)] = "true"
		default:
			m[fmt.Sprintf("$prop_%d", k)] = fmt.Sprintf(`{"w": %d, "h": 900, "dpr": 2.5, "tz": "Europe/Paris"}`, 1000+k)
		}
	}
	return m
}
