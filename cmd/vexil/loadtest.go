package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/loadtest"
	"github.com/vexil-dev/vexil/namespace"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

func init() {
	register(&command{
		name:    "loadtest",
		summary: "send /flags requests at a fixed rate (open loop) or back to back (closed loop) and report p50/p90/p99",
		run:     runLoadtest,
	})
}

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadtest", stderr)
	url := fs.String("url", "http://127.0.0.1:8000/flags/?v=2", "the endpoint to POST to (keep it on loopback)")
	token := fs.String("token", "", "project token put in each body")
	persons := fs.Int("persons", 10000, "distinct ids user-0 ... user-<persons-1> are drawn from")
	distinct := fs.Int("bodies", 10000, "distinct request bodies, sent round robin")
	groups := fs.Int("companies", 0, "when > 0, each body names company-<i mod companies> as its company group")
	props := fs.Bool("person-properties", false, "send country in person_properties (as the peers' workload does) instead of relying on the stored row")
	rate := fs.Float64("rate", 0, "requests per second (open loop); 0 runs closed loop")
	conns := fs.Int("connections", 16, "connections (closed loop: workers; open loop: requests in flight)")
	duration := fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured warm-up")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	raw := fs.Bool("raw", false, "send with a minimal HTTP/1.1 client (a few µs a request) instead of net/http's, so one core can offer more than a server answers (scripts/bench-overload.sh)")
	var headers headerFlags
	fs.Var(&headers, "header", "an HTTP header \"Name: value\" added to every request (repeatable), e.g. \"X-Vexil-Eval: live\" to measure live evaluation on a server with stored results")
	grpcAddr := fs.String("grpc", "", "load the gRPC EvalService.Evaluate at this loopback address instead of HTTP /flags")
	trivial := fs.String("trivial-server", "", "instead of a load test, serve a trivial handler on this address (the ceiling to compare with)")
	trivialBytes := fs.Int("trivial-bytes", 0, "with -trivial-server, pad the response to this many bytes (to match /flags responses)")
	waitRun := fs.Bool("wait-precompute", true, "with -freshness, wait for the precompute run the probe flag starts before measuring (false: measure during it)")
	fresh := fs.Bool("freshness", false, "instead of a load test, publish person writes at -rate on NATS and measure publish → visible in /flags")
	events := fs.Bool("events", false, "with -freshness, publish events at -rate instead, and measure an event's publish → its behavioural cohort's flag on in /flags (each run creates a cohort and a flag named after its start)")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server, for -freshness")
	nsFlag := fs.String("namespace", string(namespace.Default), "the serving environment's namespace on NATS, for -freshness")
	personal := fs.String("personal-key", "", "personal API key, for -freshness (creates the probe flag)")
	team := fs.Int64("team", 1, "team id, for -freshness and the -scenario ops write and event")
	scenario := fs.String("scenario", "", "run a mix of ops by weight instead, e.g. flags=70,grpc=10,poll=15,write=5 (flags: /flags; grpc: Evaluate at -grpc; poll: definitions with the ETag, needs -personal-key; write: person writes on NATS at -nats-url; event: events named -event-name on NATS at -nats-url, one uuid each); per-op HDR percentiles")
	eventName := fs.String("event-name", "vexil_loadtest_event", "with -scenario event, the events' name (a behavioural cohort tracking it makes the projector count them)")
	zipf := fs.Float64("zipf", 0, "with -scenario, draw distinct ids Zipf-distributed with this exponent (> 1); 0: uniform")
	capP99 := fs.Duration("capacity-p99", 0, "with -scenario, search the highest open-loop rate whose p99 stays under this (no errors, 95% of the rate achieved), each step -duration long")
	capLow := fs.Float64("capacity-low", 100, "with -capacity-p99, the lowest rate tried")
	capHigh := fs.Float64("capacity-high", 50000, "with -capacity-p99, the highest rate tried")
	capSteps := fs.Int("capacity-steps", 8, "with -capacity-p99, the most runs")
	tlsFlags := bindClientTLSFlags(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *scenario != "" {
		if !isLoopbackURL(*url) {
			return &usageError{msg: "-url must be a loopback address: vexil loadtest only loads servers on this machine"}
		}
		ns, err := namespace.Parse(*nsFlag)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("-namespace: %v", err)}
		}
		return runScenario(ctx, scenarioConfig{mix: *scenario, base: strings.TrimSuffix(strings.SplitN(*url, "/flags", 2)[0], "/"),
			grpcAddr: *grpcAddr, natsURL: *natsURL, ns: ns, team: *team, token: *token, personalKey: *personal,
			persons: *persons, zipf: *zipf, event: *eventName, asJSON: *asJSON,
			run:      loadtest.Scenario{Rate: *rate, Connections: *conns, Duration: *duration, Warmup: *warmup},
			capacity: loadtest.CapacityConfig{Low: *capLow, High: *capHigh, P99: *capP99, Steps: *capSteps}}, stdout)
	}
	if *trivial != "" {
		return serveTrivial(ctx, *trivial, *trivialBytes, stdout)
	}
	if *fresh {
		if *rate <= 0 {
			return &usageError{msg: "-freshness needs -rate"}
		}
		base := strings.TrimSuffix(strings.SplitN(*url, "/flags", 2)[0], "/")
		ns, err := namespace.Parse(*nsFlag)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("-namespace: %v", err)}
		}
		fc := freshnessConfig{httpBase: base, natsURL: *natsURL, ns: ns, token: *token, personalKey: *personal, team: *team, waitRun: *waitRun,
			rate: *rate, duration: *duration, persons: 1000, sampleEvery: 10}
		if *events {
			if *rate > maxEventRate || *duration > maxEventDuration {
				return &usageError{msg: fmt.Sprintf("-events: -rate at most %d and -duration at most %v (each sampled event needs a person of its own)", maxEventRate, maxEventDuration)}
			}
			fc.sampleEvery = 50
			return runEventFreshness(ctx, fc, stdout)
		}
		return runFreshness(ctx, fc, stdout)
	}
	if *persons <= 0 || *distinct <= 0 {
		return &usageError{msg: "-persons and -bodies must be positive"}
	}
	if !isLoopbackURL(*url) {
		return &usageError{msg: "-url must be a loopback address: vexil loadtest only loads servers on this machine"}
	}
	r := rand.New(rand.NewPCG(1, 2))
	countries := []string{"US", "DE", "FR"}
	bodies := make([][]byte, *distinct)
	for i := range bodies {
		k := r.IntN(*persons)
		m := map[string]any{"token": *token, "distinct_id": fmt.Sprintf("user-%d", k)}
		if *groups > 0 {
			m["groups"] = map[string]string{"company": fmt.Sprintf("company-%d", k%*groups)}
		}
		if *props {
			m["person_properties"] = map[string]string{"country": countries[k%len(countries)]}
		}
		bodies[i], _ = json.Marshal(m)
	}
	cfg := loadtest.Config{URL: *url, Bodies: bodies, Rate: *rate, Connections: *conns, Duration: *duration, Warmup: *warmup,
		Header: http.Header(headers), Raw: *raw}
	if strings.HasPrefix(*url, "https://") {
		if *raw {
			return &usageError{msg: "-raw speaks plain HTTP/1.1 only; drop -raw for an https URL"}
		}
		tc, err := tlsFlags.config()
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	if *grpcAddr != "" {
		if !strings.HasPrefix(*grpcAddr, "127.") && !strings.HasPrefix(*grpcAddr, "localhost:") && !strings.HasPrefix(*grpcAddr, "[::1]") {
			return &usageError{msg: "-grpc must be a loopback address"}
		}
		creds, err := tlsFlags.grpcCredentials()
		if err != nil {
			return err
		}
		do, closeConn, err := grpcEvaluate(*grpcAddr, creds, *token, bodies)
		if err != nil {
			return err
		}
		defer closeConn()
		cfg.Do = do
	}
	res, err := loadtest.Run(ctx, cfg)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintln(stdout, res)
	return nil
}

