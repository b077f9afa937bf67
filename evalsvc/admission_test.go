package evalsvc

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// TestQuota: a team over its quota gets PostHog's quotaLimited answer on
// /flags and /decide (200, no flags), 429 with Retry-After on the
// definitions and through the gateway, RESOURCE_EXHAUSTED rate_limited on
// gRPC; other teams are untouched, and the bucket refills with time.
func TestQuota(t *testing.T) {
	cat, st := newFixture(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	ac, err := admission.New(admission.Config{TeamQuotas: map[int64]admission.Quota{1: {Rate: 1, Burst: 2}}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, Config{Store: st, Catalog: cat, Admission: ac})
	h := s.Handler()
	client, conn := grpcServer(t, s, nil)
	gw, err := s.Gateway(conn)
	if err != nil {
		t.Fatal(err)
	}
	const req = `{"token":"phc_team1","distinct_id":"u1"}`
	for i := range 2 {
		res, body := post(t, h, "/flags?v=2", req)
		if r := decodeFlags(t, body); res.StatusCode != 200 || len(r.Flags) == 0 || r.QuotaLimited != nil {
			t.Fatalf("request %d within the burst: %d %s", i+1, res.StatusCode, body)
		}
	}
	res, body := post(t, h, "/flags?v=2", req)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || string(raw["flags"]) != "{}" || string(raw["quotaLimited"]) != `["feature_flags"]` ||
		string(raw["errorsWhileComputingFlags"]) != "false" {
		t.Errorf("/flags over quota: %d %s, want 200 with flags {} and quotaLimited [\"feature_flags\"]", res.StatusCode, body)
	}
	res, body = post(t, h, "/decide/?v=3", req)
	if r := decodeFlags(t, body); res.StatusCode != 200 || len(r.FeatureFlags) != 0 || len(r.QuotaLimited) != 1 || r.QuotaLimited[0] != "feature_flags" {
		t.Errorf("/decide over quota: %d %s", res.StatusCode, body)
	}
	// The definitions: 429 (PostHog's 402 would make the SDKs drop them).
	w := get(h, "/api/feature_flag/local_evaluation?token=phc_team1", "Authorization", "Bearer phs_team1")
	var e apiError
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" || e.Code != codeThrottled || e.Type != typeThrottled {
		t.Errorf("definitions over quota: %d %s (Retry-After %q), want 429 throttled with Retry-After 1", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	_, err = client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")})
	if code, e := rpcErr(t, err); code != codes.ResourceExhausted || e.Code != errcode.RateLimited || e.Meta[errcode.MetaRetryAfter] != "1" {
		t.Errorf("gRPC over quota: %v %+v, want RESOURCE_EXHAUSTED rate_limited", code, e)
	}
	res, body = post(t, gw, "/api/evaluate", `{"distinct_id":"u1"}`, "Authorization", "Bearer phc_team1")
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" {
		t.Errorf("gateway over quota: %d %s (Retry-After %q), want 429", res.StatusCode, body, res.Header.Get("Retry-After"))
	}
	// Another team has no quota here.
	if res, body := post(t, h, "/flags?v=2", `{"token":"phc_team2","distinct_id":"u1"}`); res.StatusCode != 200 || decodeFlags(t, body).QuotaLimited != nil {
		t.Errorf("team 2: %d %s", res.StatusCode, body)
	}
	now = now.Add(time.Second) // one token back
	if res, body := post(t, h, "/flags?v=2", req); res.StatusCode != 200 || decodeFlags(t, body).QuotaLimited != nil || len(decodeFlags(t, body).Flags) == 0 {
		t.Errorf("a second later: %d %s, want flags", res.StatusCode, body)
	}
}

// TestAdmitRPCUsesTheTapTicket: a gRPC call admitted by the server's tap
// handle (its ticket in the context, GRPCClass giving the class) is not
// admitted a second time; one without a ticket is.
func TestAdmitRPCUsesTheTapTicket(t *testing.T) {
	ac, err := admission.New(admission.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{Admission: ac}}
	for method, want := range map[string]admission.Class{
		evalv1.EvalService_Evaluate_FullMethodName:          admission.Evaluate,
		evalv1.EvalService_WatchDefinitions_FullMethodName:  admission.Poll,
		evalv1.EvalService_ReportEvaluations_FullMethodName: admission.Poll,
	} {
		if cl, ok := GRPCClass(method); !ok || cl != want {
			t.Errorf("GRPCClass(%s) = %v, %v; want %v", method, cl, ok, want)
		}
	}
	if _, ok := GRPCClass("/vexil.eval.v1.EvalService/Nope"); ok {
		t.Error("an unknown method has a class, want none")
	}
	tapped, err := ac.Acquire(admission.Evaluate)
	if err != nil {
		t.Fatal(err)
	}
	ctx := admission.WithTicket(context.Background(), tapped.Shared())
	tk, err := s.admitRPC(ctx, admission.Evaluate)
	if err != nil || ac.Inflight() != 1 {
		t.Fatalf("admitRPC with the tap's ticket: %v, %d in flight; want the same ticket, 1 in flight", err, ac.Inflight())
	}
	tk.Done()
	tk.Done() // the stats handler's, after the handler's
	if n := ac.Inflight(); n != 0 {
		t.Errorf("%d in flight after the shared ticket ended twice, want 0", n)
	}
	tk, err = s.admitRPC(context.Background(), admission.Evaluate)
	if err != nil || ac.Inflight() != 1 {
		t.Fatalf("admitRPC without a ticket: %v, %d in flight; want admitted", err, ac.Inflight())
	}
	tk.Done()
}
