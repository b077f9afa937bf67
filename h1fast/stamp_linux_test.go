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
	res := exchange(t, l.Addr().String(), post("/flags", "", `{}`)+"GET /flags HTTP/1.1\r\nHost: h\r\n\r\n"+post("/flags", "", `{}`), 3)
	if len(res) != 3 {
		t.Fatalf("%d answers of 3", len(res))
	}
	for i, r := range res {
		b, _ := io.ReadAll(r.Body)
		// The kernel stamps every read once the option is on; the first
		// packets of a new listener may come before (admission.StampListener).
		if r.StatusCode != 200 || !strings.HasPrefix(string(b), "age>0=") {
			t.Errorf("answer %d: %d %q", i, r.StatusCode, b)
		}
		if i == 2 && !strings.HasPrefix(string(b), "age>0=true") {
			t.Errorf("a request served by net/http after the handover: %q, want its age seen", b)
		}
	}
}
