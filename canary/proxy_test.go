package canary

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProxyRollsBackOnErrors: a candidate answering 503 never reaches
// the client (the baseline's answer goes out instead) and rolls back once
// its window's error rate is over the bound; then only the baseline is
// asked.
func TestProxyRollsBackOnErrors(t *testing.T) {
	var baseN, candN int
	base := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		baseN++
		_, _ = io.WriteString(w, `{"flags":{"f":{"enabled":true}}}`)
	}))
	defer base.Close()
	cand := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		candN++
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer cand.Close()
	var reason string
	p, err := NewProxy(ProxyConfig{Share: 1, Window: 10, MaxErrorRate: 0.5, OnRollback: func(r string) { reason = r },
		Baseline: Target{URL: base.URL}, Candidate: Target{URL: cand.URL}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for i := range 15 {
		res, err := http.Post(srv.URL+"/flags/?v=2", "application/json", strings.NewReader(`{"token":"t","distinct_id":"d"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), `"enabled":true`) {
			t.Fatalf("request %d: %d %s, want the baseline's answer", i, res.StatusCode, b)
		}
	}
	st := p.Status()
	if !st.RolledBack || st.CandidateErrors != 10 || candN != 10 || baseN != 15 || st.ByCandidate != 0 || !strings.Contains(reason, "over its last 10 answers") {
		t.Errorf("status %+v, candidate asked %d, baseline %d, reason %q; want a rollback after 10 failed answers", st, candN, baseN, reason)
	}
}
