package evalsvc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/cors"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/usage"
)

// Handler returns the HTTP handler of the PostHog-compatible endpoints:
// /flags, /decide (with or without a trailing slash), /flags/definitions
// and /api/feature_flag/local_evaluation; and OFREP's evaluation endpoints
// (ofrep.go). /flags and /decide answer browsers of any origin
// (cors.Public), as PostHog's do: posthog-js calls them from the
// customer's site with the project token.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	flagsH := cors.Public(s.instrument("flags", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveFlags(w, r, false) })))
	decideH := cors.Public(s.instrument("decide", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveFlags(w, r, true) })))
	defsH := s.instrument("definitions", http.HandlerFunc(s.serveDefinitions))
	mux.Handle("/flags", flagsH)
	mux.Handle("/flags/", flagsH)
	mux.Handle("/decide", decideH)
	mux.Handle("/decide/", decideH)
	mux.Handle("/flags/definitions", defsH)
	mux.Handle("/flags/definitions/", defsH)
	mux.Handle("/api/feature_flag/local_evaluation", defsH)
	mux.Handle("/api/feature_flag/local_evaluation/", defsH)
	ofrepH := cors.Public(s.instrument("ofrep", http.HandlerFunc(s.serveOFREP))) // browsers: ofrep-web-provider
	mux.Handle(ofrepPrefix, ofrepH)
	mux.Handle(ofrepPrefix+"/", ofrepH)
	return mux
}

// statusRecorder keeps the status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Service) instrument(endpoint string, h http.Handler) http.Handler {
	// The endpoint's series, looked up once rather than per request (each
	// lookup hashes the labels under a lock); the 2xx counter is made at
	// the first success, so an endpoint never called shows no series.
	latency := s.m.latency.WithLabelValues(endpoint)
	ok := sync.OnceValue(func() prometheus.Counter { return s.m.requests.WithLabelValues(endpoint, "2xx") })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Pooled: the handlers below keep no reference to the writer once
		// they return.
		rec := recorderPool.Get().(*statusRecorder)
		rec.ResponseWriter, rec.status = w, 200
		h.ServeHTTP(rec, r)
		status := rec.status
		rec.ResponseWriter = nil
		recorderPool.Put(rec)
		latency.Observe(time.Since(start).Seconds())
		if status/100 == 2 {
			ok().Inc()
		} else {
			s.countRequest(endpoint, status)
		}
	})
}

// observe records one request of any transport: its latency since start
// and its status class (a gRPC call counts as the HTTP status its error
// maps to in package errcode).
func (s *Service) observe(endpoint string, start time.Time, status int) {
	s.m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	s.countRequest(endpoint, status)
}

// countRequest counts a finished request by endpoint and status class.
func (s *Service) countRequest(endpoint string, status int) {
	s.m.requests.WithLabelValues(endpoint, statusClass(status)).Inc()
}

var statusClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// statusClass is the "2xx"-style label of an HTTP status, without
// formatting a string per request.
func statusClass(status int) string {
	if c := status / 100; c >= 0 && c < len(statusClasses) {
		return statusClasses[c]
	}
	return "other"
}

// apiError is the JSON error body, in PostHog's shape (posthog-python
// shows "detail").
type apiError struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Attr   any    `json:"attr"`
}

// writeFailure answers an evaluation endpoint's failure from the table of
// failures: errcode's HTTP status, PostHog's type and code.
func writeFailure(w http.ResponseWriter, err error) {
	e := classify(err)
	typ, code := postHogType(e)
	if ra := e.Meta[errcode.MetaRetryAfter]; ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	writeError(w, e.Code.HTTPStatus(), typ, code, e.Message, e.Field)
}

func writeError(w http.ResponseWriter, status int, typ, code, detail, attr string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := apiError{Type: typ, Code: code, Detail: detail}
	if attr != "" {
		e.Attr = attr
	}
	_ = json.NewEncoder(w).Encode(e)
}

