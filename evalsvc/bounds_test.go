package evalsvc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/store"
)

// countingBody is a request body that counts the bytes read from it.
type countingBody struct {
	r io.Reader
	n int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countingBody) Close() error { return nil }

// serveCounting posts body to /flags?v=2 through h with the given
// Content-Length (-1: unknown, as a chunked body) and returns the
// response, its PostHog error and how many body bytes h read.
func serveCounting(t *testing.T, h http.Handler, body []byte, contentLength int64, hdr ...string) (*http.Response, apiError, int) {
	t.Helper()
	cb := &countingBody{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, "/flags?v=2", nil)
	req.Body, req.ContentLength = cb, contentLength
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	var e apiError
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("error body %q: %v", b, err)
		}
	}
	return res, e, cb.n
}

func wantRefusal(t *testing.T, res *http.Response, e apiError, status int, code, field string) {
	t.Helper()
	attr, _ := e.Attr.(string)
	if res.StatusCode != status || e.Code != code || attr != field || e.Detail == "" {
		t.Fatalf("got %d %+v, want %d %s on %q", res.StatusCode, e, status, code, field)
	}
}

// TestBodyRefusedBeforeRead: a body whose Content-Length is over
// MaxBodyBytes is refused without reading a byte of it; one without a
// Content-Length is read one byte past the limit and no further.
func TestBodyRefusedBeforeRead(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat, MaxBodyBytes: 1 << 10})
	body := []byte(`{"token":"phc_team1","distinct_id":"u1","person_properties":{"v":"` + strings.Repeat("a", 1<<20) + `"}}`)

	res, e, read := serveCounting(t, s.Handler(), body, int64(len(body)))
	wantRefusal(t, res, e, 413, "body_too_large", "body")
	if read != 0 {
		t.Errorf("read %d bytes of a body refused by its Content-Length", read)
	}
	res, e, read = serveCounting(t, s.Handler(), body, -1)
	wantRefusal(t, res, e, 413, "body_too_large", "body")
	if read > 1<<10+1 {
		t.Errorf("read %d bytes of a chunked body, want at most %d", read, 1<<10+1)
	}
	small := []byte(`{"token":"phc_team1","distinct_id":"u1"}`)
	if res, _, read := serveCounting(t, s.Handler(), small, int64(len(small))); res.StatusCode != 200 || read != len(small) {
		t.Errorf("a small body: %d, read %d of %d bytes", res.StatusCode, read, len(small))
	}
}

// hostileProperties is the request: 150,000 person properties,
// gzipped to about 0.7 MB.
func hostileProperties(t *testing.T) (raw string, gz []byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"token":"phc_team1","distinct_id":"u1","person_properties":{`)
	for i := range 150_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"$prop_%d":"value %d"`, i, i*7919)
	}
	b.WriteString(`}}`)
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	_, _ = w.Write([]byte(b.String()))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), z.Bytes()
}

// TestHostileRequestsRefused: the requests are refused with 413,
// a stable code and the field at fault, on /flags and on gRPC alike.
func TestHostileRequestsRefused(t *testing.T) {
	cat, st := newFixture(t)
	// Decompressed, the hostile body is over the default 2 MiB; raised here
	// so that the property count is what refuses it.
	s := newService(t, Config{Store: st, Catalog: cat, MaxDecodedBytes: 8 << 20})
	client, _ := grpcServer(t, s, nil)
	raw, gz := hostileProperties(t)
	if len(gz) > 1<<20 {
		t.Fatalf("the gzip body is %d bytes, over MaxBodyBytes", len(gz))
	}
	res, e, _ := serveCounting(t, s.Handler(), gz, int64(len(gz)), "Content-Encoding", "gzip")
	wantRefusal(t, res, e, 413, "too_many_values", "person_properties")

	// gRPC's own bound on a message (4 MiB) is under the hostile body:
	// the first 20,000 properties.
	props := raw[strings.Index(raw, `"person_properties":`)+len(`"person_properties":`):]
	props = props[:strings.Index(props, `,"$prop_20000"`)] + "}"
	_, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"), PersonProperties: props})
	if code, ee := rpcErr(t, err); code != codes.ResourceExhausted || ee.Meta["posthog_code"] != "too_many_values" || ee.Field != "person_properties" {
		t.Errorf("gRPC: %v %+v", code, ee)
	}

	long := `{"token":"phc_team1","distinct_id":"u1","person_properties":{"email":"` + strings.Repeat("a", 900_000) + `"}}`
	res, e, _ = serveCounting(t, s.Handler(), []byte(long), int64(len(long)))
	wantRefusal(t, res, e, 413, "property_too_large", "person_properties")
	_, err = client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1"),
		GroupProperties: `{"company":{"plan":"` + strings.Repeat("a", 9000) + `"}}`})
	if code, ee := rpcErr(t, err); code != codes.ResourceExhausted || ee.Meta["posthog_code"] != "property_too_large" || ee.Field != "group_properties" {
		t.Errorf("gRPC: %v %+v", code, ee)
	}

	// The default bound on the decompressed body refuses the hostile body
	// first.
	s2 := newService(t, Config{Store: st, Catalog: cat})
	res, e, _ = serveCounting(t, s2.Handler(), gz, int64(len(gz)), "Content-Encoding", "gzip")
	wantRefusal(t, res, e, 413, "body_too_large", "body")
}

