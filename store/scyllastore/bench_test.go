package scyllastore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
)

// personBatch fills b with what the projector writes for n new persons with
// one distinct id each: the person, its mapping, its index entry and its
// row (4 writes per person over 2 partitions, plus the team's scan-index
// buckets).
func personBatch(b *store.Batch, team int64, first, n int) {
	for i := first; i < first+n; i++ {
		pid := fmt.Sprintf("person-%08d", i)
		did := fmt.Sprintf("did-%08d", i)
		p := store.NewPerson(team, pid)
		_, _ = p.ApplyUpdate(store.PersonUpdate{Version: int64(i + 1), Set: map[string][]byte{
			"email": []byte(fmt.Sprintf(`"user%d@example.com"`, i)), "plan": []byte(`"pro"`), "age": []byte("42"),
		}})
		m := store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: int64(i + 1)}
		r, _ := store.DeriveRow(m, p)
		b.PutPerson(p)
		b.PutMapping(m)
		b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
		b.PutRow(r)
	}
}

// BenchmarkApply measures one durable Apply of a projector-shaped batch of
// persons (see personBatch) against the test Cassandra.
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct{ persons, conc int }{{1, 0}, {100, 0}, {1000, 0}, {1000, 16}, {1000, 256}} {
		n := c.persons
		b.Run(fmt.Sprintf("persons=%d/conc=%d", n, c.conc), func(b *testing.B) {
			cfg := scyllastoretest.Config(b)
			cfg.WriteConcurrency = c.conc
			s := scyllastoretest.Open(b, cfg)
			ctx := context.Background()
			var batch store.Batch
			next := 0
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				batch.Reset()
				personBatch(&batch, 1, next, n)
				next += n
				b.StartTimer()
				if err := s.Apply(ctx, &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "persons/s")
		})
	}
}

// BenchmarkGetRow measures GetRow of random existing rows (10k rows),
// one caller at a time and from parallel callers.
func BenchmarkGetRow(b *testing.B) {
	s := scyllastoretest.New(b)
	ctx := context.Background()
	const rows = 10_000
	for first := 0; first < rows; first += 1000 {
		var batch store.Batch
		personBatch(&batch, 1, first, 1000)
		if err := s.Apply(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 1))
		for b.Loop() {
			did := fmt.Sprintf("did-%08d", rng.IntN(rows))
			if _, err := s.GetRow(ctx, 1, did); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var seed atomic.Uint64
		b.SetParallelism(16) // 16 × GOMAXPROCS callers: the store is I/O bound
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 2))
			for pb.Next() {
				did := fmt.Sprintf("did-%08d", rng.IntN(rows))
				if _, err := s.GetRow(ctx, 1, did); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