// serveTrivial answers every request with a fixed small JSON after reading
// the body: the ceiling of a Go HTTP server under the same load generator.
func serveTrivial(ctx context.Context, addr string, size int, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	body := []byte(`{"flags":{},"errorsWhileComputingFlags":false}`)
	if size > len(body) {
		pad := `{"pad":"` + strings.Repeat("x", size-len(`{"pad":""}`)) + `"}`
		body = []byte(pad)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "trivial handler on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// grpcEvaluate returns a loadtest Do that calls EvalService.Evaluate with
// the same persons the HTTP bodies name, over one client connection.
func grpcEvaluate(addr string, creds grpc.DialOption, token string, bodies [][]byte) (func(context.Context, uint64) (bool, int), func(), error) {
	conn, err := grpc.NewClient(addr, creds)
	if err != nil {
		return nil, nil, err
	}
	client := evalv1.NewEvalServiceClient(conn)
	reqs := make([]*evalv1.EvaluateRequest, len(bodies))
	for i, b := range bodies {
		var m struct {
			DistinctID string            `json:"distinct_id"`
			Groups     map[string]string `json:"groups"`
			Props      map[string]any    `json:"person_properties"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			conn.Close()
			return nil, nil, err
		}
		r := &evalv1.EvaluateRequest{Token: token, DistinctId: proto.String(m.DistinctID), Groups: m.Groups}
		if m.Props != nil {
			p, _ := json.Marshal(m.Props)
			r.PersonProperties = string(p)
		}
		reqs[i] = r
	}
	do := func(ctx context.Context, i uint64) (bool, int) {
		res, err := client.Evaluate(ctx, reqs[int(i%uint64(len(reqs)))])
		if err != nil {
			return false, 0
		}
		return !res.GetErrorsWhileComputing(), proto.Size(res)
	}
	return do, func() { conn.Close() }, nil
}

// headerFlags collects repeated -header "Name: value" flags.
type headerFlags http.Header

func (h *headerFlags) String() string { return fmt.Sprint(http.Header(*h)) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	if *h == nil {
		*h = headerFlags{}
	}
	http.Header(*h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

// isLoopbackURL reports whether an http:// or https:// URL names a host on
// loopback.
func isLoopbackURL(s string) bool {
	u, err := neturl.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return isLoopback(net.JoinHostPort(u.Hostname(), port))
}
