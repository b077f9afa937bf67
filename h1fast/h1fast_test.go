package h1fast

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// echo answers with what it saw of the request, and lets the request
// choose the answer's shape (status, headers, body) through its query.
func echo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if q.Has("panic") {
		panic("echo was asked to panic")
	}
	if q.Has("close") {
		w.Header().Set("Connection", "close")
	}
	if ct := q.Get("type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Seen-Host", r.Host)
	w.Header().Set("X-Seen-Uri", r.RequestURI)
	w.Header().Set("X-Seen-Close", fmt.Sprint(r.Close))
	w.Header().Set("X-Seen-Length", fmt.Sprint(r.ContentLength))
	w.Header().Set("X-Seen-Proto", r.Proto)
	w.Header().Set("X-Seen-Cache", r.Header.Get("Cache-Control"))
	w.Header().Add("X-Multi", "one")
	w.Header().Add("X-Multi", " two\r\nInjected: no ")
	if q.Has("status") {
		var code int
		fmt.Sscan(q.Get("status"), &code)
		w.WriteHeader(code)
	}
	if q.Has("empty") {
		return
	}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
	}
	fmt.Fprintf(w, "path=%s query=%s force=%v body=%q\n", r.URL.Path, r.URL.RawQuery, r.URL.ForceQuery, body)
}

var paths = []string{"/flags", "/flags/", "/decide"}

// serveBoth serves h on two loopback ports: net/http alone, and net/http
// behind a Listener. It returns both addresses and the Listener.
func serveBoth(t *testing.T, h http.Handler, cfg Config) (plain, fast string, l *Listener, reg *prometheus.Registry) {
	t.Helper()
	start := func(ln net.Listener) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout,
			ErrorLog: nil}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			if l, ok := ln.(*Listener); ok {
				_ = l.Shutdown(ctx)
			}
		})
	}
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	cfg.Handler, cfg.Registry = h, reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Paths == nil {
		cfg.Paths = paths
	}
	if l, err = NewListener(b, cfg); err != nil {
		t.Fatal(err)
	}
	start(a)
	start(l)
	return a.Addr().String(), b.Addr().String(), l, reg
}

// exchange writes raw on a new connection to addr and reads n answers
// (fewer when the server closes first); the connection is closed after.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var req *http.Request
	if strings.HasPrefix(raw, "HEAD ") {
		req = &http.Request{Method: http.MethodHead}
	}
	var out []*http.Response
	for range n {
		res, err := http.ReadResponse(br, req)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(bytes.NewReader(b))
		out = append(out, res)
	}
	return out
}

// describe is an answer as the comparison sees it: Date aside (a clock),
// and Content-Length aside where net/http streams a long answer chunked
// (the bytes must agree, not the framing).
func describe(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	h := res.Header.Clone()
	h.Del("Date")
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n", res.Status)
	for _, k := range keys {
		fmt.Fprintf(&s, "%s: %q\n", k, h[k])
	}
	sum, n := sha256.Sum256(b), len(b)
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	fmt.Fprintf(&s, "close=%v\nbody %d bytes, sha256 %x:\n%s", res.Close, n, sum[:8], b)
	return s.String()
}

func post(path, headers, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: vexil.test\r\n%sContent-Length: %d\r\n\r\n%s", path, headers, len(body), body)
}

