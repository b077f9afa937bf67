package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/vexil-dev/vexil/cors"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store"
)

// Paths are the capture paths PostHog's SDKs post to, each served with and
// without its trailing slash.
var Paths = []string{"/e/", "/i/v0/e/", "/batch/", "/capture/", "/track/", "/engage/"}

// Project is what a project token resolves to.
type Project struct {
	Team int64
	// GroupTypes names the team's group types by index.
	GroupTypes map[int]string
}

// Mappings reads which person a distinct id belongs to (store.Store).
type Mappings interface {
	GetMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error)
}

// Config configures a Handler. Zero values take the documented defaults.
type Config struct {
	// Projects resolves a project token; its errors are *errcode.Error
	// (evalsvc.Service.ProjectForToken). Required.
	Projects func(ctx context.Context, token string) (Project, error)
	// Mappings gives the person of a known distinct id. Required.
	Mappings Mappings
	// JetStream publishes the ingest messages. Required.
	JetStream jetstream.JetStream
	// Conn, when set, is checked before a request is read: while it is not
	// connected requests are refused at once (503 unavailable).
	Conn *nats.Conn
	// Namespace of the ingest subjects. Default namespace.Default.
	Namespace namespace.Name
	// MaxBodyBytes bounds the body as sent. Default 2 MiB.
	MaxBodyBytes int
	// MaxDecodedBytes bounds the body after base64 and gzip. Default 8 MiB.
	MaxDecodedBytes int
	// MaxEvents bounds the events of one request (posthog-js and the
	// server SDKs send at most 100 by default). Default 1000.
	MaxEvents int
	// Limits bound each ingest message; an event over them refuses the
	// request (400 invalid_payload naming the event).
	Limits ingest.Limits
	// TeamRate and TeamBurst bound each team's events per second. Default
	// 2,000/s with a burst of 20,000.
	TeamRate  float64
	TeamBurst int
	// MaxInFlight bounds the requests being handled at once; past it a
	// request is refused (503 overloaded). Default 64.
	MaxInFlight int
	// LookupTimeout bounds the token lookup and each read of a request's
	// person mappings. Default 2s.
	LookupTimeout time.Duration
	// PublishTimeout bounds the wait for the JetStream acks. Default 5s.
	PublishTimeout time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
	// FlagCalls, when set, receives the local evaluations a request's
	// $feature_flag_called events report (flagCalls), once its events are
	// acknowledged: usage statistics count them as the flags' local
	// evaluations.
	FlagCalls func(team int64, calls []FlagCall)
}

func (c *Config) withDefaults() error {
	if c.Projects == nil || c.Mappings == nil || c.JetStream == nil {
		return errors.New("capture: Projects, Mappings and JetStream are required")
	}
	if c.MaxBodyBytes < 0 || c.MaxDecodedBytes < 0 || c.MaxEvents < 0 || c.TeamRate < 0 || c.TeamBurst < 0 ||
		c.MaxInFlight < 0 || c.LookupTimeout < 0 || c.PublishTimeout < 0 {
		return errors.New("capture: negative limit")
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	c.Limits = c.Limits.WithDefaults()
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBodyBytes, 2<<20)
	def(&c.MaxDecodedBytes, 8<<20)
	def(&c.MaxEvents, 1000)
	def(&c.TeamBurst, 20000)
	def(&c.MaxInFlight, 64)
	if c.TeamRate == 0 {
		c.TeamRate = 2000
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = 2 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.Namespace.Validate()
}

// Handler serves the capture endpoints.
type Handler struct {
	cfg   Config
	slots chan struct{}
	m     *metrics

	mu    sync.Mutex
	rates map[int64]*rate.Limiter
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, slots: make(chan struct{}, cfg.MaxInFlight), m: newMetrics(cfg.Registry), rates: map[int64]*rate.Limiter{}}, nil
}

// Routes returns the handler by ServeMux pattern: every path of Paths,
// with and without its trailing slash, and posthog-js's remote config
// (/array/<token>/config), answering browsers of any origin.
func (h *Handler) Routes() map[string]http.Handler {
	out := map[string]http.Handler{}
	hh := cors.Public(h)
	for _, p := range Paths {
		out[p] = hh
		out[p[:len(p)-1]] = hh
	}
	out["/array/"] = cors.Public(http.HandlerFunc(h.serveRemoteConfig))
	return out
}

// Error codes of the capture endpoints, in the "code" of the JSON error
// body; the HTTP status is errcode's for the errcode.Code.
const (
	CodeInvalidPayload = "invalid_payload"
	CodeNoToken        = "no_token"
	CodeTooLarge       = "request_too_large"
	CodeTooManyEvents  = "too_many_events"
	CodeRateLimited    = "rate_limited"
	CodeOverloaded     = "overloaded"
	CodeUnavailable    = "unavailable"
	CodeCompression    = "unsupported_compression"
	CodeMethod         = "method_not_allowed"
)

func capErr(code errcode.Code, pcode, field, format string, args ...any) *errcode.Error {
	return errcode.Field(code, field, format, args...).With("posthog_code", pcode)
}

