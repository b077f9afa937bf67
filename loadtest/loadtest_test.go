package loadtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestClosedLoopCountsStatuses(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != "a" && string(b) != "b" {
			t.Errorf("unexpected body %q", b)
		}
		if n.Add(1)%4 == 0 {
			w.WriteHeader(503)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, Bodies: [][]byte{[]byte("a"), []byte("b")}, Connections: 1, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.ByStatus[200]+res.ByStatus[503] != res.Requests || res.Errors != res.ByStatus[503] {
		t.Fatalf("counts do not add up: %+v", res)
	}
	// One connection, every 4th request fails: the error share is 1/4 up
	// to the one request cut off at the end.
	if d := res.Errors*4 - res.Requests; d < -4 || d > 4 {
		t.Errorf("errors %d of %d, want a quarter", res.Errors, res.Requests)
	}
	if res.MeanBytes != 2 || !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("bytes %d, percentiles %v %v %v %v", res.MeanBytes, res.P50, res.P90, res.P99, res.Max)
	}
	if len(res.ByStatusLatency) != 2 {
		t.Fatalf("latencies by status %v, want 200 and 503", res.ByStatusLatency)
	}
	for status, l := range res.ByStatusLatency {
		if !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.Max && l.Max <= res.Max) {
			t.Errorf("status %d: %+v (overall max %v)", status, l, res.Max)
		}
	}
}

func TestLatencyOf(t *testing.T) {
	l := make([]time.Duration, 100)
	for i := range l {
		l[i] = time.Duration(i+1) * time.Millisecond
	}
	if got := latencyOf(l); got != (Latency{P50: 51 * time.Millisecond, P99: 100 * time.Millisecond, Max: 100 * time.Millisecond}) {
		t.Errorf("latencyOf 1..100ms = %+v", got)
	}
	if got := latencyOf(l[:1]); got != (Latency{P50: time.Millisecond, P99: time.Millisecond, Max: time.Millisecond}) {
		t.Errorf("one sample: %+v", got)
	}
}

func TestOpenLoopCountsFromTheSchedule(t *testing.T) {
	// A server that holds every request 50ms with one connection cannot
	// keep up with 200 req/s: requests are dropped, and latency is measured
	// from the schedule, so it exceeds the service time.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, Bodies: [][]byte{[]byte("x")}, Rate: 200, Connections: 1, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "open" || res.Dropped == 0 || res.Errors < res.Dropped || res.ByStatus[200] == 0 {
		t.Errorf("an overloaded open-loop run must drop and count the drops as errors: %+v", res)
	}
	if res.Max < 50*time.Millisecond {
		t.Errorf("max latency %v is below the service time", res.Max)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{}, {URL: "http://x"}, {URL: "http://x", Bodies: [][]byte{nil}}, {URL: "http://x", Bodies: [][]byte{nil}, Duration: time.Second, Rate: -1}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestDoReplacesHTTP(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Config{Connections: 2, Duration: 200 * time.Millisecond,
		Do: func(ctx context.Context, i uint64) (bool, int) {
			calls.Add(1)
			time.Sleep(time.Millisecond)
			return i%2 == 0, 10
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Every measured call is counted once, odd ones as errors.
	if res.Requests == 0 || int64(res.Requests) > calls.Load() || res.ByStatus[200]+res.ByStatus[0] != res.Requests || res.MeanBytes != 10 {
		t.Fatalf("%+v (calls %d)", res, calls.Load())
	}
	if d := 2*res.Errors - res.Requests; d < -3 || d > 3 {
		t.Errorf("errors %d of %d, want about half", res.Errors, res.Requests)
	}
}
