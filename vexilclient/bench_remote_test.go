package vexilclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/vexilclient"
	"github.com/vexil-dev/vexil/vexilclient/internal/vexiltest"
)

// BenchmarkRemoteEvaluate is one EvalService.Evaluate round trip over
// loopback (a real server: token check, the stored row read from the
// in-memory store, 6 flags, a static cohort among them).
func BenchmarkRemoteEvaluate(b *testing.B) {
	srv := vexiltest.New(b)
	c, err := vexilclient.New(vexilclient.Config{Target: srv.Addr, ProjectToken: "phc_team1", Timeout: time.Minute, ReportInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	req := &vexilclient.Request{DistinctID: "u1", Groups: map[string]string{"company": "acme"}}
	if _, err := c.EvaluateRemote(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a, err := c.EvaluateRemote(ctx, req)
		if err != nil || len(a.Flags) != 6 {
			b.Fatal(err)
		}
	}
}