// TestSameAnswers sends the same bytes to net/http alone and through a
// Listener: every answer must agree, and the requests the Listener
// takes must have been answered by it (its counter), the others handed
// over (theirs).
func TestSameAnswers(t *testing.T) {
	plain, fast, l, _ := serveBoth(t, http.HandlerFunc(echo), Config{})
	cases := []struct {
		name, raw string
		answers   int
		fast      int    // requests the Listener answers itself
		handover  string // the reason it hands the connection over, if it does
	}{
		{"post", post("/flags?v=2", "Content-Type: application/json\r\n", `{"token":"t","distinct_id":"u"}`), 1, 1, ""},
		{"post with a trailing slash", post("/flags/?v=2&config=true", "", `{}`), 1, 1, ""},
		{"empty query", post("/flags?", "", `{}`), 1, 1, ""},
		{"no body", "POST /decide HTTP/1.1\r\nHost: h\r\n\r\n", 1, 1, ""},
		{"header case, spaces and repeats", post("/flags", "x-custom:  a \r\nX-CUSTOM: b\r\nuser-agent: posthog-node/5\r\nAccept-Encoding: gzip\r\n", `x`), 1, 1, ""},
		{"Pragma no-cache", post("/flags", "Pragma: no-cache\r\n", ``), 1, 1, ""},
		{"keep-alive, three pipelined", post("/flags", "", `1`) + post("/flags/", "Connection: keep-alive\r\n", `22`) + post("/decide", "", `333`), 3, 3, ""},
		{"client asks to close", post("/flags", "Connection: close\r\n", `x`) + post("/flags", "", `never read`), 1, 1, ""},
		{"handler asks to close", post("/flags?close", "", `x`) + post("/flags", "", `never read`), 1, 1, ""},
		{"sniffed content type", post("/flags?status=200", "", `<html><body>x</body></html>`), 1, 1, ""},
		{"set content type", post("/flags?type=text/csv", "", `a,b`), 1, 1, ""},
		{"204", post("/flags?status=204", "", ``), 1, 1, ""},
		{"304", post("/flags?status=304", "", ``), 1, 1, ""},
		{"418 with body", post("/flags?status=418", "", `x`), 1, 1, ""},
		{"599, no status text", post("/flags?status=599", "", `x`), 1, 1, ""},
		{"empty answer", post("/flags?empty", "", `x`), 1, 1, ""},
		{"unread body over 256 KB", post("/flags?empty", "", strings.Repeat("b", 300<<10)), 1, 1, ""},
		{"a body across many reads", post("/flags", "", strings.Repeat("0123456789", 10_000)), 1, 1, ""},
		{"fast then handed over", post("/flags", "", `x`) + "GET /flags HTTP/1.1\r\nHost: h\r\n\r\n", 2, 1, reasonMethod},
		{"GET", "GET /flags?v=2 HTTP/1.1\r\nHost: h\r\n\r\n", 1, 0, reasonMethod},
		{"HEAD", "HEAD /flags HTTP/1.1\r\nHost: h\r\n\r\n", 1, 0, reasonMethod},
		{"another path", post("/api/projects", "", `{}`), 1, 0, reasonPath},
		{"escaped path", post("/fl%61gs", "", `{}`), 1, 0, reasonPath},
		{"dot segment", post("/x/../flags", "", `{}`), 1, 0, reasonPath},
		{"absolute form", post("http://h/flags", "", `{}`), 1, 0, reasonPath},
		{"HTTP/1.0", "POST /flags HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", 1, 0, reasonVersion},
		{"no Host", "POST /flags HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 1, 0, reasonFraming},
		{"two Hosts", "POST /flags HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 1\r\n\r\nx", 1, 0, reasonFraming},
		{"bad Host", "POST /flags HTTP/1.1\r\nHost: a b\r\nContent-Length: 1\r\n\r\nx", 1, 0, reasonHead},
		{"chunked", "POST /flags HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 1, 0, reasonFraming},
		{"Expect", post("/flags", "Expect: 100-continue\r\n", `x`), 1, 0, reasonFraming},
		{"Upgrade", post("/flags", "Connection: Upgrade\r\nUpgrade: websocket\r\n", `x`), 1, 0, reasonFraming},
		{"two Content-Lengths", "POST /flags HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 1, 0, reasonFraming},
		{"bad Content-Length", "POST /flags HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", 1, 0, reasonFraming},
		{"space before the colon", post("/flags", "X-A : b\r\n", `x`), 1, 0, reasonHead},
		{"folded header", post("/flags", "X-A: b\r\n c\r\n", `x`), 1, 0, reasonHead},
		{"control byte in a value", post("/flags", "X-A: b\x01c\r\n", `x`), 1, 0, reasonHead},
		{"head over 8 KB", post("/flags", "X-Big: "+strings.Repeat("a", 9<<10)+"\r\n", `x`), 1, 0, reasonHead},
		{"garbage", "HELLO\r\n\r\n", 1, 0, reasonMethod},
	}
	served := func() float64 { return testutil.ToFloat64(l.served) }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, hb := served(), handovers(l)
			want := exchange(t, plain, c.raw, c.answers)
			got := exchange(t, fast, c.raw, c.answers)
			if len(got) != len(want) || len(want) != c.answers {
				t.Fatalf("net/http answered %d, the Listener %d; want %d", len(want), len(got), c.answers)
			}
			for i := range want {
				if len(want[i].TransferEncoding) > 0 { // net/http streamed it: the bytes must agree, not the framing
					got[i].Header.Del("Content-Length")
				}
				if w, g := describe(want[i]), describe(got[i]); w != g {
					t.Errorf("answer %d:\nnet/http:\n%s\nListener:\n%s", i, w, g)
				}
			}
			if n := served() - before; n != float64(c.fast) {
				t.Errorf("the Listener answered %v requests itself, want %d", n, c.fast)
			}
			ha := handovers(l)
			for _, r := range reasons {
				wantN := hb[r]
				if r == c.handover {
					wantN++
				}
				if ha[r] != wantN {
					t.Errorf("handovers %q: %v, want %v", r, ha[r], wantN)
				}
			}
		})
	}
}

