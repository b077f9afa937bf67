package canary

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ProxyConfig configures the full canary: a proxy in front of a baseline
// and a candidate that lets the candidate answer a share of live
// evaluation traffic, checks each of those answers against the
// baseline's, and rolls back (sends everything to the baseline) on the
// first divergences or when the candidate's server errors burn faster
// than allowed.
type ProxyConfig struct {
	Baseline, Candidate Target
	// Share of live evaluation requests the candidate answers, 0 < Share
	// <= 1. Other requests (and all after a rollback) go to the baseline.
	Share float64
	Seed  uint64
	// MaxDivergences rolls back once this many answers diverged, 1 to
	// 10⁶. Default 1.
	MaxDivergences int
	// MaxErrorRate rolls back when more than this share of the
	// candidate's last Window answers were server errors or failed, 0 to
	// 1, judged once it answered Window requests. Defaults 0.01 and 200.
	MaxErrorRate float64
	Window       int
	// SlowAfter, when set, counts a candidate answer slower than it as
	// bad in the window too (the SLO's latency: the window's bad share is
	// then the SLO's burn), though the client still gets it. 0: off.
	SlowAfter time.Duration
	// Timeout bounds each side's answer, 1ms to 1m. Default 10s.
	Timeout time.Duration
	Client  *http.Client
	Logger  *slog.Logger
	// OnRollback, when set, is called once, with the reason.
	OnRollback func(reason string)
}

// ProxyStatus is the full canary's state (GET /canary/status).
type ProxyStatus struct {
	Share           float64      `json:"share"`
	RolledBack      bool         `json:"rolled_back"`
	Reason          string       `json:"reason,omitempty"`
	Requests        int64        `json:"requests"`
	ByCandidate     int64        `json:"answered_by_candidate"`
	Divergences     int64        `json:"divergences"`
	CandidateErrors int64        `json:"candidate_errors"`
	Examples        []Divergence `json:"examples,omitempty"`
}

// Proxy is the full canary's HTTP handler.
type Proxy struct {
	cfg Config
	pc  ProxyConfig

	mu     sync.Mutex
	rng    *rand.Rand
	st     ProxyStatus
	recent []bool // the candidate's last answers: true for an error
}

// maxProxyBody bounds a proxied request's body.
const maxProxyBody = 1 << 20

// NewProxy checks cfg and returns the proxy.
func NewProxy(pc ProxyConfig) (*Proxy, error) {
	if pc.MaxDivergences == 0 {
		pc.MaxDivergences = 1
	}
	if pc.MaxErrorRate == 0 {
		pc.MaxErrorRate = 0.01
	}
	if pc.Window == 0 {
		pc.Window = 200
	}
	if pc.Logger == nil {
		pc.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case pc.MaxDivergences < 1 || pc.MaxDivergences > 1_000_000:
		return nil, fmt.Errorf("canary: proxy: max divergences %d out of range 1..1000000", pc.MaxDivergences)
	case pc.MaxErrorRate < 0 || pc.MaxErrorRate > 1:
		return nil, fmt.Errorf("canary: proxy: max error rate %v out of range 0..1", pc.MaxErrorRate)
	case pc.Window < 1 || pc.Window > 1_000_000:
		return nil, fmt.Errorf("canary: proxy: window %d out of range 1..1000000", pc.Window)
	}
	cfg := Config{Baseline: pc.Baseline, Candidate: pc.Candidate, Share: pc.Share, Timeout: pc.Timeout, Client: pc.Client, Concurrency: 64}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	return &Proxy{cfg: cfg, pc: pc, rng: rand.New(rand.NewPCG(pc.Seed, 0xf011)), st: ProxyStatus{Share: cfg.Share}}, nil
}

// Status returns the canary's state.
func (p *Proxy) Status() ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Examples = append([]Divergence(nil), p.st.Examples...)
	return st
}

// Rollback sends every request to the baseline from now on.
func (p *Proxy) Rollback(reason string) {
	p.mu.Lock()
	first := !p.st.RolledBack
	if first {
		p.st.RolledBack, p.st.Reason, p.st.Share = true, reason, 0
	}
	p.mu.Unlock()
	if first {
		p.pc.Logger.Warn("canary: rolled back", "reason", reason)
		if p.pc.OnRollback != nil {
			p.pc.OnRollback(reason)
		}
	}
}