// ServeHTTP handles one request of any capture path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Now()
	status, n := h.serve(w, r)
	h.m.observe(status, n, h.cfg.Now().Sub(start))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (status, events int) {
	switch r.Method {
	case http.MethodPost, http.MethodGet:
	case http.MethodOptions, http.MethodHead:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, 0
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		return writeErr(w, capErr(errcode.InvalidArgument, CodeMethod, "", "use POST")), 0
	}
	// The cheap refusals come before the body is read.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return writeErr(w, capErr(errcode.Overloaded, CodeOverloaded, "", "too many capture requests in flight; retry after the Retry-After delay").
			With(errcode.MetaRetryAfter, "1")), 0
	}
	if h.cfg.Conn != nil && !h.cfg.Conn.IsConnected() {
		return writeErr(w, unavailable("the ingest stream (NATS) is not reachable")), 0
	}
	if r.ContentLength > int64(h.cfg.MaxBodyBytes) {
		return writeErr(w, tooLarge("body", h.cfg.MaxBodyBytes)), 0
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.cfg.MaxBodyBytes)+1))
	if err != nil {
		return writeErr(w, capErr(errcode.InvalidArgument, CodeInvalidPayload, "body", "cannot read the body")), 0
	}
	if len(body) > h.cfg.MaxBodyBytes {
		return writeErr(w, tooLarge("body", h.cfg.MaxBodyBytes)), 0
	}
	batch, err := h.decode(r, body)
	if err != nil {
		return writeErr(w, err), 0
	}
	ctx := r.Context()
	pctx, cancel := context.WithTimeout(ctx, h.cfg.LookupTimeout)
	project, err := h.cfg.Projects(pctx, batch.token)
	cancel()
	if err != nil {
		return writeErr(w, err), len(batch.events)
	}
	if err := h.allow(project.Team, len(batch.events)); err != nil {
		return writeErr(w, err), len(batch.events)
	}
	msgs, err := h.convert(ctx, project, batch)
	if err != nil {
		return writeErr(w, err), len(batch.events)
	}
	if err := h.publish(ctx, msgs); err != nil {
		h.cfg.Logger.Warn("capture: publish failed", "team", project.Team, "messages", len(msgs), "err", err)
		return writeErr(w, unavailable("the ingest stream did not acknowledge the events")), len(batch.events)
	}
	h.m.published.Add(float64(len(msgs)))
	if h.cfg.FlagCalls != nil && !batch.engage {
		if calls := flagCalls(batch); len(calls) > 0 {
			h.cfg.FlagCalls(project.Team, calls)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":1}`))
	return http.StatusOK, len(batch.events)
}

func unavailable(msg string) *errcode.Error {
	return capErr(errcode.Unavailable, CodeUnavailable, "", "%s; retry after the Retry-After delay", msg).With(errcode.MetaRetryAfter, "5")
}

func tooLarge(field string, limit int) *errcode.Error {
	return capErr(errcode.TooLarge, CodeTooLarge, field, "the %s is over %d bytes", field, limit).With("limit", strconv.Itoa(limit))
}

// allow takes n events from the team's rate.
func (h *Handler) allow(team int64, n int) error {
	h.mu.Lock()
	l := h.rates[team]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(h.cfg.TeamRate), h.cfg.TeamBurst)
		h.rates[team] = l
	}
	h.mu.Unlock()
	res := l.ReserveN(h.cfg.Now(), n)
	if !res.OK() {
		return capErr(errcode.RateLimited, CodeRateLimited, "", "more events at once than the project's burst of %d", h.cfg.TeamBurst).
			With(errcode.MetaRetryAfter, "1")
	}
	if d := res.DelayFrom(h.cfg.Now()); d > 0 {
		res.CancelAt(h.cfg.Now())
		secs := int(d/time.Second) + 1
		return capErr(errcode.RateLimited, CodeRateLimited, "", "the project is over its event rate of %g per second", h.cfg.TeamRate).
			With(errcode.MetaRetryAfter, strconv.Itoa(secs))
	}
	return nil
}

// apiError is the JSON error body, in PostHog's shape (as /flags).
type apiError struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Attr   any    `json:"attr"`
}

func writeErr(w http.ResponseWriter, err error) int {
	e := errcode.From(err)
	if ee, ok := errors.AsType[*errcode.Error](err); ok {
		e = ee
	}
	status := e.Code.HTTPStatus()
	if ra := e.Meta[errcode.MetaRetryAfter]; ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	code := e.Meta["posthog_code"]
	if code == "" {
		code = string(e.Code)
	}
	typ := "validation_error"
	switch {
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status >= 500:
		typ = "server_error"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := apiError{Type: typ, Code: code, Detail: e.Message}
	if e.Field != "" {
		body.Attr = e.Field
	}
	_ = json.NewEncoder(w).Encode(body)
	return status
}

// publish sends msgs and waits for every JetStream ack.
func (h *Handler) publish(ctx context.Context, msgs []*nats.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := h.cfg.JetStream.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("no JetStream ack: %w", ctx.Err())
		}
	}
	return nil
}
