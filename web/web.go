package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where every page and asset of the UI lives; "/" redirects to it.
const Prefix = "/ui/"

// Config configures a Handler.
type Config struct {
	// Client is the management API the UI calls for everything it shows
	// and changes, with the signed-in key: the same service, interceptor,
	// scopes and limits as the REST API. Required.
	Client adminv1.AdminServiceClient
	// Identify resolves a personal key's secret (admin.Service.Identify).
	// Required.
	Identify func(ctx context.Context, secret string) (admin.KeyInfo, error)
	// Usage gives per-flag usage statistics; nil shows "no usage data yet".
	Usage UsageSource
	// SessionTTL bounds a session's life (default 12h, at most 7 days).
	SessionTTL time.Duration
	// LinkTTL bounds a login link's life (default 5 minutes, at most 1h).
	LinkTTL time.Duration
	// MaxSessions bounds the sessions and login links held (default 10,000
	// each); past it, sign-in is refused until some expire.
	MaxSessions int
	// MaxUploadBytes bounds an uploaded CSV (default 4 MiB).
	MaxUploadBytes int64
	// SecureCookie marks the session cookie Secure (behind TLS).
	SecureCookie bool
	// Now defaults to time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Limits of a form, so that one request costs a bounded amount.
const (
	maxConditions = 100
	maxFilters    = 50
	maxVariants   = 50
	maxOverrides  = 50
	maxFieldBytes = 64 << 10
	maxFormBytes  = 1 << 20
	maxCSVRows    = 100_000
	maxIDBytes    = 200
)

func (c *Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("web: Client is required")
	case c.Identify == nil:
		return errors.New("web: Identify is required")
	case c.SessionTTL < 0 || c.SessionTTL > 7*24*time.Hour:
		return fmt.Errorf("web: SessionTTL %v out of range 0..168h", c.SessionTTL)
	case c.LinkTTL < 0 || c.LinkTTL > time.Hour:
		return fmt.Errorf("web: LinkTTL %v out of range 0..1h", c.LinkTTL)
	case c.MaxSessions < 0 || c.MaxUploadBytes < 0:
		return errors.New("web: negative limit")
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.LinkTTL == 0 {
		c.LinkTTL = 5 * time.Minute
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10_000
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 4 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Handler serves the web UI.
type Handler struct {
	cfg   Config
	api   adminv1.AdminServiceClient
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	auth  *sessions
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, api: cfg.Client, log: cfg.Logger.With("component", "web"),
		auth: newSessions(cfg.Now, cfg.SessionTTL, cfg.LinkTTL, cfg.MaxSessions)}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

// Routes are the patterns to mount beside the management API
// (admin.ServerConfig.Routes): "/" shows the UI, everything else is under
// Prefix.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /{$}": http.RedirectHandler(Prefix, http.StatusSeeOther),
		Prefix:     h,
	}
}

// ServeHTTP serves the UI's pages and assets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheFor(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/{$}", h.home)
	m.HandleFunc("GET /ui/login", h.loginPage)
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("GET /ui/login/link", h.linkPage)
	m.HandleFunc("POST /ui/login/link", h.linkLogin)
	m.HandleFunc("POST /ui/login-links", h.mintLink)
	m.HandleFunc("POST /ui/logout", h.logout)
	m.HandleFunc("POST /ui/check/regex", h.checkRegex)

	t := func(pattern string, fn pageFunc) { m.Handle(pattern, h.team(fn)) }
	t("GET /ui/t/{team}/{$}", h.flagsList)
	t("GET /ui/t/{team}/flags", h.flagsList)
	t("GET /ui/t/{team}/flags/new", h.flagNew)
	t("POST /ui/t/{team}/flags/new", h.flagSubmit)
	t("GET /ui/t/{team}/flags/{id}", h.flagPage)
	t("GET /ui/t/{team}/flags/{id}/edit", h.flagEdit)
	t("POST /ui/t/{team}/flags/{id}/edit", h.flagSubmit)
	t("POST /ui/t/{team}/flags/{id}/state", h.flagState)
	t("GET /ui/t/{team}/flags/{id}/explain", h.flagExplain)
	t("GET /ui/t/{team}/blast/{job}", h.blastJob)
	t("GET /ui/t/{team}/activity", h.activity)
	t("GET /ui/t/{team}/cohorts", h.cohorts)
	t("POST /ui/t/{team}/cohorts", h.cohortCreate)
	t("GET /ui/t/{team}/cohorts/{id}", h.cohortPage)
	t("POST /ui/t/{team}/cohorts/{id}/members", h.cohortMembers)
	t("GET /ui/t/{team}/early-access", h.earlyAccess)
	t("POST /ui/t/{team}/early-access", h.earlyAccessCreate)
	t("POST /ui/t/{team}/early-access/{id}/stage", h.earlyAccessStage)
	t("GET /ui/t/{team}/keys", h.keys)
	t("POST /ui/t/{team}/keys", h.keyCreate)
	t("POST /ui/t/{team}/keys/{id}/revoke", h.keyRevoke)
	t("GET /ui/t/{team}/settings", h.settings)
	t("POST /ui/t/{team}/settings/group-types", h.groupTypeSet)
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusNotFound, "error", view{Title: "Not found", Data: "There is no such page."})
	})
	h.mux = m
}