func handovers(l *Listener) map[string]float64 {
	out := map[string]float64{}
	for _, r := range reasons {
		out[r] = testutil.ToFloat64(l.handover[r])
	}
	return out
}

// TestHeadersDoNotLeak: a kept-alive connection reuses the request's
// header map; the second request must see only its own headers.
func TestHeadersDoNotLeak(t *testing.T) {
	_, fast, _, _ := serveBoth(t, http.HandlerFunc(echo), Config{})
	res := exchange(t, fast, post("/flags", "X-First: 1\r\nX-Both: a\r\nPragma: no-cache\r\n", `1`)+post("/flags", "X-Both: b\r\nX-Second: 2\r\n", `2`), 2)
	if len(res) != 2 {
		t.Fatalf("%d answers", len(res))
	}
	b, _ := io.ReadAll(res[1].Body)
	want := "Content-Length=[\"1\"]\nX-Both=[\"b\"]\nX-Second=[\"2\"]\npath=/flags query= force=false body=\"2\"\n"
	if string(b) != want {
		t.Errorf("second request saw\n%s\nwant\n%s", b, want)
	}
	if got := res[1].Header.Get("X-Seen-Cache"); got != "" {
		t.Errorf("Cache-Control from the first request's Pragma leaked: %q", got)
	}
	if got := res[0].Header.Get("X-Seen-Cache"); got != "no-cache" {
		t.Errorf("Pragma: no-cache gave Cache-Control %q, want no-cache (as net/http)", got)
	}
}

// TestPanicClosesWithoutAnswer: as net/http, a handler's panic ends the
// connection with no answer, and the Listener keeps serving others.
func TestPanicClosesWithoutAnswer(t *testing.T) {
	_, fast, l, reg := serveBoth(t, http.HandlerFunc(echo), Config{})
	if res := exchange(t, fast, post("/flags?panic", "", `x`), 1); len(res) != 0 {
		t.Fatalf("a panicking handler answered %s", res[0].Status)
	}
	if res := exchange(t, fast, post("/flags", "", `x`), 1); len(res) != 1 || res[0].StatusCode != 200 {
		t.Fatalf("after a panic: %v", res)
	}
	if n := testutil.ToFloat64(l.served); n != 1 {
		t.Errorf("served %v, want 1 (the panic is not counted)", n)
	}
	// The metrics are registered under their documented names.
	if n, err := testutil.GatherAndCount(reg, "vexil_http_fast_requests_total", "vexil_http_fast_handovers_total"); err != nil || n != 1+len(reasons) {
		t.Errorf("registered series: %d (%v), want %d", n, err, 1+len(reasons))
	}
}

// TestTimeouts: a head that never ends, and a body that never comes, end
// their connections (the server closes; the client's own deadline is
// only a guard).
func TestTimeouts(t *testing.T) {
	_, fast, _, _ := serveBoth(t, http.HandlerFunc(echo), Config{ReadHeaderTimeout: 50 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	for name, raw := range map[string]string{
		"partial head": "POST /flags HTTP/1.1\r\nHost: h\r\n",
		"partial body": "POST /flags HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
		"idle":         "",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", fast)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, raw)
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
		})
	}
}

