package evalsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/usage"
)

// Metric endpoints of the gRPC API (the HTTP gateway's calls count as
// gRPC calls: they go through a client connection).
const (
	endpointEvaluate = "evaluate"
	endpointWatch    = "watch_definitions"
)

// RegisterGRPC registers the evaluation API (vexil.eval.v1.EvalService)
// on a gRPC server. The service authenticates its calls itself (project
// tokens, secure and personal keys), so the server's interceptors need not.
func (s *Service) RegisterGRPC(r grpc.ServiceRegistrar) {
	evalv1.RegisterEvalServiceServer(r, &grpcService{s: s})
}

// grpcService is the gRPC face of a Service.
type grpcService struct {
	evalv1.UnimplementedEvalServiceServer
	s *Service
}

// Evaluate runs the evaluation of POST /flags: the same admission, token
// check, reads and engine, answered as an EvaluateResponse.
func (g *grpcService) Evaluate(ctx context.Context, in *evalv1.EvaluateRequest) (resp *evalv1.EvaluateResponse, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			g.s.cfg.Logger.Error("evaluate: panic", "panic", r)
			resp, err = nil, errcode.New(errcode.Internal, "internal error")
		}
		err = g.s.rpcDone(endpointEvaluate, start, err)
	}()
	return g.s.evaluateRPC(ctx, in)
}

func (s *Service) evaluateRPC(ctx context.Context, in *evalv1.EvaluateRequest) (*evalv1.EvaluateResponse, error) {
	if err := s.checkMemory(); err != nil {
		return nil, err
	}
	ticket, err := s.admitRPC(ctx, admission.Evaluate)
	if err != nil {
		return nil, err
	}
	defer ticket.Done()
	md, _ := metadata.FromIncomingContext(ctx)
	token := in.GetToken()
	if token == "" {
		token = bearer(mdValue(md, "authorization"))
	}
	req, err := flagsRequest(in, token, s.cfg.limits())
	if err != nil {
		return nil, err
	}
	ts, err := s.requestTeam(ctx, req.Token)
	if err != nil {
		return nil, err
	}
	// Vexil's own API has no quotaLimited member: over quota is
	// RESOURCE_EXHAUSTED rate_limited (429 through the gateway).
	if err := s.allowTeam(admission.Evaluate, ts.team.ID); err != nil {
		return nil, err
	}
	sc := getScratch()
	defer putScratch(sc)
	ev := s.evaluate(ctx, ts, req, sc, usage.EndpointGRPC)
	resp := &evalv1.EvaluateResponse{Flags: make([]*evalv1.FlagResult, len(ev.records)), ErrorsWhileComputing: ev.errors,
		RequestId: requestID(mdValue(md, "x-request-id"))}
	// One allocation for every result and reason.
	results := make([]evalv1.FlagResult, len(ev.records))
	reasons := make([]evalv1.Reason, len(ev.records))
	indexes := make([]int32, len(ev.records))
	for i := range ev.records {
		rec := &ev.records[i]
		r, reason := &results[i], &reasons[i]
		r.Key, r.Enabled, r.Variant, r.Id, r.Version, r.Failed, r.ErrorCode = rec.Key, rec.Enabled, rec.Variant, rec.ID, rec.Version, rec.Failed, rec.ErrorCode
		if rec.Enabled && rec.Payload != nil { // as /flags v2: no payload for a disabled flag
			r.Payload = string(rec.Payload)
		}
		reason.Code, reason.Description = string(rec.Reason.Code), rec.Reason.Description
		if rec.Reason.ConditionIndex >= 0 {
			indexes[i] = int32(rec.Reason.ConditionIndex)
			reason.ConditionIndex = &indexes[i]
		}
		r.Reason = reason
		resp.Flags[i] = r
	}
	return resp, nil
}

