package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/loadtest"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
)

// scenarioConfig is what vexil loadtest -scenario needs to build its ops.
type scenarioConfig struct {
	mix         string // "flags=70,grpc=10,poll=15,write=5"
	base        string // http://host:port
	grpcAddr    string
	natsURL     string
	ns          namespace.Name
	team        int64
	token       string
	personalKey string
	persons     int
	zipf        float64
	event       string // the event op's event name
	run         loadtest.Scenario
	capacity    loadtest.CapacityConfig // P99 > 0: search
	asJSON      bool
}

// scenarioOps are the op names -scenario knows.
var scenarioOps = []string{"flags", "grpc", "poll", "write", "event"}

// maxEventName bounds -event-name: the ingest decoder's bound on a
// string field.
const maxEventName = 1024

// parseMix reads "name=weight,..." (weights 1..10⁶, each op once).
func parseMix(s string) (map[string]int, []string, error) {
	out := map[string]int{}
	var order []string
	for part := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		weight, err := strconv.Atoi(w)
		switch {
		case !ok || err != nil || weight < 1 || weight > 1_000_000:
			return nil, nil, fmt.Errorf("-scenario: %q: want name=weight with a weight 1..1000000", part)
		case !strings.Contains(","+strings.Join(scenarioOps, ",")+",", ","+name+","):
			return nil, nil, fmt.Errorf("-scenario: unknown op %q (ops: %s)", name, strings.Join(scenarioOps, ", "))
		case out[name] != 0:
			return nil, nil, fmt.Errorf("-scenario: op %q twice", name)
		}
		out[name] = weight
		order = append(order, name)
	}
	return out, order, nil
}

// distinctIDs draws a table of persons, Zipf-distributed when zipf > 1:
// request i asks for ids[i mod len].
func distinctIDs(persons int, zipf float64) []string {
	r := rand.New(rand.NewPCG(1, 2))
	var z *rand.Zipf
	if zipf > 1 {
		z = rand.NewZipf(r, zipf, 1, uint64(persons-1))
	}
	ids := make([]string, 1<<16)
	for i := range ids {
		p := r.IntN(persons)
		if z != nil {
			p = int(z.Uint64())
		}
		ids[i] = fmt.Sprintf("user-%d", p)
	}
	return ids
}