func (s *Service) serveFlags(w http.ResponseWriter, r *http.Request, decide bool) {
	switch r.Method {
	case http.MethodPost, http.MethodGet:
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, POST, OPTIONS, HEAD")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS, HEAD")
		writeError(w, http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use POST", "")
		return
	}
	if r.Method == http.MethodGet {
		shape, config := wire.ChooseShape(decide, wire.Query(r.URL.RawQuery))
		writeResponse(w, &wire.Response{RequestID: requestUUID(r.Header.Get(requestIDHeader)), EvaluatedAtMillis: s.cfg.Now().UnixMilli(), Config: config}, shape)
		return
	}
	// The cheap refusals (memory pressure, a declared body over the limit)
	// and admission come first, before the query is parsed and the body
	// read: an overload refusal is pre-built bytes (see refusal).
	if err := s.checkRequest(r); err != nil {
		writeFailure(w, err)
		return
	}
	ticket, err := s.admitHTTP(admission.Evaluate, r)
	if err != nil {
		if !s.writeRefused(w, err) {
			writeFailure(w, err)
		}
		return
	}
	defer ticket.Done()
	q := wire.Query(r.URL.RawQuery)
	shape, config := wire.ChooseShape(decide, q)
	resp := &wire.Response{RequestID: requestUUID(r.Header.Get(requestIDHeader)), EvaluatedAtMillis: s.cfg.Now().UnixMilli(), Config: config}

	bp := bodyPool.Get().(*[]byte)
	defer putBody(bp)
	body, err := readBody(r.Body, (*bp)[:0], s.cfg.MaxBodyBytes+1)
	*bp = body[:0]
	if err != nil {
		writeFailure(w, fail(wire.CodeBadBody, "body", "cannot read the body"))
		return
	}
	if len(body) > s.cfg.MaxBodyBytes {
		writeFailure(w, tooLarge(s.cfg.MaxBodyBytes))
		return
	}
	sc := getScratch()
	defer putScratch(sc)
	req := &sc.req
	if err := wire.DecodeFlagsRequestInto(req, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), q, body, s.cfg.limits()); err != nil {
		if _, ok := errors.AsType[*wire.RequestError](err); !ok {
			err = fail(wire.CodeBadBody, "", err.Error())
		}
		writeFailure(w, err)
		return
	}
	ctx := r.Context()
	ts, err := s.requestTeam(ctx, req.Token)
	if err != nil {
		writeFailure(w, err)
		return
	}
	if err := s.allowTeam(admission.Evaluate, ts.team.ID); err != nil {
		// As PostHog answers a project over its flag quota: 200, no flags,
		// quotaLimited ["feature_flags"] (SDKs then read every flag as
		// unset, and do not retry).
		resp.QuotaLimited = true
		writeResponse(w, resp, shape)
		return
	}
	if !req.DisableFlags {
		sc.debug = r.Header.Get(DebugHeader) != ""
		sc.forceLive = r.Header.Get(EvalHeader) == "live"
		ep := usage.EndpointFlags
		if decide {
			ep = usage.EndpointDecide
		}
		ev := s.evaluate(ctx, ts, req, sc, ep)
		resp.Records = ev.records
		resp.ErrorsWhileComputing = ev.errors
		if sc.debug {
			w.Header().Set(SourcesHeader, sourcesHeader(ev))
		}
	}
	sc.buf = resp.AppendJSON(sc.buf[:0], shape)
	admission.CoalesceResponse(ctx, len(sc.buf)) // one write system call, not two
	writeBody(w, sc.buf)
}

// checkRequest refuses a /flags body before any of it is read: under
// memory pressure (503 memory_pressure), or when its Content-Length is
// over MaxBodyBytes (413 body_too_large).
func (s *Service) checkRequest(r *http.Request) error {
	if err := s.checkMemory(); err != nil {
		return err
	}
	if r.ContentLength > int64(s.cfg.MaxBodyBytes) {
		return tooLarge(s.cfg.MaxBodyBytes)
	}
	return nil
}