// ServeHTTP answers GET /canary/status itself and proxies the rest.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/canary/status" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Status())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProxyBody))
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"type":"validation_error","code":"body_too_large","detail":"request body over %d bytes"}`, maxProxyBody), http.StatusRequestEntityTooLarge)
		return
	}
	req := Request{Method: r.Method, Path: r.URL.RequestURI(), Headers: map[string]string{}, Body: body}
	for k := range r.Header {
		req.Headers[k] = r.Header.Get(k)
	}
	p.mu.Lock()
	p.st.Requests++
	canaried := !p.st.RolledBack && req.Kind() != "" && req.Validate() == nil && p.rng.Float64() < p.st.Share
	p.mu.Unlock()
	if !canaried {
		p.forward(w, r.Context(), p.cfg.Baseline, req)
		return
	}
	delete(req.Headers, "If-None-Match") // both answer in full, to be compared
	var a, b proxied
	var wg sync.WaitGroup
	wg.Go(func() { a = p.send(r.Context(), p.cfg.Baseline, req) })
	var took time.Duration
	wg.Go(func() {
		start := time.Now()
		b = p.send(r.Context(), p.cfg.Candidate, forCandidate(p.cfg, req))
		took = time.Since(start)
	})
	wg.Wait()
	failed := b.err != nil || b.status >= 500
	slow := p.pc.SlowAfter > 0 && took > p.pc.SlowAfter
	var d *Divergence
	if !failed && a.err == nil && a.status < 500 {
		d = &Divergence{Request: req, BaselineStatus: a.status, CandidateStatus: b.status}
		switch {
		case a.status != b.status:
			d.Diffs = []string{fmt.Sprintf("status %d != %d", a.status, b.status)}
		case a.status != http.StatusOK:
		case req.Kind() == "definitions":
			d.Diffs = compareDefinitions(a.body, b.body)
		default:
			d.Diffs = compareFlags(a.body, b.body)
		}
		if len(d.Diffs) == 0 {
			d = nil
		}
	}
	reason := p.record(failed, failed || slow, d)
	switch {
	case failed: // the client gets the baseline's answer
		a.write(w)
	default: // live traffic answered by the candidate
		p.mu.Lock()
		p.st.ByCandidate++
		p.mu.Unlock()
		b.write(w)
	}
	if reason != "" {
		p.Rollback(reason)
	}
}

// record counts one canaried answer and returns why to roll back, if so.
func (p *Proxy) record(failed, bad bool, d *Divergence) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recent = append(p.recent, bad)
	if len(p.recent) > p.pc.Window {
		p.recent = p.recent[len(p.recent)-p.pc.Window:]
	}
	if failed {
		p.st.CandidateErrors++
	}
	if d != nil {
		p.st.Divergences++
		if len(p.st.Examples) < 20 {
			p.st.Examples = append(p.st.Examples, *d)
		}
		if p.st.Divergences >= int64(p.pc.MaxDivergences) {
			return fmt.Sprintf("%d divergences (first: %s %s: %s)", p.st.Divergences, p.st.Examples[0].Request.Method,
				p.st.Examples[0].Request.Path, strings.Join(p.st.Examples[0].Diffs, "; "))
		}
	}
	if len(p.recent) == p.pc.Window {
		bad := 0
		for _, f := range p.recent {
			if f {
				bad++
			}
		}
		if rate := float64(bad) / float64(p.pc.Window); rate > p.pc.MaxErrorRate {
			return fmt.Sprintf("candidate bad rate (failed or slow) %.4f over its last %d answers, more than %.4f", rate, p.pc.Window, p.pc.MaxErrorRate)
		}
	}
	return ""
}

type proxied struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (x proxied) write(w http.ResponseWriter) {
	if x.err != nil {
		http.Error(w, `{"type":"server_error","code":"upstream_unavailable","detail":"no answer from the node"}`, http.StatusBadGateway)
		return
	}
	for k, v := range x.header {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(x.status)
	_, _ = w.Write(x.body)
}

var hopByHop = map[string]bool{"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Content-Length": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Proxy-Authenticate": true, "Proxy-Authorization": true}

func (p *Proxy) forward(w http.ResponseWriter, ctx context.Context, t Target, req Request) {
	p.send(ctx, t, req).write(w)
}

func (p *Proxy) send(ctx context.Context, t Target, req Request) proxied {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, strings.TrimSuffix(t.URL, "/")+req.Path, body)
	if err != nil {
		return proxied{err: err}
	}
	for k, v := range req.Headers {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			hr.Header.Set(k, v)
		}
	}
	resp, err := p.cfg.Client.Do(hr)
	if err != nil {
		return proxied{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return proxied{err: err}
	}
	return proxied{status: resp.StatusCode, header: resp.Header, body: b}
}
