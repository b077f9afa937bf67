package evalsvc

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/vexil-dev/vexil/admission"
)

// bodyWatch is a request body that records whether it was read.
type bodyWatch struct{ read bool }

func (b *bodyWatch) Read([]byte) (int, error) {
	b.read = true
	return 0, errors.New("the body must not be read")
}
func (b *bodyWatch) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status and the
// body, reusable across requests (for counting allocations).
type discardWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) { return d.body.Write(p) }

// TestRefusalPrebuilt: an overload refusal is answered before the query
// is parsed or the body read, from bytes built once that are exactly what
// writeFailure writes for the same refusal (503, Retry-After, PostHog's
// error shape), on /flags, /decide and the definitions; and answering one
// allocates almost nothing, so that a node can refuse far more requests
// than it can answer.
func TestRefusalPrebuilt(t *testing.T) {
	cat, st := newFixture(t)
	ac := oneSlot(t)
	s := newService(t, Config{Store: st, Catalog: cat, Admission: ac})
	h := s.Handler()
	ticket, err := ac.Acquire(admission.Evaluate) // the only slot
	if err != nil {
		t.Fatal(err)
	}
	defer ticket.Done()
	for _, c := range []struct {
		method, path string
		class        admission.Class
	}{{"POST", "/flags?v=2", admission.Evaluate}, {"POST", "/decide/?v=3", admission.Evaluate}, {"GET", "/flags/definitions", admission.Poll}} {
		want := httptest.NewRecorder()
		writeFailure(want, ac.Refusal(c.class))
		body := &bodyWatch{}
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Body = body
		req.Header.Set("Authorization", "Bearer phs_team1")
		got := httptest.NewRecorder()
		h.ServeHTTP(got, req)
		if got.Code != 503 || got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) ||
			got.Header().Get("Retry-After") != "1" || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("%s %s: %d %q %v, want %d %q %v", c.method, c.path, got.Code, got.Body, got.Header(), want.Code, want.Body, want.Header())
		}
		if got.Header().Get("Content-Length") != "" && got.Header().Get("Content-Length") != strconv.Itoa(want.Body.Len()) {
			t.Errorf("%s: Content-Length %s, body %d bytes", c.path, got.Header().Get("Content-Length"), want.Body.Len())
		}
		if body.read {
			t.Errorf("%s %s: the body of a refused request was read", c.method, c.path)
		}
	}
	req := httptest.NewRequest("POST", "/flags?v=2", nil)
	req.Body = &bodyWatch{}
	w := &discardWriter{h: http.Header{}}
	allocs := testing.AllocsPerRun(200, func() {
		w.body.Reset()
		h.ServeHTTP(w, req)
	})
	if w.status != 503 {
		t.Fatalf("status %d, want 503", w.status)
	}
	// The pre-built answer shares its header values and body, and the
	// instrumenting wrapper's status recorder is pooled.
	if allocs > 0 {
		t.Errorf("a refusal allocates %v times, want none", allocs)
	}
}
