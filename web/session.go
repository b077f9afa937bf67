package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie: HttpOnly (scripts never see it),
// SameSite=Lax (a login link opened from a terminal still signs in; other
// sites' POSTs carry no cookie) and scoped to the UI's path.
const cookieName = "vexil_session"

// session is one signed-in browser. The key's secret stays on the server;
// the browser holds a random id only. Sessions live in this node's memory:
// a restart signs everyone out, and a load balancer in front of several
// nodes needs sticky sessions.
type session struct {
	id      string
	secret  string
	csrf    string
	expires time.Time
}

type link struct {
	secret  string
	expires time.Time
}

// sessions holds the sessions and the unused login links, both bounded.
type sessions struct {
	now          func() time.Time
	ttl, linkTTL time.Duration
	max          int

	mu    sync.Mutex
	byID  map[string]*session
	links map[string]link
}

func newSessions(now func() time.Time, ttl, linkTTL time.Duration, max int) *sessions {
	return &sessions{now: now, ttl: ttl, linkTTL: linkTTL, max: max, byID: map[string]*session{}, links: map[string]link{}}
}

var errFull = errors.New("too many open sessions on this node: try again later")

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(secret string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		now := s.now()
		for id, x := range s.byID {
			if now.After(x.expires) {
				delete(s.byID, id)
			}
		}
		if len(s.byID) >= s.max {
			return nil, errFull
		}
	}
	x := &session{id: randomToken(), secret: secret, csrf: randomToken(), expires: s.now().Add(s.ttl)}
	s.byID[x.id] = x
	return x, nil
}

func (s *sessions) fromRequest(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) > 100 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byID[c.Value]
	if x == nil {
		return nil
	}
	if s.now().After(x.expires) {
		delete(s.byID, x.id)
		return nil
	}
	return x
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// newLink stores a single-use login link for secret.
func (s *sessions) newLink(secret string) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.links) >= s.max {
		for t, l := range s.links {
			if now.After(l.expires) {
				delete(s.links, t)
			}
		}
		if len(s.links) >= s.max {
			return "", time.Time{}, errFull
		}
	}
	t := randomToken()
	exp := now.Add(s.linkTTL)
	s.links[t] = link{secret: secret, expires: exp}
	return t, exp, nil
}

// useLink consumes a login link: it works once, before it expires.
func (s *sessions) useLink(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[token]
	delete(s.links, token)
	if !ok || s.now().After(l.expires) {
		return "", false
	}
	return l.secret, true
}

func (h *Handler) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.cfg.SecureCookie})
}

// checkCSRF requires the session's token in the form field "csrf" or the
// X-CSRF-Token header (htmx requests) of every write.
func (h *Handler) checkCSRF(r *http.Request, s *session) error {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			if err := r.ParseMultipartForm(h.cfg.MaxUploadBytes); err != nil {
				return errors.New("the form could not be read: " + err.Error())
			}
		} else {
			r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				return errors.New("the form could not be read: " + err.Error())
			}
		}
		got = r.PostFormValue("csrf")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return errors.New("the form's security token is missing or stale: reload the page and submit again")
	}
	return nil
}

type loginData struct {
	Next  string
	Error string
	Link  string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", view{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

// safeNext keeps a post-login redirect inside the UI.
func safeNext(n string) string {
	if !strings.HasPrefix(n, Prefix) || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") {
		return Prefix
	}
	return n
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Data: "The request came from another site."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	secret := strings.TrimSpace(r.PostFormValue("key"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(msg string) {
		h.render(w, r, http.StatusUnauthorized, "login", view{Title: "Sign in", Data: loginData{Next: next, Error: msg}})
	}
	if secret == "" {
		fail("Enter a personal API key (phx_...).")
		return
	}
	if len(secret) > 200 {
		fail("That is not a personal API key: it is over 200 characters.")
		return
	}
	if _, err := h.cfg.Identify(r.Context(), secret); err != nil {
		fail("That key was not accepted: " + apiError(err).Message + ".")
		return
	}
	h.startSession(w, r, secret, next)
}

func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, secret, next string) {
	s, err := h.auth.create(secret)
	if err != nil {
		h.render(w, r, http.StatusServiceUnavailable, "error", view{Title: "Busy", Data: err.Error()})
		return
	}
	h.setCookie(w, s.id, int(h.cfg.SessionTTL/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// linkPage shows a button rather than signing in on GET, so that a link
// previewer fetching the URL does not use up the single-use link.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) {
	t := r.URL.Query().Get("t")
	if t == "" || len(t) > 100 {
		h.render(w, r, http.StatusNotFound, "error", view{Title: "Login link", Data: "This login link is not valid."})
		return
	}
	h.render(w, r, http.StatusOK, "login", view{Title: "Sign in", Data: loginData{Link: t, Next: Prefix}})
}

func (h *Handler) linkLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Data: "The request came from another site."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	secret, ok := h.auth.useLink(r.PostFormValue("t"))
	if !ok {
		h.render(w, r, http.StatusUnauthorized, "login", view{Title: "Sign in", Data: loginData{Next: Prefix,
			Error: "This login link was already used or has expired: ask for a new one (vexil keys login-link), or sign in with a key."}})
		return
	}
	if _, err := h.cfg.Identify(r.Context(), secret); err != nil {
		h.render(w, r, http.StatusUnauthorized, "login", view{Title: "Sign in", Data: loginData{Next: Prefix, Error: "The link's key was revoked."}})
		return
	}
	h.startSession(w, r, secret, Prefix)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Data: "The request came from another site."})
		return
	}
	if s := h.auth.fromRequest(r); s != nil {
		if err := h.checkCSRF(r, s); err != nil {
			h.render(w, r, http.StatusForbidden, "error", view{Title: "Refused", Data: err.Error()})
			return
		}
		h.auth.drop(s.id)
	}
	h.setCookie(w, "", -1)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// NewLoginLink returns a single-use login link's path and query (append
// it to the node's address) for a personal key, valid for Config.LinkTTL.
func (h *Handler) NewLoginLink(secret string) (string, time.Time, error) {
	t, exp, err := h.auth.newLink(secret)
	if err != nil {
		return "", time.Time{}, err
	}
	return Prefix + "login/link?t=" + url.QueryEscape(t), exp, nil
}

// mintLink serves POST /ui/login-links for vexil keys login-link: the
// caller's own key (Authorization: Bearer phx_...) gets a link that signs
// in as that key.
func (h *Handler) mintLink(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" || len(secret) > 200 {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": "unauthenticated", "message": "send Authorization: Bearer phx_..."})
		return
	}
	if _, err := h.cfg.Identify(r.Context(), strings.TrimSpace(secret)); err != nil {
		e := apiError(err)
		w.WriteHeader(e.Code.HTTPStatus())
		_ = json.NewEncoder(w).Encode(map[string]any{"code": e.Code, "message": e.Message})
		return
	}
	path, exp, err := h.NewLoginLink(strings.TrimSpace(secret))
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": "unavailable", "message": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"path": path, "expires_at": exp.UTC().Format(time.RFC3339)})
}