func cacheFor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// req is one signed-in request: who, which team, and the context that
// carries the key to the management API.
type req struct {
	r    *http.Request
	ctx  context.Context
	sess *session
	Key  admin.KeyInfo
	CSRF string
	// Team is the team of a /ui/t/{team}/ page (nil elsewhere).
	Team  *adminv1.Team
	Teams []*adminv1.Team
}

// Can reports whether the signed-in key carries scope: pages show write
// controls only then (the service refuses the call anyway).
func (q *req) Can(scope string) bool { return q.Key.Has(scope) }

type pageFunc func(w http.ResponseWriter, q *req)

// signedIn returns the request's session and key, or nil after sending
// the browser to sign in.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) *req {
	s := h.auth.fromRequest(r)
	if s == nil {
		h.toLogin(w, r)
		return nil
	}
	k, err := h.cfg.Identify(r.Context(), s.secret)
	if err != nil {
		// A revoked key ends its sessions.
		h.auth.drop(s.id)
		h.toLogin(w, r)
		return nil
	}
	ctx := metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+s.secret)
	return &req{r: r, ctx: ctx, sess: s, Key: k, CSRF: s.csrf}
}

func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusUnauthorized, "error", view{Title: "Signed out", Data: "Your session ended: sign in again."})
}

// team wraps a page of /ui/t/{team}/: a signed-in key that reaches the
// team, and a valid CSRF token on every write.
func (h *Handler) team(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && !sameOrigin(r) {
			h.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Data: "The request came from another site."})
			return
		}
		q := h.signedIn(w, r)
		if q == nil {
			return
		}
		if r.Method != http.MethodGet {
			if err := h.checkCSRF(r, q.sess); err != nil {
				h.render(w, r, http.StatusForbidden, "error", view{Q: q, Title: "Refused", Data: err.Error()})
				return
			}
		}
		id, err := strconv.ParseInt(r.PathValue("team"), 10, 64)
		if err != nil || id <= 0 {
			h.render(w, r, http.StatusNotFound, "error", view{Q: q, Title: "Not found", Data: "There is no such team."})
			return
		}
		t, err := h.api.GetTeam(q.ctx, &adminv1.GetTeamRequest{TeamId: id})
		if err != nil {
			h.fail(w, q, err)
			return
		}
		q.Team = t.GetTeam()
		if lt, err := h.api.ListTeams(q.ctx, &adminv1.ListTeamsRequest{}); err == nil {
			q.Teams = lt.GetTeams()
		} else {
			q.Teams = []*adminv1.Team{q.Team}
		}
		fn(w, q)
	})
}

// sameOrigin refuses a write whose Origin (sent by browsers on every POST)
// names another host; SameSite=Lax and the CSRF token are the other walls.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	host := strings.TrimPrefix(strings.TrimPrefix(o, "http://"), "https://")
	return host == r.Host
}

// apiError reads the management API's error (a gRPC status with Vexil's
// code, field and metadata).
func apiError(err error) *errcode.Error {
	if st, ok := status.FromError(err); ok {
		return errcode.FromStatus(st)
	}
	return errcode.From(err)
}

// fail renders an error page with the API error's HTTP status: 404 for a
// team or record the key does not reach, 403 for a missing scope.
func (h *Handler) fail(w http.ResponseWriter, q *req, err error) {
	e := apiError(err)
	title := http.StatusText(e.Code.HTTPStatus())
	if e.Code == errcode.Internal {
		h.log.Error("web: management API", "err", err)
	}
	h.render(w, q.r, e.Code.HTTPStatus(), "error", view{Q: q, Title: title, Data: e.Message, Code: string(e.Code)})
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	q := h.signedIn(w, r)
	if q == nil {
		return
	}
	lt, err := h.api.ListTeams(q.ctx, &adminv1.ListTeamsRequest{})
	if err != nil {
		h.fail(w, q, err)
		return
	}
	if len(lt.GetTeams()) == 0 {
		h.render(w, r, http.StatusOK, "error", view{Q: q, Title: "No team", Data: "This key reaches no team yet."})
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%st/%d/flags", Prefix, lt.GetTeams()[0].GetId()), http.StatusSeeOther)
}
