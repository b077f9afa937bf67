package canary

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkTap is the tap's cost to one /flags request with a 2 KB
// answer: "off" is the handler alone (serve without a tap), the others
// sample that share of requests; the publisher runs beside them, its
// work counted too (it publishes to nowhere here).
func BenchmarkTap(b *testing.B) {
	answer := `{"flags":{` + strings.Repeat(`"flag-xxxxxxxx":{"key":"flag-xxxxxxxx","enabled":true,"variant":null,"reason":{"code":"condition_match"},"metadata":{"id":1,"version":1,"payload":null}},`, 12) + `"z":{"enabled":false}}}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	})
	body := `{"token":"phc_0123456789abcdef0123456789abcdef","distinct_id":"user-1234","groups":{"company":"company-7"}}`
	for _, c := range []struct {
		name  string
		share float64
	}{{"off", 0}, {"share=0.01", 0.01}, {"share=1", 1}} {
		b.Run(c.name, func(b *testing.B) {
			handler := http.Handler(h)
			var tap *Tap
			if c.share > 0 {
				var err error
				tap, err = NewTap(TapConfig{Share: c.share, Queue: 1 << 16, Publish: func([]byte) error { return nil }})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = tap.Run(ctx) }()
				handler = tap.Wrap(h)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/flags/?v=2", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w.Body.Reset()
				handler.ServeHTTP(w, r)
			}
			// The publisher's work belongs to the requests measured.
			for tap != nil && len(tap.queue) > 0 {
				runtime.Gosched()
			}
			if tap != nil && tap.Counts()["dropped_queue_full"] > 0 {
				b.Fatalf("counts %v: the queue must hold the run", tap.Counts())
			}
		})
	}
}
