package projector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// backfillEvents is a reproducible stream of checkouts and purchases of
// persons d0..d(n-1) within two hours before now, 10% of them sent twice
// (same uuid), shuffled.
func backfillEvents(seed uint64, tag string, n, persons int, now time.Time) []*ingestv1.Envelope {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []*ingestv1.Envelope
	for i := range n {
		did := fmt.Sprintf("d%d", rng.IntN(persons))
		at := now.Add(-time.Duration(rng.IntN(7200)) * time.Second)
		name, props := "checkout", map[string]string(nil)
		if rng.IntN(3) == 0 {
			name, props = "purchase", map[string]string{"amount": fmt.Sprint(rng.IntN(200))}
		}
		e := ev(1, did, name, fmt.Sprintf("%s-%d", tag, i), at, props)
		out = append(out, e)
		if rng.IntN(10) == 0 {
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TestBackfill: events published before the cohort exists are counted by
// the backfill, events after it live, while live traffic continues; a
// backfill killed midway (the projector restarted too) and run again, and
// a second full run, count nothing twice. The final counters equal those of a projector that
// tracked the cohort from the start (its own durable over the same
// stream, into another store).
func TestBackfill(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			e := startNATS(t)
			st, ref := be.open(t), be.open(t)
			full := eventSet(t)
			var current atomic.Pointer[flags.Set] // nil: the cohort does not exist yet
			events := func(team int64) *flags.Set {
				if team == 1 {
					return current.Load()
				}
				return nil
			}
			starts, err := projector.OpenPairStarts(ctx, e.js, "")
			if err != nil {
				t.Fatal(err)
			}
			p, err := projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: be.atomic, Logger: testLogger(t),
				Events: events, PairStarts: starts})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().Truncate(time.Second)
			const persons = 12
			for i := range persons {
				e.publish(t, pu(1, fmt.Sprintf("P%d", i), 1, []string{fmt.Sprintf("d%d", i)}, nil, nil), ingest.Protobuf)
			}
			for _, m := range backfillEvents(1, "old", 150, persons, now) {
				e.publish(t, m, ingest.Protobuf)
			}
			r := run(p)
			defer r.stop()
			e.waitApplied(t, projector.DefaultDurable)
			if row, err := st.GetRow(ctx, 1, "d0"); err != nil || len(row.Counters) != 0 {
				t.Fatalf("counters before the cohort exists: %v %x", err, row.Counters)
			}

			// The cohort is created; live events follow, some during the
			// backfills below.
			current.Store(full)
			pairs := pairIDs(full)
			live := backfillEvents(2, "live", 90, persons, now)
			for _, m := range live[:30] {
				e.publish(t, m, ingest.Protobuf)
			}
			// Killed after the second merged row.
			kctx, kill := context.WithCancel(ctx)
			err = p.Backfill(kctx, 1, pairs, projector.BackfillOptions{ChunkRows: 1, Progress: func(pr projector.BackfillProgress) {
				if pr.Rows >= 2 {
					kill()
				}
			}})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("killed backfill: %v", err)
			}
			// The projector restarts too: a new process, whose pair starts
			// come back from the bucket.
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			starts2, err := projector.OpenPairStarts(ctx, e.js, "")
			if err != nil {
				t.Fatal(err)
			}
			if p, err = projector.New(projector.Config{Conn: e.nc, Store: st, AtomicStore: be.atomic, Logger: testLogger(t),
				Events: events, PairStarts: starts2}); err != nil {
				t.Fatal(err)
			}
			r = run(p)
			defer r.stop()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, m := range live[30:60] {
					e.publish(t, m, ingest.Protobuf)
				}
			}()
			var last projector.BackfillProgress
			if err := p.Backfill(ctx, 1, pairs, projector.BackfillOptions{ChunkRows: 5, MaxEvents: 40,
				Progress: func(pr projector.BackfillProgress) { last = pr }}); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if last.Passes < 2 || last.Fraction() != 1 {
				t.Errorf("progress %+v: want several passes (40 events each at most) and all done", last)
			}
			for _, m := range live[60:] {
				e.publish(t, m, ingest.Protobuf)
			}
			// Run again: a no-op.
			if err := p.Backfill(ctx, 1, pairs, projector.BackfillOptions{}); err != nil {
				t.Fatal(err)
			}
			e.waitApplied(t, projector.DefaultDurable)

			// The reference tracked the cohort from the start.
			rp, err := projector.New(projector.Config{Conn: e.nc, Store: ref, AtomicStore: be.atomic, Logger: testLogger(t),
				Durable: "reference", Events: func(team int64) *flags.Set {
					if team == 1 {
						return full
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			rr := run(rp)
			defer rr.stop()
			e.waitApplied(t, "reference")
			total := 0
			for i := range persons {
				did := fmt.Sprintf("d%d", i)
				got, want := storedCounters(t, st, 1, did), storedCounters(t, ref, 1, did)
				for _, pr := range pairs {
					if !slices.Equal(got.EventBuckets(pr), want.EventBuckets(pr)) {
						t.Errorf("%s pair %x: buckets %v, want %v", did, pr, got.EventBuckets(pr), want.EventBuckets(pr))
					}
					gf, gok := got.FirstEvent(pr)
					wf, wok := want.FirstEvent(pr)
					if gf != wf || gok != wok {
						t.Errorf("%s pair %x: first %d %v, want %d %v", did, pr, gf, gok, wf, wok)
					}
					total += int(count(want, pr))
				}
			}
			if total < 200 {
				t.Fatalf("only %d events counted: the test counts too little", total)
			}
		})
	}
}

func pairIDs(s *flags.Set) []uint64 {
	var ids []uint64
	for _, p := range s.EventPairs() {
		ids = append(ids, p.ID)
	}
	return ids
}