// DebugHeader, on a /flags request, asks for SourcesHeader on the
// response: which path answered each flag.
// EvalHeader set to "live" evaluates every flag live, ignoring stored
// results: canary comparisons and benchmarks of both paths on one server.
const (
	DebugHeader   = "X-Vexil-Debug"
	SourcesHeader = "X-Vexil-Flag-Sources"
	EvalHeader    = "X-Vexil-Eval"
)

// sourcesHeader lists key=source for every record, comma-separated
// (stored, or live_<why>: see results.Source).
func sourcesHeader(ev evaluation) string {
	var b strings.Builder
	for i, rec := range ev.records {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(url.QueryEscape(rec.Key))
		b.WriteByte('=')
		b.WriteString(ev.sources[i].String())
	}
	return b.String()
}

func writeResponse(w http.ResponseWriter, resp *wire.Response, shape wire.Shape) {
	writeBody(w, resp.AppendJSON(nil, shape))
}

// jsonContentType is the Content-Type value of every answer, shared
// rather than allocated per response (net/http never modifies it).
var jsonContentType = []string{"application/json"}

// bodyPool holds request body buffers: the decoded request copies what it
// keeps (its strings and values), so a body's bytes are free once the
// request is decoded, and a buffer per request was a tenth of a /flags
// request's garbage.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

func putBody(bp *[]byte) {
	if cap(*bp) <= 64<<10 { // an outsized body's buffer goes to the collector
		bodyPool.Put(bp)
	}
}

// readBody appends what r holds to b, at most limit bytes in all (a body
// past the limit is seen as limit bytes: the caller refuses it).
func readBody(r io.Reader, b []byte, limit int) ([]byte, error) {
	for len(b) < limit {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(512, cap(b)), limit-len(b)))
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// writeBody writes a whole answer in one Write, its length declared: the
// keys are already canonical, so the header map is set directly.
func writeBody(w http.ResponseWriter, buf []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = contentLength(len(buf))
	_, _ = w.Write(buf)
}

// contentLengths holds the Content-Length values of recent answer sizes,
// by size modulo its length: a team's answers vary in size by a few
// hundred bytes at most, so most answers find theirs, shared as
// jsonContentType is, rather than allocate a value per response.
var contentLengths [512]atomic.Pointer[lengthValue]

type lengthValue struct {
	n int
	v []string
}

// contentLength returns the Content-Length header value of n bytes.
func contentLength(n int) []string {
	slot := &contentLengths[uint(n)%uint(len(contentLengths))]
	if c := slot.Load(); c != nil && c.n == n {
		return c.v
	}
	c := &lengthValue{n: n, v: []string{strconv.Itoa(n)}}
	slot.Store(c)
	return c.v
}

// requestIDHeader is X-Request-ID as net/http keys it: Header.Get of a
// name not in that form allocates its canonical form on every call.
const requestIDHeader = "X-Request-Id"

// requestID reuses the caller's request id (X-Request-ID, x-request-id
// metadata) when it holds a UUID.
func requestID(h string) string { return requestUUID(h).String() }