// flagsRequest checks an EvaluateRequest and turns it into the request
// /flags decodes, by the same rules and within the same limits: it is
// written as the /flags body it stands for and decoded as one. A missing
// distinct id is refused and an empty one accepted, as PostHog's /flags
// does; the id is cut at MaxDistinctIDLength; property numbers keep their
// text; the device id falls back to the $device_id person property.
func flagsRequest(in *evalv1.EvaluateRequest, token string, lim wire.Limits) (*wire.FlagsRequest, error) {
	body := evaluateBody{Token: token, DistinctID: in.DistinctId, DeviceID: in.GetDeviceId(), Groups: in.GetGroups(), FlagKeys: in.GetFlagKeys()}
	for _, p := range []struct {
		name string
		text string
		dst  *json.RawMessage
	}{{"person_properties", in.GetPersonProperties(), &body.PersonProperties}, {"group_properties", in.GetGroupProperties(), &body.GroupProperties}} {
		if p.text == "" {
			continue
		}
		if !json.Valid([]byte(p.text)) {
			return nil, fail(wire.CodeBadBody, p.name, p.name+" must be one JSON object")
		}
		*p.dst = json.RawMessage(p.text)
	}
	raw, err := json.Marshal(&body)
	if err != nil {
		return nil, fail(wire.CodeBadBody, "", err.Error())
	}
	return wire.DecodeFlagsJSON(raw, lim)
}

// evaluateBody is the /flags body an EvaluateRequest stands for.
type evaluateBody struct {
	Token            string            `json:"token,omitempty"`
	DistinctID       *string           `json:"distinct_id,omitempty"`
	DeviceID         string            `json:"device_id,omitempty"`
	Groups           map[string]string `json:"groups,omitempty"`
	PersonProperties json.RawMessage   `json:"person_properties,omitempty"`
	GroupProperties  json.RawMessage   `json:"group_properties,omitempty"`
	FlagKeys         []string          `json:"flag_keys_to_evaluate,omitempty"`
}

// WatchDefinitions sends the team's local-evaluation payload, then a new
// one each time the team's HyperCache entry is replaced with a different
// ETag, until the client goes away or Run returns.
func (g *grpcService) WatchDefinitions(in *evalv1.WatchDefinitionsRequest, stream grpc.ServerStreamingServer[evalv1.WatchDefinitionsResponse]) (err error) {
	s := g.s
	defer func() { err = s.rpcDone(endpointWatch, time.Time{}, err) }()
	ctx := stream.Context()
	// A watch is admitted as a poll until its first payload is sent: an
	// open stream holds no slot of the limit.
	ticket, err := s.admitRPC(ctx, admission.Poll)
	if err != nil {
		return err
	}
	defer func() { ticket.Done() }() // the zero ticket once the first payload is out
	first := true
	md, _ := metadata.FromIncomingContext(ctx)
	secret := bearer(mdValue(md, "authorization"))
	team, err := s.definitionsTeam(ctx, secret, in.GetToken())
	if err != nil {
		return err
	}
	if err := s.allowTeam(admission.Poll, team); err != nil {
		return err
	}
	s.m.watches.Inc()
	defer s.m.watches.Dec()
	last := ""
	for {
		changed := s.cache.changes(team) // before the read: no replacement is missed
		ts, err := s.definitionsState(ctx, team)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		}
		payload := ts.payloadNoCohorts
		if in.GetSendCohorts() {
			payload = ts.payload
		}
		if payload.ETag != last {
			s.cfg.Usage.Poll(team)
			if err := stream.Send(&evalv1.WatchDefinitionsResponse{Etag: payload.ETag, Payload: payload.Body, TeamId: team}); err != nil {
				return err
			}
			last = payload.ETag
		}
		if first {
			ticket.Done()
			ticket, first = admission.Ticket{}, false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopped:
			return errcode.New(errcode.Unavailable, "the server is stopping: reconnect")
		case <-changed:
		}
		// The key is checked again: a revocation's change notice flushes
		// the key cache and reloads the team, which ends up here.
		again, err := s.definitionsTeam(ctx, secret, in.GetToken())
		if err != nil {
			return err
		}
		if again != team {
			return fail(codePermissionDenied, "", "the key no longer reaches this project")
		}
	}
}

