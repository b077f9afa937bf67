package evalsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// benchPersons is the number of rows benchService stores.
const benchPersons = 10000

// benchService is a Service over Pebble with benchPersons rows and the 50
// flags of the peers' workload, for token phc_bench. With stored, every row
// carries its precomputed results (as the precompute worker writes them).
func benchService(b *testing.B, stored ...bool) *Service {
	return benchServiceWith(b, pebblestore.Config{}, len(stored) > 0 && stored[0])
}

// benchServiceWith is benchService over a store opened with cfg (its Dir
// set here).
func benchServiceWith(b *testing.B, cfg pebblestore.Config, stored bool) *Service {
	cfg.Dir = b.TempDir()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	st, err := pebblestore.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	const persons = benchPersons
	countries := []string{"US", "DE", "FR"}
	var defs flags.Definitions
	for i := range 50 {
		f := flags.Flag{ID: int64(i + 1), Key: fmt.Sprintf("flag-%02d", i), Active: true, Version: 1}
		r := 50.0
		if i%2 == 0 {
			f.Filters.Groups = []flags.Condition{{RolloutPercentage: &r}}
		} else {
			hundred := 100.0
			f.Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "country", Type: "person", Value: json.RawMessage(`"US"`)}}, RolloutPercentage: &hundred}}
			f.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 34}, {Key: "b", RolloutPercentage: 33}, {Key: "c", RolloutPercentage: 33}}}
		}
		defs.Flags = append(defs.Flags, f)
	}
	set, _ := flags.Compile(defs)
	plan := results.NewPlan(defs, set, results.Options{})
	var sc results.Scratch
	var batch store.Batch
	for i := range persons {
		if i > 0 && i%1000 == 0 { // batches of 1000 rows, as the projector writes them
			if err := st.Apply(context.Background(), &batch); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
		did := fmt.Sprintf("user-%d", i)
		props := []byte(fmt.Sprintf(`{"country":%q,"email":"user-%d@example.com","plan":"pro"}`, countries[i%3], i))
		row := &store.Row{Team: 1, DistinctID: did, PersonID: fmt.Sprintf("p%d", i), PersonVersion: 1,
			Properties: props, Revision: store.Revision(props)}
		batch.PutRow(row)
		if stored {
			m := map[string]any{}
			if err := json.Unmarshal(props, &m); err != nil {
				b.Fatal(err)
			}
			res, _, _ := results.Compute(nil, set, plan, results.Subject{Type: results.Persons, Key: did, Version: 1,
				Revision: row.Revision, Props: m}, time.Now(), nil, nil, &sc)
			batch.SetResults(1, did, res, 1)
		}
	}
	if err := st.Apply(context.Background(), &batch); err != nil {
		b.Fatal(err)
	}
	cat := &fakeCatalog{snaps: map[int64]catalog.TeamSnapshot{1: {Team: catalog.Team{ID: 1}, Definitions: defs}}, keys: map[string]catalog.APIKey{}, members: map[string]bool{}}
	cat.addKey("phc_bench", catalog.KeyProjectToken, []int64{1})
	s, err := New(Config{Store: st, Catalog: cat})
	if err != nil {
		b.Fatal(err)
	}
	benchRegistries[s] = reg
	return s
}

// benchRegistries holds the store metrics of each benchService, for the
// block cache misses per request.
var benchRegistries = map[*Service]*prometheus.Registry{}

// cacheMisses is the store's block cache misses so far.
func cacheMisses(b *testing.B, s *Service) float64 {
	mfs, err := benchRegistries[s].Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vexil_pebblestore_block_cache_misses_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	b.Fatal("no block cache metric")
	return 0
}

