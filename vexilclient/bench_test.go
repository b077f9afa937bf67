package vexilclient

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

// fiftyFlagsPayload is the peers' 50-flag workload (flags/bench_test.go's
// fiftyFlags, BENCHMARKS.md "The peers") as a definitions payload: half
// boolean at 50% on the distinct id, half multivariate 34/33/33 gated on
// country == US.
func fiftyFlagsPayload() []byte {
	var fl []map[string]any
	for i := range 50 {
		if i%2 == 0 {
			fl = append(fl, map[string]any{"id": i, "key": fmt.Sprintf("bool-%d", i), "active": true, "version": 1,
				"filters": map[string]any{"groups": []any{map[string]any{"properties": []any{}, "rollout_percentage": 50}}}})
			continue
		}
		fl = append(fl, map[string]any{"id": i, "key": fmt.Sprintf("mv-%d", i), "active": true, "version": 1,
			"filters": map[string]any{
				"groups": []any{map[string]any{"properties": []any{map[string]any{"key": "country", "type": "person", "operator": "exact", "value": "US"}}, "rollout_percentage": 100}},
				"multivariate": map[string]any{"variants": []any{
					map[string]any{"key": "control", "rollout_percentage": 34}, map[string]any{"key": "test", "rollout_percentage": 33}, map[string]any{"key": "test-2", "rollout_percentage": 33}}},
				"payloads": map[string]any{"test": `{"price": 9}`},
			}})
	}
	b, err := json.Marshal(map[string]any{"flags": fl, "group_type_mapping": map[string]any{}, "cohorts": map[string]any{}})
	if err != nil {
		panic(err)
	}
	return b
}

// localClient is a client answering from a payload, with no server.
func localClient(tb testing.TB, payload []byte) *Client {
	tb.Helper()
	ls, err := newLocalState(`"bench"`, payload, time.Unix(0, 0))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := (&Config{Target: "unused", ProjectToken: "phc"}).withDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Client{cfg: cfg, pending: map[countKey]int64{}, connected: true}
	c.local.Store(ls)
	c.counting = []*localState{ls}
	return c
}

// benchRequest is flags.BenchmarkEvaluate50Flags' context.
func benchRequest() *Request {
	return &Request{DistinctID: "user-12345", PersonProperties: map[string]any{
		"email": "someone@example.com", "country": "US", "plan": "pro", "age": json.Number("31"), "app": "3.4.1"}}
}

func TestLocalAnswersTheFiftyFlags(t *testing.T) {
	c := localClient(t, fiftyFlagsPayload())
	var a Answer
	if err := c.EvaluateInto(context.Background(), benchRequest(), &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Flags) != 50 {
		t.Fatalf("%d results", len(a.Flags))
	}
	for _, r := range a.Flags {
		if r.Path != PathLocal || r.Failed {
			t.Fatalf("%+v", r)
		}
	}
	c.mu.Lock()
	c.collect()
	n := int64(0)
	for _, v := range c.pending {
		n += v
	}
	c.mu.Unlock()
	if n != 50 {
		t.Fatalf("counted %d evaluations, want 50", n)
	}
}

// BenchmarkLocalEvaluate50Flags is the client's local evaluation of the
// 50-flag workload, to compare with flags.BenchmarkEvaluate50Flags (the
// engine alone): the client adds the context, the fallback check, the
// result copy and the evaluation counts.
func BenchmarkLocalEvaluate50Flags(b *testing.B) {
	c := localClient(b, fiftyFlagsPayload())
	req := benchRequest()
	ctx := context.Background()
	var a Answer
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.EvaluateInto(ctx, req, &a); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(a.Flags) != 50 {
		b.Fatalf("%d results", len(a.Flags))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50, "ns/flag")
}

// BenchmarkLocalVsEngine50Flags runs the engine alone (the work of
// flags.BenchmarkEvaluate50Flags, on the same compiled set) and the
// client's local evaluation one after the other in one process, so that a
// noisy machine weighs on both alike: compare the two ns/op of each round.
func BenchmarkLocalVsEngine50Flags(b *testing.B) {
	c := localClient(b, fiftyFlagsPayload())
	req := benchRequest()
	b.Run("engine", func(b *testing.B) {
		set := c.local.Load().set
		fc := &flags.Context{DistinctID: req.DistinctID, PersonProperties: req.PersonProperties, Now: time.Now()}
		out := make([]flags.Result, 0, set.Len())
		b.ReportAllocs()
		for b.Loop() {
			out = set.AppendEvaluate(out[:0], fc, nil)
		}
		if len(out) != 50 {
			b.Fatalf("%d results", len(out))
		}
	})
	b.Run("client", func(b *testing.B) {
		ctx := context.Background()
		var a Answer
		b.ReportAllocs()
		for b.Loop() {
			if err := c.EvaluateInto(ctx, req, &a); err != nil {
				b.Fatal(err)
			}
		}
		if len(a.Flags) != 50 {
			b.Fatalf("%d results", len(a.Flags))
		}
	})
}
