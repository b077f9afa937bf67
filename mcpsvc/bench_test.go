package mcpsvc

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/admin"
)

// BenchmarkResourceUpdated measures how long after a REST change is sent
// (PATCH by another key) a subscribed client (go-sdk, streamable HTTP)
// receives notifications/resources/updated, in each era. One change per
// iteration; p50_ms and p99_ms are the delays (measured, never asserted).
func BenchmarkResourceUpdated(b *testing.B) {
	for _, era := range eras {
		b.Run(era, func(b *testing.B) {
			f := newFixture(b)
			updates := make(chan time.Time, 1024)
			cs := f.connect(era, f.key([]int64{f.team}, admin.ScopeAll), "", &mcp.ClientOptions{
				ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { updates <- time.Now() }})
			mustTool(b, cs, "flag_create", map[string]any{"key": "bench"})
			flag := mustTool(b, cs, "flag_get", map[string]any{"key": "bench"})
			if err := cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "vexil://flags/bench"}); err != nil {
				b.Fatal(err)
			}
			other := f.key([]int64{f.team}, admin.ScopeFlagWrite)
			url := fmt.Sprintf("%s/api/projects/%d/feature_flags/%d", f.base, f.team, int64(flag["id"].(float64)))
			version := int64(flag["version"].(float64))
			var delays []float64
			b.ResetTimer()
			for i := range b.N {
				body := fmt.Sprintf(`{"name":"n%d","version":%d}`, i, version)
				sent := time.Now()
				req, _ := http.NewRequest(http.MethodPatch, url, bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer "+other)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("patch: %v %v", resp, err)
				}
				_ = resp.Body.Close()
				version++
				select {
				case at := <-updates:
					delays = append(delays, float64(at.Sub(sent).Microseconds())/1000)
				case <-time.After(30 * time.Second):
					b.Fatal("no update")
				}
			}
			b.StopTimer()
			slices.Sort(delays)
			b.ReportMetric(delays[len(delays)/2], "p50_ms")
			b.ReportMetric(delays[len(delays)*99/100], "p99_ms")
		})
	}
}

// BenchmarkToolCall measures one flag_get over streamable HTTP in each
// era (the 2026-07-28 one builds the key's MCP server per request).
func BenchmarkToolCall(b *testing.B) {
	for _, era := range eras {
		b.Run(era, func(b *testing.B) {
			f := newFixture(b)
			cs := f.connect(era, f.key([]int64{f.team}, admin.ScopeAll), "", nil)
			mustTool(b, cs, "flag_create", map[string]any{"key": "bench"})
			b.ResetTimer()
			for range b.N {
				mustTool(b, cs, "flag_get", map[string]any{"key": "bench"})
			}
		})
	}
}
