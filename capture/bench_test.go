package capture

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkBatch posts posthog-node's shape, 100 events of a known person
// with a $set on every tenth, through the handler to a real in-process
// JetStream stream (file storage), and waits for every ack, as a request
// does. One request at a time; it reports events per second.
func BenchmarkBatch(b *testing.B) {
	f := newFixture(b, Config{TeamRate: 1e12, TeamBurst: 1 << 40})
	batch := func(n int) []byte {
		events := make([]string, 100)
		for i := range events {
			set := ""
			if i%10 == 0 {
				set = `,"$set":{"plan":"pro","seats":5}`
			}
			events[i] = fmt.Sprintf(`{"event":"checkout","distinct_id":"known","uuid":"01938c3f-0000-7000-8000-%012d","timestamp":"2026-12-06T03:59:59Z","properties":{"amount":12.5,"$lib":"posthog-node","currency":"EUR"%s}}`, n*100+i, set)
		}
		return []byte(`{"api_key":"` + token + `","sent_at":"2026-12-06T04:00:00Z","batch":[` + strings.Join(events, ",") + `]}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		body := batch(n)
		if res, out := f.do(b, http.MethodPost, "/batch/", body); res.StatusCode != 200 {
			b.Fatalf("status %d: %s", res.StatusCode, out)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
