package evalsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/natstest"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/store"
)

// grpcServer is a real gRPC server on a loopback port serving s, and a
// client connection to it. returned, when not nil, receives the error of
// every streaming handler when it returns.
func grpcServer(t testing.TB, s *Service, returned chan<- error) (evalv1.EvalServiceClient, *grpc.ClientConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if returned != nil {
		opts = append(opts, grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			returned <- err
			return err
		}))
	}
	srv := grpc.NewServer(opts...)
	s.RegisterGRPC(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return evalv1.NewEvalServiceClient(conn), conn
}

// flagView is one flag's answer, as both surfaces give it.
type flagView struct {
	Enabled   bool
	Variant   string
	Failed    bool
	Reason    string
	Condition int // -1: none
	Desc      string
	Payload   string // JSON text, "" for none
	ID        int64
	Version   int64
}

type answer struct {
	Flags  map[string]flagView
	Errors bool
}

// httpAnswer decodes a /flags v2 response.
func httpAnswer(t *testing.T, body []byte) answer {
	t.Helper()
	var doc struct {
		Flags map[string]struct {
			Enabled bool    `json:"enabled"`
			Variant *string `json:"variant"`
			Failed  bool    `json:"failed"`
			Reason  struct {
				Code           string `json:"code"`
				ConditionIndex *int   `json:"condition_index"`
				Description    string `json:"description"`
			} `json:"reason"`
			Metadata struct {
				ID      int64           `json:"id"`
				Version int64           `json:"version"`
				Payload json.RawMessage `json:"payload"`
			} `json:"metadata"`
		} `json:"flags"`
		Errors bool `json:"errorsWhileComputingFlags"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("bad /flags response %s: %v", body, err)
	}
	a := answer{Flags: map[string]flagView{}, Errors: doc.Errors}
	for k, f := range doc.Flags {
		v := flagView{Enabled: f.Enabled, Failed: f.Failed, Reason: f.Reason.Code, Condition: -1, Desc: f.Reason.Description,
			ID: f.Metadata.ID, Version: f.Metadata.Version}
		if f.Variant != nil {
			v.Variant = *f.Variant
		}
		if f.Reason.ConditionIndex != nil {
			v.Condition = *f.Reason.ConditionIndex
		}
		if p := string(f.Metadata.Payload); p != "null" {
			v.Payload = p
		}
		a.Flags[k] = v
	}
	return a
}

func grpcAnswer(resp *evalv1.EvaluateResponse) answer {
	a := answer{Flags: map[string]flagView{}, Errors: resp.GetErrorsWhileComputing()}
	for _, f := range resp.GetFlags() {
		v := flagView{Enabled: f.GetEnabled(), Variant: f.GetVariant(), Failed: f.GetFailed(), Reason: f.GetReason().GetCode(), Condition: -1,
			Desc: f.GetReason().GetDescription(), Payload: f.GetPayload(), ID: f.GetId(), Version: f.GetVersion()}
		if f.GetReason().ConditionIndex != nil {
			v.Condition = int(f.GetReason().GetConditionIndex())
		}
		a.Flags[f.GetKey()] = v
	}
	return a
}

func sameAnswer(t *testing.T, got, want answer) {
	t.Helper()
	if got.Errors != want.Errors {
		t.Errorf("errors while computing: gRPC %v, /flags %v", got.Errors, want.Errors)
	}
	if len(got.Flags) != len(want.Flags) {
		t.Errorf("gRPC has %d flags, /flags %d: %v vs %v", len(got.Flags), len(want.Flags), got.Flags, want.Flags)
	}
	for k, w := range want.Flags {
		if g, ok := got.Flags[k]; !ok || g != w {
			t.Errorf("%s: gRPC %+v, /flags %+v", k, g, w)
		}
	}
}

func TestEvaluateMatchesFlags(t *testing.T) {
	cat, st := newFixture(t)
	cases := []struct {
		name  string
		store store.Reader // nil: the fixture's rows
		body  string       // the /flags body
		req   *evalv1.EvaluateRequest
		md    []string // outgoing metadata
		check func(t *testing.T, a answer)
	}{
		{name: "stored properties", body: `{"token":"phc_team1","distinct_id":"u1"}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")},
			check: func(t *testing.T, a answer) {
				if b := a.Flags["beta"]; !b.Enabled || b.Reason != "condition_match" || b.Condition != 0 || b.Payload != `"\"on\""` || b.ID != 1 || b.Version != 3 {
					t.Errorf("beta from the stored plan: %+v", b)
				}
				if mv := a.Flags["mv"]; mv.Variant != "test" || mv.Payload != `"{\"price\": 9}"` {
					t.Errorf("mv: %+v", mv)
				}
				if !a.Flags["static-cohort"].Enabled || a.Flags["company-flag"].Reason != "no_group_type" || len(a.Flags) != 6 {
					t.Errorf("flags: %+v", a.Flags)
				}
			}},
		{name: "token in the metadata", body: `{"token":"phc_team1","distinct_id":"u2"}`,
			req: &evalv1.EvaluateRequest{DistinctId: proto.String("u2")}, md: []string{"authorization", "Bearer phc_team1"},
			check: func(t *testing.T, a answer) {
				if b := a.Flags["beta"]; b.Enabled || b.Reason != "no_condition_match" || b.Payload != "" {
					t.Errorf("u2 is on the free plan: %+v", b)
				}
			}},
		{name: "person property override", body: `{"token":"phc_team1","distinct_id":"u1","person_properties":{"plan":"free"}}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), PersonProperties: `{"plan":"free"}`},
			check: func(t *testing.T, a answer) {
				if a.Flags["beta"].Enabled {
					t.Error("the request's plan must win over the stored one")
				}
			}},
		{name: "groups from the store", body: `{"token":"phc_team1","distinct_id":"u1","groups":{"company":"acme"}}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), Groups: map[string]string{"company": "acme"}},
			check: func(t *testing.T, a answer) {
				if !a.Flags["company-flag"].Enabled {
					t.Error("acme is enterprise in the store")
				}
			}},
		{name: "group property override", body: `{"token":"phc_team1","distinct_id":"u1","groups":{"company":"acme"},"group_properties":{"company":{"plan":"free"}}}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), Groups: map[string]string{"company": "acme"}, GroupProperties: `{"company":{"plan":"free"}}`},
			check: func(t *testing.T, a answer) {
				if a.Flags["company-flag"].Enabled {
					t.Error("the request's group plan must win")
				}
			}},
		{name: "flag keys", body: `{"token":"phc_team1","distinct_id":"u1","flag_keys_to_evaluate":["beta","mv","nope"]}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), FlagKeys: []string{"beta", "mv", "nope"}},
			check: func(t *testing.T, a answer) {
				if len(a.Flags) != 2 || !a.Flags["beta"].Enabled {
					t.Errorf("only beta and mv: %+v", a.Flags)
				}
			}},
		{name: "unknown person", body: `{"token":"phc_team1","distinct_id":"nobody","device_id":"d1"}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("nobody"), DeviceId: "d1"},
			check: func(t *testing.T, a answer) {
				if a.Flags["beta"].Enabled || a.Flags["beta"].Failed || !a.Flags["everyone"].Enabled || a.Errors {
					t.Errorf("an unknown person is evaluated from the request alone: %+v", a)
				}
			}},
		{name: "store failure", store: failingStore{}, body: `{"token":"phc_team1","distinct_id":"u1","person_properties":{"email":"x"}}`,
			req: &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), PersonProperties: `{"email":"x"}`},
			check: func(t *testing.T, a answer) {
				if b := a.Flags["beta"]; !a.Errors || !b.Failed || b.Enabled || b.Reason != "error" {
					t.Errorf("beta needs the stored plan: %+v (errors %v)", b, a.Errors)
				}
				if e := a.Flags["everyone"]; !e.Enabled || e.Failed {
					t.Errorf("a flag that needs nothing still answers: %+v", e)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rd := store.Reader(st)
			if c.store != nil {
				rd = c.store
			}
			s := newService(t, Config{Store: rd, Catalog: cat, StoreTimeout: time.Second})
			client, _ := grpcServer(t, s, nil)
			res, body := post(t, s.Handler(), "/flags?v=2", c.body)
			if res.StatusCode != 200 {
				t.Fatalf("/flags: %d %s", res.StatusCode, body)
			}
			want := httpAnswer(t, body)
			ctx := context.Background()
			if c.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, c.md...)
			}
			resp, err := client.Evaluate(ctx, c.req)
			if err != nil {
				t.Fatal(err)
			}
			got := grpcAnswer(resp)
			sameAnswer(t, got, want)
			c.check(t, got)
			if resp.GetRequestId() == "" {
				t.Error("no request id")
			}
		})
	}
}

func TestEvaluateFailedFlagHasErrorCode(t *testing.T) {
	cat, _ := newFixture(t)
	s := newService(t, Config{Store: failingStore{}, Catalog: cat})
	client, _ := grpcServer(t, s, nil)
	resp, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range resp.GetFlags() {
		if f.GetKey() == "beta" && (!f.GetFailed() || f.GetErrorCode() != flags.CodeMissingContext) {
			t.Errorf("beta: failed %v, error code %q, want %q", f.GetFailed(), f.GetErrorCode(), flags.CodeMissingContext)
		}
		if f.GetKey() == "everyone" && (f.GetFailed() || f.GetErrorCode() != "") {
			t.Errorf("everyone: %v", f)
		}
	}
}

// rpcErr reads Vexil's error back from a gRPC error.
func rpcErr(t *testing.T, err error) (codes.Code, *errcode.Error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	st := status.Convert(err)
	return st.Code(), errcode.FromStatus(st)
}

func TestEvaluateErrors(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat})
	client, _ := grpcServer(t, s, nil)
	h := s.Handler()
	cases := []struct {
		name       string
		body       string // the /flags equivalent, "" for none
		httpStatus int
		req        *evalv1.EvaluateRequest
		code       codes.Code
		posthog    string
		field      string
	}{
		{"unknown token", `{"token":"phc_nope","distinct_id":"u1"}`, 401,
			&evalv1.EvaluateRequest{Token: "phc_nope", DistinctId: proto.String("u1")}, codes.Unauthenticated, "invalid_token", "token"},
		{"revoked token", `{"token":"phc_revoked","distinct_id":"u1"}`, 401,
			&evalv1.EvaluateRequest{Token: "phc_revoked", DistinctId: proto.String("u1")}, codes.Unauthenticated, "invalid_token", "token"},
		{"a secure key is not a project token", `{"token":"phs_team1","distinct_id":"u1"}`, 401,
			&evalv1.EvaluateRequest{Token: "phs_team1", DistinctId: proto.String("u1")}, codes.Unauthenticated, "invalid_token", "token"},
		{"missing token", `{"distinct_id":"u1"}`, 401,
			&evalv1.EvaluateRequest{DistinctId: proto.String("u1")}, codes.Unauthenticated, "missing_token", "token"},
		{"missing distinct id", `{"token":"phc_team1"}`, 400,
			&evalv1.EvaluateRequest{Token: "phc_team1"}, codes.InvalidArgument, "missing_distinct_id", "distinct_id"},
		{"person properties not an object", `{"token":"phc_team1","distinct_id":"u1","person_properties":[1]}`, 400,
			&evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), PersonProperties: `[1]`}, codes.InvalidArgument, "invalid_body", "person_properties"},
		{"person properties not JSON", "", 0,
			&evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), PersonProperties: `{"plan":`}, codes.InvalidArgument, "invalid_body", "person_properties"},
		{"group properties not objects", `{"token":"phc_team1","distinct_id":"u1","group_properties":{"company":"x"}}`, 400,
			&evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), GroupProperties: `{"company":"x"}`}, codes.InvalidArgument, "invalid_body", "group_properties"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.body != "" {
				res, body := post(t, h, "/flags?v=2", c.body)
				var he apiError
				_ = json.Unmarshal(body, &he)
				// /flags may name a field inside (group_properties.company).
				attr, _ := he.Attr.(string)
				if res.StatusCode != c.httpStatus || he.Code != c.posthog || attr != c.field && !strings.HasPrefix(attr, c.field+".") {
					t.Errorf("/flags: %d %s, want %d %s field %q", res.StatusCode, body, c.httpStatus, c.posthog, c.field)
				}
			}
			_, err := client.Evaluate(context.Background(), c.req)
			code, e := rpcErr(t, err)
			// Both name the field at fault, or one inside it (group_properties.company).
			if code != c.code || e.Meta["posthog_code"] != c.posthog || e.Field != c.field && !strings.HasPrefix(e.Field, c.field+".") || e.Message == "" {
				t.Errorf("got %v %+v, want %v posthog_code %q field %q", code, e, c.code, c.posthog, c.field)
			}
			if e.Code.HTTPStatus() != c.httpStatus && c.httpStatus != 0 {
				t.Errorf("errcode maps it to HTTP %d, /flags answers %d", e.Code.HTTPStatus(), c.httpStatus)
			}
		})
	}
}

// TestEvaluateSharesAdmission: gRPC and HTTP requests draw on the same
// in-flight limit.
func TestEvaluateSharesAdmission(t *testing.T) {
	cat, _ := newFixture(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	s := newService(t, Config{Store: blockingStore{entered: entered, release: release}, Catalog: cat, StoreTimeout: time.Hour, Admission: oneSlot(t)})
	client, _ := grpcServer(t, s, nil)
	done := make(chan int)
	go func() {
		res, _ := post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`)
		done <- res.StatusCode
	}()
	<-entered // the HTTP request holds the only slot
	_, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u2")})
	if code, e := rpcErr(t, err); code != codes.ResourceExhausted || e.Code != errcode.Overloaded || e.Meta["posthog_code"] != "overloaded" ||
		e.Meta[errcode.MetaRetryAfter] != "1" || e.Meta["class"] != "evaluate" {
		t.Errorf("got %v %+v, want RESOURCE_EXHAUSTED overloaded with retry_after 1", code, e)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("the HTTP request: %d", code)
	}
	resp, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u2")})
	if err != nil || len(resp.GetFlags()) != 6 {
		t.Errorf("after the slot is free: %v, %d flags", err, len(resp.GetFlags()))
	}
}