// requestUUID is requestID before its formatting: the caller's UUID, or a
// random (version 4) one, made without allocating (uuid.New reads
// crypto/rand through an io.Reader, which moves the UUID to the heap).
func requestUUID(h string) uuid.UUID {
	if h != "" {
		if u, err := uuid.Parse(h); err == nil {
			return u
		}
	}
	var u uuid.UUID
	_, _ = rand.Read(u[:])  // never fails: it crashes the program instead
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

// Scopes that grant the local-evaluation definitions to a personal key
// ("*" grants every scope, as in the management API).
var definitionScopes = []string{"flag:read", "feature_flag:read", "*"}

func (s *Service) serveDefinitions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "use GET", "")
		return
	}
	ticket, err := s.admitHTTP(admission.Poll, r)
	if err != nil {
		if !s.writeRefused(w, err) {
			writeFailure(w, err)
		}
		return
	}
	defer ticket.Done()
	ctx := r.Context()
	q := r.URL.Query()
	team, err := s.definitionsTeam(ctx, bearer(r.Header.Get("Authorization")), q.Get("token"))
	if err != nil {
		writeFailure(w, err)
		return
	}
	// Over quota: 429 with Retry-After, which the SDKs log and retry at
	// their next poll, keeping their definitions (PostHog's 402 for a
	// billing limit would make them drop every definition).
	if err := s.allowTeam(admission.Poll, team); err != nil {
		writeFailure(w, err)
		return
	}
	ts, err := s.definitionsState(ctx, team)
	if err != nil {
		writeFailure(w, err)
		return
	}
	s.cfg.Usage.Poll(team)
	payload := ts.payloadNoCohorts
	if q.Has("send_cohorts") && !strings.EqualFold(q.Get("send_cohorts"), "false") {
		payload = ts.payload
	}
	w.Header().Set("ETag", payload.ETag)
	if wire.ETagMatches(r.Header.Get("If-None-Match"), payload.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(payload.Body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(payload.Body)
}

// definitionsTeam authenticates a reader of the local-evaluation
// definitions, for GET /flags/definitions and WatchDefinitions alike: a
// secure key, or a personal key with flag:read and, when it reaches several
// projects, the project token. It returns the team the key may read.
func (s *Service) definitionsTeam(ctx context.Context, secret, token string) (int64, error) {
	if secret == "" {
		return 0, fail(codeNotAuthenticated, "", "")
	}
	key, err := s.lookupKey(ctx, secret)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return 0, fail(codeAuthFailed, "", "").Wrap(err)
		}
		return 0, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	tokenTeam := int64(0)
	if token != "" {
		t, err := s.teamForToken(ctx, token)
		switch {
		case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrWrongKeyKind):
			return 0, fail(codeInvalidToken, "token", "").Wrap(err)
		case err != nil:
			return 0, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
		}
		tokenTeam = t
	}
	switch key.Kind {
	case catalog.KeySecure:
		if len(key.Teams) != 1 || tokenTeam != 0 && tokenTeam != key.Teams[0] {
			return 0, fail(codePermissionDenied, "", "the secure key does not belong to this project")
		}
		return key.Teams[0], nil
	case catalog.KeyPersonal:
		if !slices.ContainsFunc(definitionScopes, func(sc string) bool { return slices.Contains(key.Scopes, sc) }) {
			return 0, fail(codePermissionDenied, "", "the personal API key lacks the flag:read scope")
		}
		switch {
		case tokenTeam == 0 && len(key.Teams) == 1:
			return key.Teams[0], nil
		case tokenTeam == 0:
			return 0, fail(codeTokenRequired, "token", "")
		case len(key.Teams) == 0 || slices.Contains(key.Teams, tokenTeam):
			return tokenTeam, nil
		}
		return 0, fail(codePermissionDenied, "", "the personal API key does not reach this project")
	}
	return 0, fail(codeAuthFailed, "", "")
}

// definitionsState returns the HyperCache entry of a team whose
// definitions a reader asks for.
func (s *Service) definitionsState(ctx context.Context, team int64) (*teamState, error) {
	ts, err := s.cache.get(ctx, team)
	switch {
	case errors.Is(err, errTeamGone):
		return nil, fail(codeNotFound, "", "").Wrap(err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	return ts, nil
}

func bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// admitHTTP is admit for an HTTP request, with its age (admission.Age:
// how long ago the kernel received it, when the server's listener is
// stamped), so that requests that queued in front of the node close the
// rate gate and, while it is closed, are refused.
func (s *Service) admitHTTP(cl admission.Class, r *http.Request) (admission.Ticket, error) {
	s.arrivals.Add(1)
	return s.cfg.Admission.AcquireAged(cl, admission.Age(r.Context(), time.Now()))
}
