package evalsvc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

func TestReportEvaluations(t *testing.T) {
	cat, st := newFixture(t)
	var got []string
	var team int64
	s := newService(t, Config{Store: st, Catalog: cat, EvaluationCounts: func(tm int64, cs []EvaluationCount) {
		team = tm
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%s/%s/%v/%s=%d@%d-%d %s", c.Key, c.Path, c.Enabled, c.Variant, c.Count, c.Start.UnixMilli(), c.End.UnixMilli(), c.Client))
		}
	}})
	client, _ := grpcServer(t, s, nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phc_team1")
	resp, err := client.ReportEvaluations(ctx, &evalv1.ReportEvaluationsRequest{Client: "vexil-go", WindowStartMs: 1000, WindowEndMs: 2000, Counts: []*evalv1.EvaluationCount{
		{Key: "beta", Path: "local", Enabled: true, Count: 7}, {Key: "mv", Path: "local", Enabled: true, Variant: "test", Count: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "[beta/local/true/=7@1000-2000 vexil-go mv/local/true/test=2@1000-2000 vexil-go]"
	if resp.GetAccepted() != 2 || fmt.Sprint(got) != want || team != 1 {
		t.Fatalf("accepted %d, team %d, got %v, want %s", resp.GetAccepted(), team, got, want)
	}

	many := make([]*evalv1.EvaluationCount, MaxReportCounts+1)
	for i := range many {
		many[i] = &evalv1.EvaluationCount{Key: "k", Path: "local", Count: 1}
	}
	for _, tc := range []struct {
		name  string
		in    *evalv1.ReportEvaluationsRequest
		ctx   context.Context
		code  codes.Code
		field string
	}{
		{"too many counts", &evalv1.ReportEvaluationsRequest{Counts: many}, ctx, codes.ResourceExhausted, "counts"},
		{"no key", &evalv1.ReportEvaluationsRequest{Counts: []*evalv1.EvaluationCount{{Path: "local", Count: 1}}}, ctx, codes.InvalidArgument, "counts[0].key"},
		{"bad path", &evalv1.ReportEvaluationsRequest{Counts: []*evalv1.EvaluationCount{{Key: "k", Path: "x", Count: 1}}}, ctx, codes.InvalidArgument, "counts[0].path"},
		{"zero count", &evalv1.ReportEvaluationsRequest{Counts: []*evalv1.EvaluationCount{{Key: "k", Path: "local"}}}, ctx, codes.InvalidArgument, "counts[0].count"},
		{"window backwards", &evalv1.ReportEvaluationsRequest{WindowStartMs: 5, WindowEndMs: 4}, ctx, codes.InvalidArgument, "window_end_ms"},
		{"client too long", &evalv1.ReportEvaluationsRequest{Client: strings.Repeat("c", 101)}, ctx, codes.InvalidArgument, "client"},
		{"no token", &evalv1.ReportEvaluationsRequest{}, context.Background(), codes.Unauthenticated, "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.ReportEvaluations(tc.ctx, tc.in)
			code, e := rpcErr(t, err)
			if code != tc.code {
				t.Fatalf("code %v: %v", code, err)
			}
			if e.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", e.Field, tc.field, err)
			}
		})
	}
}
