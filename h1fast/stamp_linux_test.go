package h1fast

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/admission"
)

// TestStampedConnection: behind admission's stamped listener (as vexil
// serve runs it), a request answered here sees its age, and a handler's
// CoalesceResponse leaves nothing behind that would hold net/http's next
// answer on the same connection once it is handed over.
func TestStampedConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf("age>0=%v", admission.Age(r.Context(), time.Now()) > 0)
		if r.Method == http.MethodPost { // longer than the GET's whole answer
			body += strings.Repeat(".", 500)
		}
		admission.CoalesceResponse(r.Context(), len(body))
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = io.WriteString(w, body)
	})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(admission.StampListener(inner), Config{Handler: h, Paths: paths, ConnContext: admission.ConnContext})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: admission.ConnContext, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = l.Shutdown(ctx)
	})
	// The kernel turns receive timestamps on in the background once the
	// option is set (admission.StampListener): wait until a request
	// sees its age before the connection that counts.
	stamped := false
	for range 100 {
		r := exchange(t, l.Addr().String(), post("/flags", "", `{}`), 1)
		if b, _ := io.ReadAll(r[0].Body); strings.HasPrefix(string(b), "age>0=true") {
			stamped = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !stamped {
		t.Fatal("no request saw its age in 100 tries: the stamped listener gives no receive times")
	}
	res := exchange(t, l.Addr().String(), post("/flags", "", `{}`)+"GET /flags HTTP/1.1\r\nHost: h\r\n\r\n"+post("/flags", "", `{}`), 3)
	if len(res) != 3 {
		t.Fatalf("%d answers of 3", len(res))
	}
	for i, r := range res {
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || !strings.HasPrefix(string(b), "age>0=true") {
			t.Errorf("answer %d (the second by net/http after the handover): %d %.40q, want 200 and its age seen", i, r.StatusCode, b)
		}
	}
}
