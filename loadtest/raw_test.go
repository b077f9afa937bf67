package loadtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRawClient: the raw client sends the bodies, the content type and the
// headers, and reads every kind of answer a Go server gives: a length, a
// chunked body, Connection: close, an empty 204; statuses are counted as
// net/http's client counts them.
func TestRawClient(t *testing.T) {
	var n, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.RequestURI() != "/flags/?v=2" || (string(b) != "a" && string(b) != "bb") ||
			r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Test") != "1" {
			bad.Add(1)
		}
		switch n.Add(1) % 5 {
		case 0:
			w.WriteHeader(503)
			_, _ = w.Write([]byte("busy"))
		case 1: // chunked: flushed before the end
			_, _ = w.Write([]byte("ab"))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte("cd"))
		case 2:
			w.Header().Set("Connection", "close")
			_, _ = w.Write([]byte("abcd"))
		case 3:
			w.WriteHeader(204)
		default:
			_, _ = w.Write([]byte("abcd"))
		}
	}))
	defer srv.Close()
	cfg := Config{URL: srv.URL + "/flags/?v=2", Bodies: [][]byte{[]byte("a"), []byte("bb")}, Connections: 2, Duration: 300 * time.Millisecond,
		Header: http.Header{"X-Test": {"1"}}, Raw: true}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Errorf("%d requests arrived wrong", bad.Load())
	}
	if res.Requests < 20 || res.ByStatus[0] != 0 || res.ByStatus[200]+res.ByStatus[204]+res.ByStatus[503] != res.Requests {
		t.Fatalf("statuses %v of %d requests, want only 200, 204 and 503", res.ByStatus, res.Requests)
	}
	// A fifth of the answers are 503 and a fifth 204, up to the requests
	// cut off at the end (two connections).
	for _, st := range []int{204, 503} {
		if d := res.ByStatus[st]*5 - res.Requests; d < -10 || d > 10 {
			t.Errorf("%d: %d of %d, want a fifth", st, res.ByStatus[st], res.Requests)
		}
	}
	// Bodies: 4 bytes, 0 for a 204: the mean is between 3 and 4.
	if res.MeanBytes != 3 {
		t.Errorf("mean bytes %d, want 3 (four of five answers have 4 bytes)", res.MeanBytes)
	}
}

// TestRawClientErrors: a server that is gone is a status-0 answer, not a
// hang, and a URL the raw client cannot send to is refused.
func TestRawClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	res, err := Run(context.Background(), Config{URL: url, Bodies: [][]byte{[]byte("a")}, Connections: 1, Duration: 100 * time.Millisecond, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.ByStatus[0] != res.Requests {
		t.Errorf("a closed server: %v of %d, want all status 0", res.ByStatus, res.Requests)
	}
	if _, err := Run(context.Background(), Config{URL: "https://127.0.0.1:1/", Bodies: [][]byte{[]byte("a")}, Duration: time.Millisecond, Raw: true}); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Errorf("an https URL: %v, want a refusal", err)
	}
}
