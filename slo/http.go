package slo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/store"
)

//go:embed page
var pageFS embed.FS

var statusTmpl = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ms":  func(n Num) string { return fmtNum(n, "%.3f", 1) },
	"pct": func(n Num) string { return fmtNum(n, "%.4f", 100) },
	"f2":  func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"num": func(f float64) Num { return Num(f) },
	"figs": func(s SeriesReport) []Figures {
		f := []Figures{s.Current, s.Hour, s.Day, s.Month}
		if s.Objective.Window != s.Month.Window {
			f = append(f, s.Objective)
		}
		return f
	},
}).ParseFS(pageFS, "page/status.html"))

func fmtNum(n Num, format string, scale float64) string {
	if math.IsNaN(float64(n)) {
		return "–"
	}
	return fmt.Sprintf(format, float64(n)*scale)
}

// HandlerConfig configures the status page.
type HandlerConfig struct {
	Store     store.SLOStore
	Objective Objective
	// Refresh, when set, is called before a report is built (the node's
	// Sampler.Flush: the page then includes this node's last seconds).
	Refresh func(context.Context) error
	// Vendor holds uPlot-1.6.32.iife.min.js and uPlot-1.6.32.min.css
	// (web.Vendor); nil draws no charts.
	Vendor fs.FS
	// CacheFor is how long a report is reused: the page is public, so
	// however often it is asked for, the store is read at most once per
	// CacheFor. 0 to 1m; default 2s.
	CacheFor time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Handler serves the public status page: GET /status (HTML), GET
// /status.json (the same report) and /status/static/ (its script and
// the vendored chart library). It needs no key and reads no input but
// the path.
type Handler struct {
	cfg HandlerConfig
	mux *http.ServeMux

	mu    sync.Mutex
	rep   *Report
	built time.Time
}

// NewHandler checks cfg and returns the status page's handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("slo: status: Store is required")
	}
	if err := cfg.Objective.Validate(); err != nil {
		return nil, err
	}
	if cfg.CacheFor == 0 {
		cfg.CacheFor = 2 * time.Second
	}
	if cfg.CacheFor < 0 || cfg.CacheFor > time.Minute {
		return nil, fmt.Errorf("slo: status: CacheFor %s out of range 0..1m", cfg.CacheFor)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	own, _ := fs.Sub(pageFS, "page")
	h.mux.HandleFunc("GET /status", h.page)
	h.mux.HandleFunc("GET /status.json", h.json)
	h.mux.Handle("GET /status/static/", http.StripPrefix("/status/static/", http.FileServerFS(own)))
	if cfg.Vendor != nil {
		h.mux.Handle("GET /status/vendor/", http.StripPrefix("/status/vendor/", http.FileServerFS(cfg.Vendor)))
	}
	return h, nil
}

// Routes are the patterns to mount on the node's HTTP listener.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{"/status": h, "/status.json": h, "/status/": h}
}

// ServeHTTP serves the page, its JSON and its assets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.mux.ServeHTTP(w, r)
}

// report builds the report, or reuses one younger than CacheFor.
func (h *Handler) report(ctx context.Context) (*Report, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	if h.rep != nil && now.Sub(h.built) < h.cfg.CacheFor {
		return h.rep, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if h.cfg.Refresh != nil {
		if err := h.cfg.Refresh(ctx); err != nil {
			h.cfg.Logger.Warn("slo: status: refresh failed", "err", err)
		}
	}
	rep, err := Build(ctx, h.cfg.Store, h.cfg.Objective, now)
	if err != nil {
		return nil, err
	}
	h.rep, h.built = rep, now
	return rep, nil
}

func (h *Handler) json(w http.ResponseWriter, r *http.Request) {
	rep, err := h.report(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(rep)
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	rep, err := h.report(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if err := statusTmpl.Execute(w, rep); err != nil {
		h.cfg.Logger.Warn("slo: status page", "err", err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.cfg.Logger.Warn("slo: status: report failed", "err", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]string{"type": "server_error", "code": "status_unavailable",
		"detail": "the status report could not be read from the store"})
}