func TestFlagsRequestKeepsNumberText(t *testing.T) {
	r, err := flagsRequest(&evalv1.EvaluateRequest{DistinctId: proto.String(strings.Repeat("é", 250)), PersonProperties: `{"seats":5.0,"id":12345678901234567890,"$device_id":"dev"}`,
		GroupProperties: `{"company":{"size":10}}`}, "phc_x", wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.PersonProperties["seats"] != json.Number("5.0") || r.PersonProperties["id"] != json.Number("12345678901234567890") {
		t.Errorf("numbers must keep their text: %#v", r.PersonProperties)
	}
	if r.GroupProperties["company"]["size"] != json.Number("10") {
		t.Errorf("group properties: %#v", r.GroupProperties)
	}
	if r.DeviceID != "dev" || r.Token != "phc_x" || len([]rune(r.DistinctID)) != 200 || r.FlagKeys != nil {
		t.Errorf("request %+v", r)
	}
	if _, err := flagsRequest(&evalv1.EvaluateRequest{DistinctId: proto.String("u"), PersonProperties: `{} {}`}, "", wire.Limits{}); err == nil {
		t.Error("data after the object must be refused")
	}
}

func TestGatewayEvaluate(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat, MaxBodyBytes: 1024})
	_, conn := grpcServer(t, s, nil)
	gw, err := s.Gateway(conn)
	if err != nil {
		t.Fatal(err)
	}
	_, body := post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","groups":{"company":"acme"}}`)
	want := httpAnswer(t, body)

	res, body := post(t, gw, "/api/evaluate", `{"distinct_id":"u1","groups":{"company":"acme"}}`, "Authorization", "Bearer phc_team1",
		"X-Request-ID", "0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var doc struct {
		Flags []struct {
			Key     string `json:"key"`
			Enabled bool   `json:"enabled"`
			Variant string `json:"variant"`
			Payload string `json:"payload"`
			ID      string `json:"id"` // int64 is a string in protojson
		} `json:"flags"`
		Errors    bool   `json:"errors_while_computing"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Flags) != len(want.Flags) || doc.Errors || doc.RequestID != "0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11" {
		t.Fatalf("response %s", body)
	}
	for _, f := range doc.Flags {
		w := want.Flags[f.Key]
		if f.Enabled != w.Enabled || f.Variant != w.Variant || f.Payload != w.Payload {
			t.Errorf("%s: /api/evaluate %+v, /flags %+v", f.Key, f, w)
		}
	}
	if !want.Flags["company-flag"].Enabled {
		t.Error("company-flag must be on for acme")
	}

	for _, c := range []struct {
		name, body string
		hdr        []string
		status     int
		code       errcode.Code
	}{
		{"unknown token", `{"token":"phc_nope","distinct_id":"u1"}`, nil, 401, errcode.Unauthenticated},
		{"missing distinct id", `{"token":"phc_team1"}`, nil, 400, errcode.InvalidArgument},
		{"unknown field", `{"token":"phc_team1","distinct_id":"u1","nope":1}`, nil, 400, errcode.InvalidArgument},
		{"body too large", `{"token":"phc_team1","distinct_id":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, errcode.TooLarge},
	} {
		res, body := post(t, gw, "/api/evaluate", c.body, c.hdr...)
		var st struct {
			Details []struct {
				Reason string `json:"reason"`
			} `json:"details"`
		}
		_ = json.Unmarshal(body, &st)
		if res.StatusCode != c.status || len(st.Details) == 0 || st.Details[0].Reason != string(c.code) {
			t.Errorf("%s: %d %s, want %d %s", c.name, res.StatusCode, body, c.status, c.code)
		}
	}
	w := httptest.NewRecorder()
	gw.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/evaluate", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