// rpcDone counts a finished call (its latency too when start is set) and
// turns its error into a gRPC status with Vexil's stable code.
func (s *Service) rpcDone(endpoint string, start time.Time, err error) error {
	e := classify(err) // the table of failures (errors.go)
	httpStatus := http.StatusOK
	if e != nil {
		httpStatus = e.Code.HTTPStatus()
		if e.Code == errcode.Internal {
			s.cfg.Logger.Error("evalsvc: internal error", "endpoint", endpoint, "err", err)
		}
	}
	if start.IsZero() {
		s.countRequest(endpoint, httpStatus)
	} else {
		s.observe(endpoint, start, httpStatus)
	}
	if e == nil {
		return nil
	}
	return errcode.GRPCStatus(e).Err()
}

func mdValue(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Gateway returns the HTTP handler of POST /api/evaluate: grpc-gateway
// over conn, a client connection to a gRPC server on which RegisterGRPC
// registered the service, so that the server's interceptors run. Bodies
// over MaxBodyBytes get 413; errors are a google.rpc.Status in JSON with
// the HTTP status of errcode's table, as the management API answers.
func (s *Service) Gateway(conn grpc.ClientConnInterface) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, gatewayMarshaler),
		runtime.WithIncomingHeaderMatcher(gatewayHeader),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			st, ok := status.FromError(err)
			if !ok {
				st = errcode.GRPCStatus(err)
			} else if len(st.Details()) == 0 { // the gateway's own (a body that does not decode)
				st = errcode.GRPCStatus(errcode.FromStatus(st))
			}
			writeStatus(w, m, st, 0)
		}),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
			if code == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", http.MethodPost)
				writeStatus(w, m, errcode.GRPCStatus(errcode.New(errcode.Unimplemented, "use POST")), code)
				return
			}
			writeStatus(w, m, errcode.GRPCStatus(errcode.New(errcode.NotFound, "no such route")), 0)
		}),
	)
	if err := evalv1.RegisterEvalServiceHandlerClient(context.Background(), gw, evalv1.NewEvalServiceClient(conn)); err != nil {
		return nil, fmt.Errorf("evalsvc: gateway: %w", err)
	}
	limit := s.cfg.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > int64(limit) {
			writeStatus(w, gatewayMarshaler, errcode.GRPCStatus(tooLarge(limit)), 0)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			data, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
			if err != nil {
				writeStatus(w, gatewayMarshaler, errcode.GRPCStatus(errcode.New(errcode.InvalidArgument, "reading the body: %v", err)), 0)
				return
			}
			if len(data) > limit {
				writeStatus(w, gatewayMarshaler, errcode.GRPCStatus(tooLarge(limit)), 0)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(data))
		}
		gw.ServeHTTP(w, r)
	}), nil
}

// gatewayMarshaler writes snake_case JSON with every scalar, as the
// management API does.
var gatewayMarshaler = &runtime.JSONPb{
	MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
}

// gatewayHeader forwards Authorization and X-Request-ID as metadata.
func gatewayHeader(key string) (string, bool) {
	switch k := strings.ToLower(key); k {
	case "authorization", "x-request-id":
		return k, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// writeStatus writes a gRPC status as JSON with errcode's HTTP status, or
// httpStatus when not 0.
func writeStatus(w http.ResponseWriter, m runtime.Marshaler, st *status.Status, httpStatus int) {
	e := errcode.FromStatus(st)
	body, err := m.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if ra := e.Meta[errcode.MetaRetryAfter]; ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	if e.Code == errcode.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vexil"`)
	}
	if httpStatus == 0 {
		httpStatus = e.Code.HTTPStatus()
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// GRPCClass is the admission class of each EvalService method, for the
// gRPC server to admit a call before its message is decoded
// (admin.ServerConfig.Classes).
func GRPCClass(fullMethod string) (admission.Class, bool) {
	switch fullMethod {
	case evalv1.EvalService_Evaluate_FullMethodName:
		return admission.Evaluate, true
	case evalv1.EvalService_WatchDefinitions_FullMethodName, evalv1.EvalService_ReportEvaluations_FullMethodName:
		return admission.Poll, true
	}
	return 0, false
}
