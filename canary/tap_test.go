package canary

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// tapServer is a node's evaluation handler behind a tap: it answers with
// the request's distinct id in a flag's variant, or 304 to a poll with an
// ETag.
func tapServer(t *testing.T, tap *Tap) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"flags":{"f":{"enabled":true,"variant":`+strings.TrimSpace(string(b))+`}}}`)
	})
	srv := httptest.NewServer(tap.Wrap(h))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestTapBoundedQueue: with nobody publishing, a tap with a queue of 2
// keeps 2 sampled requests and drops (and counts) the rest; every client
// still gets the node's answer, whole. Publishing then sends the 2 kept,
// each with its request (no Authorization) and answer.
func TestTapBoundedQueue(t *testing.T) {
	var mu sync.Mutex
	var sent [][]byte
	tap, err := NewTap(TapConfig{Share: 1, Queue: 2, Publish: func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, b)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := tapServer(t, tap)
	for i := range 10 {
		body := `"user-` + string(rune('0'+i)) + `"`
		if got, want := post(t, srv.URL+"/flags/?v=2", body), `{"flags":{"f":{"enabled":true,"variant":`+body+`}}}`; got != want {
			t.Fatalf("request %d: answer %s, want %s", i, got, want)
		}
	}
	// Not evaluation requests, and a 304, are not published.
	post(t, srv.URL+"/ofrep/v1/evaluate/flags", `{}`)
	req, _ := http.NewRequest("GET", srv.URL+"/api/feature_flag/local_evaluation/?token=t", nil)
	req.Header.Set("If-None-Match", `"e"`)
	req.Header.Set("Authorization", "Bearer phx_secret")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 304 {
		t.Fatalf("poll: %v %v", res, err)
	}
	if c := tap.Counts(); c["dropped_queue_full"] != 8 || c["skipped_not_modified"] != 1 || c["published"] != 0 {
		t.Fatalf("counts %v, want 8 dropped, 1 not modified", c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tap.Run(ctx); close(done) }()
	for tap.Counts()["published"] < 2 {
		select {
		case <-done:
			t.Fatal("Run ended")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i, b := range sent {
		m, err := DecodeTapped(b)
		if err != nil {
			t.Fatal(err)
		}
		want := `"user-` + string(rune('0'+i)) + `"`
		if string(m.Request.Body) != want || m.Request.Path != "/flags/?v=2" || m.Status != 200 || m.Request.Headers["Content-Type"] != "application/json" ||
			string(m.Answer) != `{"flags":{"f":{"enabled":true,"variant":`+want+`}}}` || m.TookNS <= 0 {
			t.Errorf("message %d: %+v (answer %s)", i, m, m.Answer)
		}
		if strings.Contains(string(b), "phx_") {
			t.Errorf("a personal key was published: %s", b)
		}
	}
}

// TestTapBounds: every setting out of range is refused with its name.
func TestTapBounds(t *testing.T) {
	pub := func([]byte) error { return nil }
	for _, c := range []struct {
		cfg  TapConfig
		want string
	}{
		{TapConfig{Share: 0, Publish: pub}, "share 0"},
		{TapConfig{Share: 1.5, Publish: pub}, "share 1.5"},
		{TapConfig{Share: 1, Queue: -1, Publish: pub}, "queue -1"},
		{TapConfig{Share: 1, Queue: 65537, Publish: pub}, "queue 65537"},
		{TapConfig{Share: 1, MaxMessageBytes: 10, Publish: pub}, "max message bytes 10"},
		{TapConfig{Share: 1}, "Publish is required"},
	} {
		if _, err := NewTap(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	for _, bad := range []string{
		`{"method":"DELETE","path":"/flags","status":200}` + "\n",
		`{"method":"POST","path":"/flags","status":200,"body_len":10}` + "\n{}",
		`{"method":"POST","path":"/flags","status":200,"body_len":-1}` + "\n{}",
		`{"method":"POST","path":"/flags","status":200,"body_len":3}` + "\nabc{}",
		`{"method":"POST","path":"/flags","status":0}` + "\n",
		`{"method":"POST","path":"/flags","status":200}`,
	} {
		if _, err := DecodeTapped([]byte(bad)); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	in := Tapped{Request: Request{Method: "POST", Path: "/flags/?v=2", Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"a":"\n"}`)},
		Status: 200, Answer: []byte("not json\n{"), TookNS: 7}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeTapped(b)
	if err != nil || string(out.Request.Body) != string(in.Request.Body) || string(out.Answer) != string(in.Answer) || out.TookNS != 7 || out.Status != 200 ||
		out.Request.Path != in.Request.Path || out.Request.Headers["Content-Type"] != "application/json" {
		t.Errorf("round trip: %+v, %v", out, err)
	}
}

// TestRunTapped: the candidate is asked, the baseline's recorded answer
// is the reference; a definitions poll goes with the candidate's key; a
// request the node itself failed (503) is counted, not compared.
func TestRunTapped(t *testing.T) {
	var auth string
	cand := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "local_evaluation") {
			auth = r.Header.Get("Authorization")
			_, _ = io.WriteString(w, `{"flags":[{"key":"f","id":9,"filters":{}}]}`)
			return
		}
		b, _ := io.ReadAll(r.Body)
		on := strings.Contains(string(b), "user-1")
		w.Header().Set("Content-Type", "application/json")
		if on {
			_, _ = io.WriteString(w, `{"flags":{"f":{"enabled":true}}}`)
		} else {
			_, _ = io.WriteString(w, `{"flags":{"f":{"enabled":false}}}`)
		}
	}))
	defer cand.Close()
	msgs := []Tapped{
		{Request: Request{Method: "POST", Path: "/flags/?v=2", Body: []byte(`{"token":"phc_b","distinct_id":"user-1"}`)}, Status: 200, Answer: []byte(`{"flags":{"f":{"enabled":false}}}`), TookNS: 1e6},
		{Request: Request{Method: "POST", Path: "/flags/?v=2", Body: []byte(`{"token":"phc_b","distinct_id":"user-2"}`)}, Status: 200, Answer: []byte(`{"flags":{"f":{"enabled":false}}}`), TookNS: 1e6},
		{Request: Request{Method: "POST", Path: "/flags/?v=2", Body: []byte(`{"token":"phc_b","distinct_id":"user-3"}`)}, Status: 503, Answer: []byte(`{"code":"overloaded"}`), TookNS: 1e3},
		{Request: Request{Method: "GET", Path: "/api/feature_flag/local_evaluation/?token=phc_b"}, Status: 200, Answer: []byte(`{"flags":[{"key":"f","id":1,"filters":{}}]}`), TookNS: 2e6},
	}
	i := 0
	res, err := RunTapped(context.Background(), Config{Baseline: Target{Token: "phc_b"}, Candidate: Target{URL: cand.URL, Token: "phc_c", PersonalKey: "phx_c"}},
		func() (Tapped, bool, error) {
			if i == len(msgs) {
				return Tapped{}, false, nil
			}
			i++
			return msgs[i-1], true, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 4 || res.NodeErrors != 1 || res.Compared != 3 || res.Diverged != 1 || len(res.Divergences) != 1 || !strings.Contains(string(res.Divergences[0].Request.Body), "user-1") ||
		res.Divergences[0].Diffs[0] != "flag f: value false != true" {
		t.Errorf("result %+v, want user-1's flag f reported", res)
	}
	if auth != "Bearer phx_c" {
		t.Errorf("definitions poll sent with %q, want the candidate's key", auth)
	}
	if res.Baseline.Max != 2 {
		t.Errorf("baseline latency %+v, want the node's own 2 ms at most", res.Baseline)
	}
}