// BenchmarkServeFlags50 is one /flags request end to end in process (no
// network): body decode, token lookup (cached), one Pebble row read, 50
// flags (the peers' workload), the v2 response written. live evaluates the
// 50 flags from the row's properties; stored answers them from the row's
// precomputed results (no properties decoded, no flag evaluated).
func BenchmarkServeFlags50(b *testing.B) {
	b.Run("live", func(b *testing.B) { benchServeFlags50(b, benchService(b)) })
	b.Run("stored", func(b *testing.B) { benchServeFlags50(b, benchService(b, true)) })
	// cold: the rows are in tables on disk (1 MiB memtables) and the block
	// cache holds nothing: Pebble counts its memtables (two of 1 MiB)
	// against the 1 MiB cache, so every block a read touches (filters and
	// indexes of every table, then the data block) is read from the OS
	// page cache, checked and decompressed: about four blocks a request.
	// The worst case, not serve's: see stored-miss.
	b.Run("stored-cold", func(b *testing.B) {
		benchServeFlags50(b, benchServiceWith(b, pebblestore.Config{CacheSize: 1 << 20, MemTableSize: 1 << 20}, true))
	})
	// stored-cold-1k is stored-cold with 1 KiB data blocks: about one
	// row per block instead of five.
	b.Run("stored-cold-1k", func(b *testing.B) {
		benchServeFlags50(b, benchServiceWith(b, pebblestore.Config{CacheSize: 1 << 20, MemTableSize: 1 << 20, BlockSize: 1 << 10}, true))
	})
	// miss: a random person of 1M under serve's cache. The filters and
	// indexes stay in the cache (they are touched by every read) while
	// the 7.5 MB of row values do not fit in what the memtables leave of
	// it (2 of 4 MiB): about one data block read per request, reported as
	// misses/op. The variants are the levers on that one read.
	for _, v := range []struct {
		name        string
		blockSize   int
		compression string
	}{
		{"stored-miss", 0, ""},
		{"stored-miss-2k", 2 << 10, ""},
		{"stored-miss-1k", 1 << 10, ""},
		{"stored-miss-none", 0, pebblestore.CompressionNone},
		{"stored-miss-2k-none", 2 << 10, pebblestore.CompressionNone},
		{"stored-miss-1k-none", 1 << 10, pebblestore.CompressionNone},
		{"stored-miss-minlz", 0, pebblestore.CompressionMinLZ},
	} {
		b.Run(v.name, func(b *testing.B) {
			cfg := pebblestore.Config{CacheSize: 4 << 20, MemTableSize: 1 << 20, BlockSize: v.blockSize, Compression: v.compression}
			benchServeFlags50(b, benchServiceWith(b, cfg, true))
		})
	}
}

func benchServeFlags50(b *testing.B, s *Service) { benchServeFlags50Each(b, s, 0, nil) }

// BenchmarkServeFlagsOwn is BenchmarkServeFlags50's stored request with
// the harness's allocations left out: one request and one response writer
// reused (httptest's build a request and grow a 14 KB body each time, 18
// of the 22 KB a request there), so B/op and allocs/op are the handler's
// own, the garbage a /flags request leaves outside net/http.
func BenchmarkServeFlagsOwn(b *testing.B) {
	s := benchService(b, true)
	h := s.Handler()
	bodies := make([]string, benchPersons)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"token":"phc_bench","distinct_id":"user-%d"}`, (i*7919)%benchPersons)
	}
	body := new(strings.Reader)
	// A cancelable context, as net/http gives each request (a context
	// derived from it registers with it).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/flags/?v=2", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Body = io.NopCloser(body)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body.Reset(bodies[i%len(bodies)])
		clear(w.h)
		w.status = 0
		w.body.Reset()
		h.ServeHTTP(w, req)
		if w.status != 0 && w.status != 200 || w.body.Len() < 1000 {
			b.Fatalf("status %d: %s", w.status, w.body.Bytes())
		}
		i++
	}
}

// benchServeFlags50Each is benchServeFlags50 calling each after every
// every-th request (every 0: never).
func benchServeFlags50Each(b *testing.B, s *Service, every int, each func()) {
	h := s.Handler()
	// Every person, in a scattered order: the miss benchmarks need a
	// working set larger than their cache.
	bodies := make([]string, benchPersons)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"token":"phc_bench","distinct_id":"user-%d"}`, (i*7919)%benchPersons)
	}
	b.ReportAllocs()
	misses := cacheMisses(b, s)
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/flags/?v=2", strings.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
		if every > 0 && i%every == 0 {
			each()
		}
	}
	b.StopTimer()
	b.ReportMetric((cacheMisses(b, s)-misses)/float64(b.N), "misses/op")
	a := s.FlagAnswers(1)["flag-00"]
	b.ReportMetric(float64(a[results.Stored])/float64(a.Total()), "hit-ratio")
}

