package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// benchRow is a typical row: about a dozen properties, ~350 bytes.
func benchRow(team int64, i int) *store.Row {
	props := fmt.Appendf(nil, `{"$browser":"Chrome","$os":"Mac OS X","company":"acme-%d","country":"FR","created_at":"2026-01-%02dT10:00:00Z","email":"user%d@example.com","is_paid":true,"name":"User %d","plan":"pro","seats":%d,"signup_source":"ads","version":"1.%d.0"}`, i%97, i%28+1, i, i, i%50, i%9)
	return &store.Row{Team: team, DistinctID: fmt.Sprintf("distinct-%08d", i), PersonID: fmt.Sprintf("person-%08d", i),
		PersonVersion: int64(i), Properties: props, Revision: store.Revision(props)}
}

func openBench(b *testing.B) *pebblestore.Store {
	s, err := pebblestore.Open(pebblestore.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func fill(b *testing.B, s *pebblestore.Store, team int64, n int) {
	ctx := context.Background()
	var batch store.Batch
	for i := range n {
		batch.PutRow(benchRow(team, i))
		if i%10 == 0 {
			batch.SetResults(team, fmt.Sprintf("distinct-%08d", i), make([]byte, 200), 1_763_100_000_000_000+int64(i))
		}
		if batch.Len() == 10000 || i == n-1 {
			if err := s.Apply(ctx, &batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
}

// BenchmarkGetRow reads random rows of a 100k-row team: the evaluation
// path's one keyed read.
func BenchmarkGetRow(b *testing.B) {
	const n = 100_000
	s := openBench(b)
	fill(b, s, 1, n)
	ids := make([]string, 4096)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range ids {
		ids[i] = fmt.Sprintf("distinct-%08d", r.IntN(n))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		row, err := s.GetRow(ctx, 1, ids[i&4095])
		if err != nil || len(row.Properties) == 0 {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetRowParallel is BenchmarkGetRow from GOMAXPROCS goroutines.
func BenchmarkGetRowParallel(b *testing.B) {
	const n = 100_000
	s := openBench(b)
	fill(b, s, 1, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			if _, err := s.GetRow(ctx, 1, fmt.Sprintf("distinct-%08d", r.IntN(n))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteBatch applies batches of 1000 row writes, each committed
// with Sync. Half the rows are rewrites of existing rows (which keep their
// reserved fields, a read before the write), half are new.
func BenchmarkWriteBatch(b *testing.B) {
	const perBatch = 1000
	s := openBench(b)
	fill(b, s, 1, 50_000)
	ctx := context.Background()
	rows := make([]*store.Row, 0, perBatch)
	next := 50_000
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		var batch store.Batch
		rows = rows[:0]
		for j := range perBatch {
			var i int
			if j%2 == 0 {
				i = (next * 7919) % 50_000 // rewrite
			} else {
				i = next // new
			}
			next++
			rows = append(rows, benchRow(1, i))
		}
		b.StartTimer()
		for _, r := range rows {
			batch.PutRow(r)
		}
		if err := s.Apply(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGetPersons reads 1000 persons per call (half of them missing),
// as the projector does for a batch: GetPersons against GetPerson per key.
func BenchmarkGetPersons(b *testing.B) {
	const n = 50_000
	s := openBench(b)
	ctx := context.Background()
	var batch store.Batch
	for i := range n {
		p := store.NewPerson(1, fmt.Sprintf("person-%08d", i))
		p.ApplyUpdate(store.PersonUpdate{Version: int64(i), Set: map[string][]byte{"email": fmt.Appendf(nil, `"u%d@x.io"`, i), "plan": []byte(`"pro"`)}})
		batch.PutPerson(p)
		if batch.Len() == 10000 {
			if err := s.Apply(ctx, &batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	r := rand.New(rand.NewPCG(3, 3))
	keys := make([]store.PersonKey, 1000)
	for i := range keys {
		keys[i] = store.PersonKey{Team: 1, ID: fmt.Sprintf("person-%08d", r.IntN(2*n))}
	}
	b.Run("multi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetPersons(ctx, keys); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(keys))/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				if _, err := s.GetPerson(ctx, k.Team, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(keys))/b.Elapsed().Seconds(), "keys/s")
	})
}