// watchEnv is a Service running with change notices on an in-process NATS.
type watchEnv struct {
	cat *fakeCatalog
	s   *Service
	// stop ends Run and returns its error.
	stop func() error
	// change changes beta's condition to target plan in the catalog and
	// publishes the change notice.
	change func(plan string, version int64) error
}

func watchFixture(t *testing.T) watchEnv {
	t.Helper()
	cat, st := newFixture(t)
	nc := natstest.Start(t).Conn
	s := newService(t, Config{Store: st, Catalog: cat, ReloadInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, nc) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	<-s.subscribed
	t.Cleanup(func() { nc.Close() })
	changeBeta := func(plan string, version int64) error {
		cat.mu.Lock()
		snap := cat.snaps[1]
		defs := snap.Definitions
		defs.Flags = append([]flags.Flag(nil), defs.Flags...)
		defs.Flags[0].Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "plan", Type: "person", Value: json.RawMessage(`"` + plan + `"`)}}}}
		defs.Flags[0].Version = version
		snap.Definitions = defs
		cat.snaps[1] = snap
		cat.mu.Unlock()
		return nc.Publish("vexil.changes.1", []byte(`{"team":1,"kind":"flag","key":"beta"}`))
	}
	return watchEnv{cat: cat, s: s, stop: stop, change: changeBeta}
}

