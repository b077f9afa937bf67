package vexilclient_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/vexilclient"
)

// flakyEval fails the first Evaluate with UNAVAILABLE and every
// ReportEvaluations.
type flakyEval struct {
	evalv1.UnimplementedEvalServiceServer
	evaluates, reports atomic.Int32
}

func (f *flakyEval) Evaluate(context.Context, *evalv1.EvaluateRequest) (*evalv1.EvaluateResponse, error) {
	if f.evaluates.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "try another")
	}
	return &evalv1.EvaluateResponse{Flags: []*evalv1.FlagResult{{Key: "f", Enabled: true, Reason: &evalv1.Reason{Code: "condition_match"}}}}, nil
}

func (f *flakyEval) ReportEvaluations(context.Context, *evalv1.ReportEvaluationsRequest) (*evalv1.ReportEvaluationsResponse, error) {
	f.reports.Add(1)
	return nil, status.Error(codes.Unavailable, "down")
}

// serve runs fake on a loopback port.
func serve(t *testing.T, fake evalv1.EvalServiceServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	evalv1.RegisterEvalServiceServer(srv, fake)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// The service config makes gRPC send Evaluate again after UNAVAILABLE.
func TestEvaluateRetriedOnUnavailable(t *testing.T) {
	fake := &flakyEval{}
	c, err := vexilclient.New(vexilclient.Config{Target: serve(t, fake), ProjectToken: "phc", Timeout: time.Minute, HedgingDelay: -1, ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	a, err := c.EvaluateRemote(context.Background(), &vexilclient.Request{DistinctID: "u"})
	if err != nil || len(a.Flags) != 1 || !a.Flags[0].Enabled {
		t.Fatalf("%v %+v", err, a)
	}
	if n := fake.evaluates.Load(); n != 2 {
		t.Fatalf("%d Evaluate calls, want 2", n)
	}
}

// stuckEval never answers its first Evaluate (until the call is
// cancelled); the others answer at once.
type stuckEval struct {
	evalv1.UnimplementedEvalServiceServer
	evaluates atomic.Int32
	cancelled chan struct{}
}

func (s *stuckEval) Evaluate(ctx context.Context, _ *evalv1.EvaluateRequest) (*evalv1.EvaluateResponse, error) {
	if s.evaluates.Add(1) == 1 {
		<-ctx.Done()
		close(s.cancelled)
		return nil, ctx.Err()
	}
	return &evalv1.EvaluateResponse{Flags: []*evalv1.FlagResult{{Key: "f", Enabled: true}}}, nil
}

// A slow attempt is hedged on another connection; the hedge answers and
// the slow attempt is cancelled.
func TestEvaluateHedged(t *testing.T) {
	fake := &stuckEval{cancelled: make(chan struct{})}
	c, err := vexilclient.New(vexilclient.Config{Target: serve(t, fake), ProjectToken: "phc", Timeout: time.Minute, HedgingDelay: time.Millisecond, ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	a, err := c.EvaluateRemote(context.Background(), &vexilclient.Request{DistinctID: "u"})
	if err != nil || len(a.Flags) != 1 || !a.Flags[0].Enabled {
		t.Fatalf("%v %+v", err, a)
	}
	<-fake.cancelled // the slow attempt was cancelled once the hedge won
	if n := fake.evaluates.Load(); n != 2 {
		t.Fatalf("%d Evaluate calls, want 2", n)
	}
}