// TestShutdown: Shutdown closes an idle kept-alive connection at once,
// and lets a request in progress finish, its answer saying
// Connection: close.
func TestShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "block" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	_, fast, l, _ := serveBoth(t, h, Config{IdleTimeout: time.Hour})
	idle, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(idle)
	_, _ = io.WriteString(idle, post("/flags", "", ""))
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("first answer: %v %v", res, err)
	} else {
		_, _ = io.ReadAll(res.Body)
	}
	busy, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_ = busy.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(busy, post("/flags?block", "", ""))
	<-entered
	shut := make(chan error)
	go func() { shut <- l.Shutdown(context.Background()) }()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after Shutdown: %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	default:
	}
	close(release)
	res, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "done" || !res.Close {
		t.Errorf("the request in progress: %q, close %v; want done, close", b, res.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestAllocations: what a kept-alive request costs the server here when
// its handler allocates nothing, against net/http's (the reason for the
// package). The client writes pre-built requests and reads into a fixed
// buffer, so the process's allocations are the server's.
func TestAllocations(t *testing.T) {
	answer := []byte(strings.Repeat("a", 12_000))
	contentType := []string{"application/json"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = contentType
		_, _ = w.Write(answer)
	})
	plain, fast, _, _ := serveBoth(t, h, Config{IdleTimeout: time.Minute})
	req := []byte(post("/flags/?v=2", "Content-Type: application/json\r\nUser-Agent: posthog-node/5.0\r\nAccept: */*\r\n", `{"token":"phc_x","distinct_id":"user-42"}`))
	measure := func(addr string) float64 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		roundTrip := func() {
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			got := 0
			for {
				n, err := c.Read(buf[got:])
				if err != nil {
					t.Fatal(err)
				}
				got += n
				if i := bytes.Index(buf[:got], crlfcrlf); i >= 0 && got >= i+4+len(answer) {
					return
				}
			}
		}
		for range 100 { // warm: pools, the connection's tables
			roundTrip()
		}
		return testing.AllocsPerRun(2000, roundTrip)
	}
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random: allocations are counted without it")
	}
	viaHTTP, viaFast := measure(plain), measure(fast)
	t.Logf("allocations per request: net/http %.1f, Listener %.2f", viaHTTP, viaFast)
	if viaFast > 0.5 {
		t.Errorf("the Listener allocates %.2f times per request, want none (net/http: %.1f)", viaFast, viaHTTP)
	}
	if viaHTTP < 5 {
		t.Errorf("net/http allocates %.1f times per request: the comparison no longer measures what it says", viaHTTP)
	}
}

// TestIdleConnectionHoldsItsReadBuffer: a kept-alive connection waiting
// for its next request holds its read buffer (as net/http's do) and no
// answer buffer, whatever its last answer's size, so that many idle
// connections cost little.
func TestIdleConnectionHoldsItsReadBuffer(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	_, fast, l, _ := serveBoth(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) }), Config{IdleTimeout: time.Minute})
	c, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, post("/flags", "", `{}`))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(res.Body); len(b) != len(big) {
		t.Fatalf("answer of %d bytes, want %d", len(b), len(big))
	}
	var conns []*conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		conns = conns[:0]
		for k := range l.conns {
			conns = append(conns, k)
		}
		l.mu.Unlock()
		// busy goes false after the answer's buffers are released (the
		// atomic orders those writes before this read).
		if len(conns) == 1 && !conns[0].busy.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, none idle", len(conns))
		}
		time.Sleep(time.Millisecond)
	}
	if ic := conns[0]; ic.rw.bp != nil || ic.rw.body != nil || len(ic.buf) != bufBytes {
		t.Errorf("idle connection holds an answer buffer (%v, %d bytes) or a read buffer of %d bytes, want none and %d", ic.rw.bp != nil, cap(ic.rw.body), len(ic.buf), bufBytes)
	}
}