// TestMemoryPressureSheds: over the shed fraction of the memory limit a
// request is refused with 503 memory_pressure before its body is read, on
// /flags and gRPC alike; under it, it is served.
func TestMemoryPressureSheds(t *testing.T) {
	cat, st := newFixture(t)
	// Any live heap is over 85% of 1 KiB.
	s := newService(t, Config{Store: st, Catalog: cat, MemoryLimit: 1 << 10})
	body := []byte(`{"token":"phc_team1","distinct_id":"u1"}`)
	res, e, read := serveCounting(t, s.Handler(), body, int64(len(body)))
	wantRefusal(t, res, e, 503, "memory_pressure", "")
	if read != 0 {
		t.Errorf("read %d bytes of a shed request", read)
	}
	client, _ := grpcServer(t, s, nil)
	_, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")})
	if code, ee := rpcErr(t, err); code != codes.Unavailable || ee.Meta["posthog_code"] != "memory_pressure" {
		t.Errorf("gRPC: %v %+v", code, ee)
	}

	roomy := newService(t, Config{Store: st, Catalog: cat, MemoryLimit: math.MaxInt64 - 1})
	if res, _, _ := serveCounting(t, roomy.Handler(), body, int64(len(body))); res.StatusCode != 200 {
		t.Errorf("under the limit: %d", res.StatusCode)
	}
}

// TestEmptyDistinctID: PostHog's /flags accepts an empty distinct id and
// refuses a missing one; gRPC Evaluate does the same.
func TestEmptyDistinctID(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat})
	client, _ := grpcServer(t, s, nil)
	res, b := post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":""}`)
	if res.StatusCode != 200 {
		t.Fatalf("/flags: %d %s", res.StatusCode, b)
	}
	httpFlags := decodeFlags(t, b).Flags
	resp, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("")})
	if err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	if len(resp.GetFlags()) != len(httpFlags) || len(httpFlags) == 0 {
		t.Fatalf("gRPC %d flags, /flags %d", len(resp.GetFlags()), len(httpFlags))
	}
	for _, f := range resp.GetFlags() {
		if h := httpFlags[f.GetKey()]; h.Enabled != f.GetEnabled() || h.Failed != f.GetFailed() {
			t.Errorf("%s: gRPC %+v, /flags %+v", f.GetKey(), f, h)
		}
	}
	_, err = client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1"})
	if code, ee := rpcErr(t, err); code != codes.InvalidArgument || ee.Meta["posthog_code"] != "missing_distinct_id" || ee.Field != "distinct_id" {
		t.Errorf("gRPC without distinct_id: %v %+v", code, ee)
	}
}