func TestWatchDefinitions(t *testing.T) {
	env := watchFixture(t)
	s, change := env.s, env.change
	client, _ := grpcServer(t, s, nil)
	h := s.Handler()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phs_team1"))
	defer cancel()
	stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{SendCohorts: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	w := get(h, "/flags/definitions?send_cohorts", "Authorization", "Bearer phs_team1")
	if first.GetEtag() != w.Header().Get("ETag") || !bytes.Equal(first.GetPayload(), w.Body.Bytes()) || first.GetTeamId() != 1 {
		t.Fatalf("first message: etag %s team %d, want the GET payload with etag %s", first.GetEtag(), first.GetTeamId(), w.Header().Get("ETag"))
	}

	// A reload with nothing changed sends nothing: the next message is
	// the change's.
	if err := s.Refresh(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := change("free", 4); err != nil {
		t.Fatal(err)
	}
	second, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if second.GetEtag() == first.GetEtag() {
		t.Fatal("the same etag was sent twice")
	}
	w = get(h, "/flags/definitions?send_cohorts", "Authorization", "Bearer phs_team1")
	if second.GetEtag() != w.Header().Get("ETag") || !bytes.Equal(second.GetPayload(), w.Body.Bytes()) {
		t.Errorf("second message: etag %s, want the new GET payload with etag %s", second.GetEtag(), w.Header().Get("ETag"))
	}
	var doc struct {
		Flags []struct {
			Key     string `json:"key"`
			Filters struct {
				Groups []struct {
					Properties []struct {
						Value any `json:"value"`
					} `json:"properties"`
				} `json:"groups"`
			} `json:"filters"`
		} `json:"flags"`
	}
	if err := json.Unmarshal(second.GetPayload(), &doc); err != nil || doc.Flags[0].Key != "beta" || doc.Flags[0].Filters.Groups[0].Properties[0].Value != "free" {
		t.Errorf("the new payload must target the free plan: %s (%v)", second.GetPayload(), err)
	}
}

func TestWatchDefinitionsRefused(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat})
	client, _ := grpcServer(t, s, nil)
	cases := []struct {
		name, auth, token string
		code              codes.Code
		posthog           string
	}{
		{"no key", "", "", codes.Unauthenticated, "not_authenticated"},
		{"unknown key", "Bearer phx_bogus", "", codes.Unauthenticated, "authentication_failed"},
		{"a project token", "Bearer phc_team1", "", codes.Unauthenticated, "authentication_failed"},
		{"personal key without flag:read", "Bearer phx_noscope", "", codes.PermissionDenied, "permission_denied"},
		{"personal key of another team", "Bearer phx_team2", "phc_team1", codes.PermissionDenied, "permission_denied"},
		{"secure key of another team", "Bearer phs_team1", "phc_team2", codes.PermissionDenied, "permission_denied"},
		{"unknown project token", "Bearer phx_reader", "phc_nope", codes.Unauthenticated, "invalid_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.auth != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.auth)
			}
			stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{Token: c.token})
			if err == nil {
				_, err = stream.Recv()
			}
			code, e := rpcErr(t, err)
			if code != c.code || e.Meta["posthog_code"] != c.posthog {
				t.Errorf("got %v %+v, want %v %s", code, e, c.code, c.posthog)
			}
		})
	}
	// A personal key with flag:read, or with every scope ("*"), is
	// accepted, as by GET /flags/definitions (the fixture's phx_all).
	for _, key := range []string{"phx_reader", "phx_all"} {
		if w := get(s.Handler(), "/flags/definitions?token=phc_team1", "Authorization", "Bearer "+key); w.Code != 200 {
			t.Errorf("GET /flags/definitions with %s: %d %s", key, w.Code, w.Body)
		}
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key))
		stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{Token: "phc_team1"})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := stream.Recv(); err != nil || m.GetTeamId() != 1 || len(m.GetPayload()) == 0 {
			t.Errorf("personal key %s: %v %v", key, m, err)
		}
		cancel()
	}
}

