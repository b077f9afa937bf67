package evalsvc

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// BenchmarkServeFlagsUsage is BenchmarkServeFlags50 without and with usage
// statistics (Config.Usage: every flag of every request counted), serial
// and with GOMAXPROCS×4 concurrent requests: the difference is the cost of
// counting per /flags request. The serial run flushes to a store every
// benchFlushEvery requests, on the benchmark's goroutine rather than on a
// timer, so that a profile and an instruction count see the same number of
// flushes however slowly the benchmark runs (under callgrind a 1 s timer
// flushed every few dozen requests); the parallel one each second.
func BenchmarkServeFlagsUsage(b *testing.B) {
	for _, stored := range []bool{false, true} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("stored=%v/usage=%v", stored, on)
			b.Run(name, func(b *testing.B) {
				s := benchService(b, stored)
				if !on {
					benchServeFlags50(b, s)
					return
				}
				rec := newBenchRecorder(b)
				s.cfg.Usage = rec
				benchServeFlags50Each(b, s, benchFlushEvery, func() {
					if err := rec.Flush(context.Background()); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run("parallel/"+name, func(b *testing.B) {
				s := benchService(b, stored)
				if on {
					attachUsage(b, s)
				}
				benchServeFlags50Parallel(b, s)
			})
		}
	}
}

// benchFlushEvery is how many requests the serial benchmark answers
// between two flushes: what a node answering 10,000 requests a second
// counts in the default FlushInterval of 10 s.
const benchFlushEvery = 100_000

func newBenchRecorder(b *testing.B) *usage.Recorder {
	rec, err := usage.NewRecorder(usage.RecorderConfig{Store: memstore.New(), FlushInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

// attachUsage gives s a recorder flushed every second into a memory store.
func attachUsage(b *testing.B, s *Service) {
	rec := newBenchRecorder(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	s.cfg.Usage = rec
}

func benchServeFlags50Parallel(b *testing.B, s *Service) {
	h := s.Handler()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer() // benchService's setup ran under the timer
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			body := fmt.Sprintf(`{"token":"phc_bench","distinct_id":"user-%d"}`, (i*7919)%benchPersons)
			req := httptest.NewRequest(http.MethodPost, "/flags/?v=2", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
}
