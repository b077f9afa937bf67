package admission

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestCoalescedResponse: a handler that says it writes its whole answer
// at once (CoalesceResponse) has it sent in one system call, head and
// body, at sizes below, at and above net/http's 4 KB buffer, over one
// keep-alive connection; the bytes the client reads are the answer's. A
// handler that says nothing is written as net/http writes it (two calls
// for 14 KB).
func TestCoalescedResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *stampConn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := bytes.Repeat([]byte("abcdefghij"), n/10)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.URL.Query().Has("coalesce") {
			CoalesceResponse(r.Context(), len(body))
		}
		_, _ = w.Write(body)
	}), ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		if sc, ok := c.(*stampConn); ok {
			select {
			case conns <- sc:
			default:
			}
		}
		return ConnContext(ctx, c)
	}}
	go func() { _ = srv.Serve(StampListener(ln)) }()
	defer srv.Close()
	var sc *stampConn
	calls := func() int {
		sc.w.Lock()
		defer sc.w.Unlock()
		return sc.w.calls
	}
	for _, tc := range []struct {
		n        int
		coalesce bool
		want     int
	}{{100, true, 1}, {4000, true, 1}, {4090, true, 1}, {14000, true, 1}, {100000, true, 1}, {14000, false, 2}, {14000, true, 1}} {
		url := "http://" + ln.Addr().String() + "/?n=" + strconv.Itoa(tc.n)
		if tc.coalesce {
			url += "&coalesce"
		}
		var before int
		if sc != nil {
			before = calls()
		}
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || len(b) != tc.n || !bytes.Equal(b, bytes.Repeat([]byte("abcdefghij"), tc.n/10)) {
			t.Fatalf("%d bytes (coalesce %v): read %d bytes, %v", tc.n, tc.coalesce, len(b), err)
		}
		if sc == nil {
			sc = <-conns
		}
		if got := calls() - before; got != tc.want {
			t.Errorf("%d bytes (coalesce %v): %d write calls, want %d", tc.n, tc.coalesce, got, tc.want)
		}
	}
}

// TestStampConnDeadline: a read past the connection's deadline fails as
// TCPConn's does (a net.Error that times out and wraps
// os.ErrDeadlineExceeded, naming both ends), with one error value per
// connection (net/http ends a read this way after every response); the
// connection reads again once the deadline moves.
func TestStampConnDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := StampListener(ln)
	defer sl.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*stampConn); !ok {
		t.Fatalf("accepted a %T, want a *stampConn", c)
	}
	buf := make([]byte, 8)
	var errs []error
	for range 2 {
		if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		ne, ok := err.(*net.OpError)
		if n != 0 || !ok || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) || ne.Op != "read" ||
			ne.Source.String() != c.LocalAddr().String() || ne.Addr.String() != client.LocalAddr().String() {
			t.Fatalf("read past the deadline: %d, %#v", n, err)
		}
		errs = append(errs, err)
	}
	if errs[0] != errs[1] {
		t.Error("two reads past the deadline: two error values")
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(c, buf[:2]); n != 2 || err != nil || string(buf[:2]) != "ok" {
		t.Fatalf("read after the deadline moved: %d %q %v", n, buf[:n], err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v, want io.EOF", n, err)
	}
}
