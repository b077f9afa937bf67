package evalsvc

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// Bounds of one ReportEvaluations batch: a client sends one batch every
// few seconds, so these are far above what a well-behaved one needs.
const (
	MaxReportCounts      = 1000
	maxReportKeyBytes    = 400
	maxReportClientBytes = 100
)

// EvaluationCount is how often a client evaluated one flag to one value on
// one path ("local" or "remote") within [Start, End).
type EvaluationCount struct {
	Key        string
	Path       string
	Enabled    bool
	Variant    string
	Count      int64
	Start, End time.Time
	// Client names the reporting client, as it said.
	Client string
}

const endpointReport = "report_evaluations"

// ReportEvaluations takes a batch of a client's evaluation counts (local
// evaluation answers without a request, so the server cannot count those
// itself) and hands it to Config.EvaluationCounts.
func (g *grpcService) ReportEvaluations(ctx context.Context, in *evalv1.ReportEvaluationsRequest) (resp *evalv1.ReportEvaluationsResponse, err error) {
	start := time.Now()
	defer func() { err = g.s.rpcDone(endpointReport, start, err) }()
	return g.s.reportEvaluations(ctx, in)
}

func (s *Service) reportEvaluations(ctx context.Context, in *evalv1.ReportEvaluationsRequest) (*evalv1.ReportEvaluationsResponse, error) {
	counts, err := checkReport(in)
	if err != nil {
		return nil, err
	}
	ticket, err := s.admitRPC(ctx, admission.Poll)
	if err != nil {
		return nil, err
	}
	defer ticket.Done()
	md, _ := metadata.FromIncomingContext(ctx)
	token := in.GetToken()
	if token == "" {
		token = bearer(mdValue(md, "authorization"))
	}
	ts, err := s.requestTeam(ctx, token)
	if err != nil {
		return nil, err
	}
	if s.cfg.EvaluationCounts != nil && len(counts) > 0 {
		s.cfg.EvaluationCounts(ts.team.ID, counts)
	}
	return &evalv1.ReportEvaluationsResponse{Accepted: int32(len(counts))}, nil
}

// checkReport refuses a batch over the bounds, naming the field at fault,
// before the token is looked up.
func checkReport(in *evalv1.ReportEvaluationsRequest) ([]EvaluationCount, error) {
	bad := func(field, msg string) error { return fail(wire.CodeBadBody, field, msg) }
	if n := len(in.GetCounts()); n > MaxReportCounts {
		return nil, fail(wire.CodeTooManyValues, "counts", "at most "+strconv.Itoa(MaxReportCounts)+" counts per batch, got "+strconv.Itoa(n))
	}
	if len(in.GetClient()) > maxReportClientBytes {
		return nil, bad("client", "client is over "+strconv.Itoa(maxReportClientBytes)+" bytes")
	}
	startMS, endMS := in.GetWindowStartMs(), in.GetWindowEndMs()
	if startMS < 0 || endMS < startMS {
		return nil, bad("window_end_ms", "the window must not end before it starts")
	}
	out := make([]EvaluationCount, 0, len(in.GetCounts()))
	for i, c := range in.GetCounts() {
		field := "counts[" + strconv.Itoa(i) + "]"
		switch {
		case c.GetKey() == "" || len(c.GetKey()) > maxReportKeyBytes:
			return nil, bad(field+".key", "key must be 1 to "+strconv.Itoa(maxReportKeyBytes)+" bytes")
		case len(c.GetVariant()) > maxReportKeyBytes:
			return nil, bad(field+".variant", "variant is over "+strconv.Itoa(maxReportKeyBytes)+" bytes")
		case c.GetPath() != "local" && c.GetPath() != "remote":
			return nil, bad(field+".path", `path must be "local" or "remote"`)
		case c.GetCount() <= 0:
			return nil, bad(field+".count", "count must be positive")
		}
		out = append(out, EvaluationCount{Key: c.GetKey(), Path: c.GetPath(), Enabled: c.GetEnabled(), Variant: c.GetVariant(),
			Count: c.GetCount(), Start: time.UnixMilli(startMS), End: time.UnixMilli(endMS), Client: in.GetClient()})
	}
	return out, nil
}