// BenchmarkEvaluateGRPC50 is the same request as BenchmarkServeFlags50
// through gRPC Evaluate over a loopback TCP connection: one caller, one
// call at a time, so it includes the round trip and both sides' protobuf
// work.
func BenchmarkEvaluateGRPC50(b *testing.B) {
	client, _ := grpcServer(b, benchService(b), nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phc_bench")
	reqs := make([]*evalv1.EvaluateRequest, 1000)
	for i := range reqs {
		reqs[i] = &evalv1.EvaluateRequest{DistinctId: proto.String(fmt.Sprintf("user-%d", (i*7919)%benchPersons))}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		resp, err := client.Evaluate(ctx, reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.GetFlags()) != 50 {
			b.Fatalf("%d flags", len(resp.GetFlags()))
		}
		i++
	}
}

// BenchmarkEvaluateGRPC50Parallel is BenchmarkEvaluateGRPC50 with
// GOMAXPROCS×8 callers sharing the connection: throughput rather than
// round-trip latency.
func BenchmarkEvaluateGRPC50Parallel(b *testing.B) {
	client, _ := grpcServer(b, benchService(b), nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phc_bench")
	b.ReportAllocs()
	b.SetParallelism(8)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			resp, err := client.Evaluate(ctx, &evalv1.EvaluateRequest{DistinctId: proto.String(fmt.Sprintf("user-%d", (i*7919)%benchPersons))})
			if err != nil {
				b.Error(err)
				return
			}
			if len(resp.GetFlags()) != 50 {
				b.Errorf("%d flags", len(resp.GetFlags()))
				return
			}
		}
	})
}

// BenchmarkReload is the periodic reload of a team of 50 flags (the
// peers' workload): unchanged, the snapshot's digest only; changed (a
// flag's version moves each time), the compile and build too.
func BenchmarkReload(b *testing.B) {
	var defs flags.Definitions
	for i := range 50 {
		f := flags.Flag{ID: int64(i + 1), Key: fmt.Sprintf("flag-%02d", i), Active: true, Version: 1}
		r, hundred := 50.0, 100.0
		if i%2 == 0 {
			f.Filters.Groups = []flags.Condition{{RolloutPercentage: &r}}
		} else {
			f.Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "country", Type: "person", Value: json.RawMessage(`"US"`)}}, RolloutPercentage: &hundred}}
			f.Filters.Multivariate = &flags.Multivariate{Variants: []flags.Variant{{Key: "a", RolloutPercentage: 34}, {Key: "b", RolloutPercentage: 33}, {Key: "c", RolloutPercentage: 33}}}
		}
		defs.Flags = append(defs.Flags, f)
	}
	for _, changed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unchanged", true: "changed"}[changed], func(b *testing.B) {
			cat := &fakeCatalog{snaps: map[int64]catalog.TeamSnapshot{1: {Team: catalog.Team{ID: 1}, Definitions: defs}}}
			s, err := New(Config{Store: memstore.New(), Catalog: cat})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Refresh(ctx, 1); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if changed {
					snap := cat.snaps[1]
					d := snap.Definitions
					d.Flags = append([]flags.Flag(nil), d.Flags...)
					d.Flags[0].Version = int64(i + 2)
					snap.Definitions = d
					cat.snaps[1] = snap
				}
				if err := s.Refresh(ctx, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