// runScenario builds the ops of c.mix and runs them once, or searches
// for the capacity.
func runScenario(ctx context.Context, c scenarioConfig, stdout io.Writer) error {
	weights, order, err := parseMix(c.mix)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if c.persons < 1 || c.zipf != 0 && c.zipf <= 1 {
		return &usageError{msg: "-persons must be positive and -zipf 0 or > 1"}
	}
	if weights["event"] > 0 && (c.event == "" || len(c.event) > maxEventName || !utf8.ValidString(c.event) || strings.ContainsFunc(c.event, unicode.IsControl)) {
		return &usageError{msg: fmt.Sprintf("-event-name %q: 1 to %d bytes of UTF-8 without control characters", c.event, maxEventName)}
	}
	ids := distinctIDs(c.persons, c.zipf)
	// write and event share one NATS connection, made for the first.
	var js jetstream.JetStream
	stream := func(op string) (jetstream.JetStream, error) {
		if js != nil {
			return js, nil
		}
		nc, err := nats.Connect(c.natsURL)
		if err != nil {
			return nil, fmt.Errorf("-scenario %s: NATS %s: %w", op, c.natsURL, err)
		}
		if js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, err
		}
		return js, nil
	}
	defer func() {
		if js != nil {
			js.Conn().Close()
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(c.run.Connections, 16)}}
	for _, name := range order {
		op := loadtest.Op{Name: name, Weight: weights[name]}
		switch name {
		case "flags":
			op.Do = func(ctx context.Context, i uint64) error {
				body := fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, c.token, ids[i%uint64(len(ids))])
				return httpOp(ctx, client, "POST", c.base+"/flags/?v=2", body, nil, 200)
			}
		case "poll":
			if c.personalKey == "" {
				return &usageError{msg: "-scenario poll needs -personal-key"}
			}
			var etag atomic.Value // the last ETag: polls answer 304 until definitions change
			etag.Store("")
			op.Do = func(ctx context.Context, i uint64) error {
				h := http.Header{"Authorization": {"Bearer " + c.personalKey}}
				if e := etag.Load().(string); e != "" {
					h.Set("If-None-Match", e)
				}
				return httpOp(ctx, client, "GET", c.base+"/api/feature_flag/local_evaluation/?token="+c.token, "", h, 200, 304, func(r *http.Response) {
					if e := r.Header.Get("ETag"); e != "" {
						etag.Store(e)
					}
				})
			}
		case "grpc":
			if c.grpcAddr == "" {
				return &usageError{msg: "-scenario grpc needs -grpc"}
			}
			conn, err := grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			ev := evalv1.NewEvalServiceClient(conn)
			op.Do = func(ctx context.Context, i uint64) error {
				_, err := ev.Evaluate(ctx, &evalv1.EvaluateRequest{Token: c.token, DistinctId: proto.String(ids[i%uint64(len(ids))])})
				return err
			}
		case "write":
			js, err := stream(name)
			if err != nil {
				return err
			}
			subject := ingest.Subject(c.ns, ingest.Persons, c.team)
			version := time.Now().UnixMicro() // newer than any earlier run's
			op.Do = func(ctx context.Context, i uint64) error {
				did := ids[i%uint64(len(ids))]
				body := fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"p-%s","distinct_ids":[%q],"version":%d,"$set":{"loadtest":%d}}`,
					c.team, did, did, version+int64(i), i)
				_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{"Content-Type": {"application/json"}}})
				return err
			}
		case "event":
			js, err := stream(name)
			if err != nil {
				return err
			}
			subject := ingest.Subject(c.ns, ingest.Events, c.team)
			// Each event's uuid is the run's and the op's number: the
			// projector counts an event once per uuid, so no two events of
			// this run or of another collapse into one.
			run := time.Now().UnixNano()
			op.Do = func(ctx context.Context, i uint64) error {
				body := fmt.Sprintf(`{"type":"event","team":%d,"distinct_id":%q,"event":%q,"uuid":"loadtest-%d-%d","timestamp":%q}`,
					c.team, ids[i%uint64(len(ids))], c.event, run, i, time.Now().UTC().Format(time.RFC3339Nano))
				_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{"Content-Type": {"application/json"}}})
				return err
			}
		}
		c.run.Ops = append(c.run.Ops, op)
	}
	if c.capacity.P99 > 0 {
		best, steps, err := loadtest.Capacity(ctx, c.capacity, func(ctx context.Context, rate float64) (loadtest.ScenarioResult, error) {
			s := c.run
			s.Rate = rate
			r, err := loadtest.RunScenario(ctx, s)
			if errors.Is(err, context.DeadlineExceeded) {
				err = nil
			}
			return r, err
		})
		if c.asJSON {
			_ = json.NewEncoder(stdout).Encode(map[string]any{"capacity": best, "p99_target_ns": c.capacity.P99, "steps": steps})
		} else {
			fmt.Fprintf(stdout, "%-10s %-4s %12s %10s %10s  %s\n", "rate", "ok", "achieved", "p99", "errors", "why")
			for _, s := range steps {
				fmt.Fprintf(stdout, "%-10.0f %-4v %12.0f %10v %10d  %s\n", s.Rate, s.OK, s.Result.Rate, s.Result.All.P99, s.Result.All.Errors, s.Why)
			}
			fmt.Fprintf(stdout, "capacity: %.0f req/s with p99 under %v\n", best, c.capacity.P99)
		}
		return err
	}
	res, err := loadtest.RunScenario(ctx, c.run)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	if c.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	res.WriteTable(stdout)
	return nil
}

// httpOp sends one request and checks its status; after, when given,
// sees the response.
func httpOp(ctx context.Context, client *http.Client, method, url, body string, h http.Header, okStatus ...any) error {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ok := false
	for _, s := range okStatus {
		switch s := s.(type) {
		case int:
			ok = ok || resp.StatusCode == s
		case func(*http.Response):
			s(resp)
		}
	}
	if !ok {
		return fmt.Errorf("%s %s: status %d", method, req.URL.Path, resp.StatusCode)
	}
	return nil
}