// TestEvaluationDeadline: past EvalTimeout the flags not yet decided answer
// failed with deadline_exceeded, and the response says so. A timeout of
// 1ns has passed by the time the engine first reads the clock, after the
// reads.
func TestEvaluationDeadline(t *testing.T) {
	cat, st := newFixture(t)
	s := newService(t, Config{Store: st, Catalog: cat, EvalTimeout: 1, LiveOnly: true})
	res, b := post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`)
	r := decodeFlags(t, b)
	if res.StatusCode != 200 || !r.ErrorsWhile || len(r.Flags) == 0 {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	for key, f := range r.Flags {
		if !f.Failed || f.Enabled {
			t.Errorf("%s: %+v, want failed", key, f)
		}
	}
	client, _ := grpcServer(t, s, nil)
	resp, err := client.Evaluate(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")})
	if err != nil || !resp.GetErrorsWhileComputing() {
		t.Fatalf("gRPC: %v %+v", err, resp)
	}
	for _, f := range resp.GetFlags() {
		if !f.GetFailed() || f.GetErrorCode() != flags.CodeDeadlineExceeded {
			t.Errorf("gRPC %s: %+v, want failed with %s", f.GetKey(), f, flags.CodeDeadlineExceeded)
		}
	}
}

// TestEvaluationDeadlineAfterReads: the evaluation's budget starts once
// the reads are done. A row read slower than EvalTimeout but within
// StoreTimeout (a remote cluster, a loaded host) gives the same answers
// as a fast one, not every flag failed with deadline_exceeded. The read
// sleeps past the whole EvalTimeout, so without the fix the deadline has
// passed before the first flag whatever the machine's speed.
func TestEvaluationDeadlineAfterReads(t *testing.T) {
	cat, st := newFixture(t)
	const body = `{"token":"phc_team1","distinct_id":"u1","groups":{"company":"acme"}}`
	_, want := post(t, newService(t, Config{Store: st, Catalog: cat}).Handler(), "/flags?v=2", body)
	slow := newService(t, Config{Store: slowReader{st, 1500 * time.Millisecond}, Catalog: cat, EvalTimeout: time.Second, StoreTimeout: time.Minute})
	res, b := post(t, slow.Handler(), "/flags?v=2", body)
	got, w := decodeFlags(t, b), decodeFlags(t, want)
	if res.StatusCode != 200 || got.ErrorsWhile || !reflect.DeepEqual(got.Flags, w.Flags) {
		t.Fatalf("row read slower than EvalTimeout: %d %s\nwant %s", res.StatusCode, b, want)
	}
}

// slowReader delays every row read.
type slowReader struct {
	store.Reader
	delay time.Duration
}

func (s slowReader) GetRow(ctx context.Context, team int64, did string) (*store.Row, error) {
	time.Sleep(s.delay)
	return s.Reader.GetRow(ctx, team, did)
}

// TestMemoryGaugeSamples: the heap is read at the first check, then not
// again before the interval has passed; without a limit nothing is read
// or shed.
func TestMemoryGaugeSamples(t *testing.T) {
	g := newMemoryGauge(1<<10, 0.85, time.Hour, nil)
	if err := g.check(); !errors.Is(err, ErrMemoryPressure) {
		t.Fatalf("first check: %v, want ErrMemoryPressure", err)
	}
	g.heap.Store(0) // as if the heap had emptied: no new reading for an hour
	if err := g.check(); err != nil {
		t.Fatalf("second check read the heap again: %v", err)
	}
	none := newMemoryGauge(math.MaxInt64, 0.85, 0, nil)
	if err := none.check(); err != nil || none.heap.Load() != 0 {
		t.Errorf("no limit: %v, heap read %d", err, none.heap.Load())
	}
}

func TestBoundsConfigValidate(t *testing.T) {
	cat, st := newFixture(t)
	for name, c := range map[string]Config{
		"negative MaxValues":       {MaxValues: -1},
		"negative MaxStringBytes":  {MaxStringBytes: -1},
		"negative MaxDecodedBytes": {MaxDecodedBytes: -1},
		"negative EvalTimeout":     {EvalTimeout: -time.Second},
		"negative MemoryLimit":     {MemoryLimit: -1},
		"fraction over 1":          {MemoryShedFraction: 1.5},
		"negative fraction":        {MemoryShedFraction: -0.1},
		"NaN fraction":             {MemoryShedFraction: math.NaN()},
		"sample interval over 1s":  {MemorySampleInterval: 2 * time.Second},
		"negative sample interval": {MemorySampleInterval: -time.Millisecond},
	} {
		c.Store, c.Catalog = st, cat
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	s := newService(t, Config{Store: st, Catalog: cat})
	if d := s.cfg; d.MaxValues != 10_000 || d.MaxStringBytes != 8<<10 || d.MaxDecodedBytes != 2<<20 || d.EvalTimeout != time.Minute ||
		d.MemoryShedFraction != 0.85 || d.MemorySampleInterval != 5*time.Millisecond || d.MemoryLimit != debug.SetMemoryLimit(-1) {
		t.Errorf("defaults %+v", d)
	}
}

// TestHostileRegex: the pattern, (.*a){1000}$, is over
// flags.MaxRegexProgram: the flag holding it answers without running it,
// with a value as long as MaxStringBytes allows, while a pattern under the
// bound runs on that value; a longer value is refused at the edge.
func TestHostileRegex(t *testing.T) {
	cat, st := newFixture(t)
	defs, err := flags.ParseDefinitions([]byte(`{"flags":[
	 {"id":1,"key":"hostile","active":true,"filters":{"groups":[{"properties":[{"key":"v","type":"person","operator":"regex","value":"(.*a){1000}$"}],"rollout_percentage":100}]}},
	 {"id":2,"key":"fine","active":true,"filters":{"groups":[{"properties":[{"key":"v","type":"person","operator":"regex","value":"(.*a){10}$"}],"rollout_percentage":100}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cat.snaps[1] = catalog.TeamSnapshot{Team: catalog.Team{ID: 1}, Definitions: defs}
	s := newService(t, Config{Store: st, Catalog: cat})
	value := strings.Repeat("a", 8<<10)
	res, b := post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","person_properties":{"v":"`+value+`"}}`)
	r := decodeFlags(t, b)
	if res.StatusCode != 200 || r.ErrorsWhile || r.Flags["hostile"].Enabled || r.Flags["hostile"].Failed || !r.Flags["fine"].Enabled {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	res, b = post(t, s.Handler(), "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","person_properties":{"v":"a`+value+`"}}`)
	var e apiError
	_ = json.Unmarshal(b, &e)
	wantRefusal(t, res, e, 413, "property_too_large", "person_properties")
}