func TestWatchDefinitionsEnds(t *testing.T) {
	t.Run("the client cancels", func(t *testing.T) {
		cat, st := newFixture(t)
		s := newService(t, Config{Store: st, Catalog: cat})
		returned := make(chan error, 1)
		client, _ := grpcServer(t, s, returned)
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phs_team1"))
		stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-returned; status.Code(err) != codes.Canceled {
			t.Errorf("the handler returned %v, want CANCELED", err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("client: %v", err)
		}
	})
	t.Run("the server stops", func(t *testing.T) {
		env := watchFixture(t)
		s, stop := env.s, env.stop
		returned := make(chan error, 1)
		client, _ := grpcServer(t, s, returned)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phs_team1")
		stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := <-returned; status.Code(err) != codes.Unavailable {
			t.Errorf("the handler returned %v, want UNAVAILABLE", err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("client: %v", err)
		}
	})
	t.Run("the key is revoked", func(t *testing.T) {
		env := watchFixture(t)
		cat, s, change := env.cat, env.s, env.change
		client, _ := grpcServer(t, s, nil)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer phs_team1")
		stream, err := client.WatchDefinitions(ctx, &evalv1.WatchDefinitionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		cat.mu.Lock()
		k := cat.keys[string(hashKey("phs_team1"))]
		k.RevokedAt = time.Unix(2, 0)
		cat.keys[string(hashKey("phs_team1"))] = k
		cat.mu.Unlock()
		s.keys.flush() // as a "key" change notice does
		if err := change("free", 4); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if code, e := rpcErr(t, err); code != codes.Unauthenticated {
			t.Errorf("after the revocation: %v %+v", code, e)
		}
	})
}

func TestHyperCacheChanges(t *testing.T) {
	loads := 0
	c := newHyperCache(func(context.Context, int64) (*teamState, error) {
		loads++
		if loads == 3 {
			return nil, errTeamGone
		}
		return &teamState{team: catalog.Team{ID: 1}}, nil
	})
	ch := c.changes(1)
	if c.changes(1) != ch {
		t.Fatal("watchers of a team share one channel until it changes")
	}
	if _, err := c.get(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("the first load must close the channel")
	}
	next := c.changes(1)
	if next == ch {
		t.Fatal("a closed channel is replaced")
	}
	other := c.changes(2)
	if _, err := c.refresh(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	default:
		t.Fatal("a reload must close the channel")
	}
	select {
	case <-other:
		t.Fatal("another team's channel stays open")
	default:
	}
	gone := c.changes(1)
	if _, err := c.refresh(context.Background(), 1); !errors.Is(err, errTeamGone) {
		t.Fatalf("third load: %v", err)
	}
	select {
	case <-gone:
	default:
		t.Fatal("a removal must close the channel")
	}
}
