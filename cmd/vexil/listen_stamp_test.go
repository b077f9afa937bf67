package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
)

// TestHTTPListenerStampsRequests: serve's HTTP listener hands out
// connections that admission can read a request's age from, through the
// tlsconf wrapper (the stamp sits underneath it).
func TestHTTPListenerStampsRequests(t *testing.T) {
	ls, err := newListeners(config.TLS{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ls.listenHTTP("127.0.0.1:0", "http-addr", "http-addr")
	if err != nil {
		t.Fatal(err)
	}
	ages := make(chan time.Duration, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ages <- admission.Age(r.Context(), time.Now())
	}), ConnContext: admission.ConnContext}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	// The kernel turns timestamps on in the background: the first
	// requests may come unstamped (age 0). Up to 100 tries.
	var age time.Duration
	for range 100 {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if age = <-ages; age > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if age <= 0 {
		t.Errorf("no request carried an age through the HTTP listener (last %v)", age)
	}
}
