package mcpsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/namespace"
)

// Bounds of a request.
const (
	// MaxBodyBytes bounds one MCP HTTP request body.
	MaxBodyBytes = 1 << 20
	// MaxListed bounds the names of ?tools= and ?features=.
	MaxListed = 100
	// BulkLimit: a change naming more ids than this needs confirmation.
	BulkLimit = 100
)

// modern is the first protocol revision the stateless handler serves.
const modern = "2026-07-28"

// Config configures a Server.
type Config struct {
	// Service is the management API's service layer. Required.
	Service *admin.Service
	// Inbox is the signal inbox; nil: the signal tools answer unavailable.
	Inbox *Inbox
	// Usage is the flag usage statistics; nil: the usage tools answer
	// unavailable.
	Usage UsageSource
	// Conn, when set, feeds resource updates from change notices and
	// signals (Run).
	Conn      *nats.Conn
	Namespace namespace.Name
	Logger    *slog.Logger
	// ConfirmTTL is how long a confirm token lives (default 5 minutes).
	ConfirmTTL time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Version is the server version shown to clients.
	Version string
}

// Server is the MCP server: Handler serves /mcp, ServeStdio one stdio
// session, Run pushes resource updates.
type Server struct {
	cfg       Config
	log       *slog.Logger
	stateful  *mcp.StreamableHTTPHandler
	stateless *mcp.StreamableHTTPHandler
	confirms  *confirmations
	// schemas keeps the tools' inferred input schemas across the MCP
	// servers made per session and per stateless request (a fixed set of
	// Go types: bounded).
	schemas *mcp.SchemaCache

	mu      sync.Mutex
	servers map[[32]byte]*cachedServer
}

// cachedServer is the MCP server of one key and one set of options,
// shared by its sessions and stateless requests.
type cachedServer struct {
	srv  *mcp.Server
	team int64
	used time.Time
}

// maxServers bounds the cached MCP servers (one per key and options in
// use); past it, servers without a session go first, then the least
// recently used.
const maxServers = 1000

// New checks the configuration and prepares the server.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("mcpsvc: Service is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConfirmTTL <= 0 {
		cfg.ConfirmTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{cfg: cfg, log: cfg.Logger, servers: map[[32]byte]*cachedServer{},
		confirms: newConfirmations(cfg.ConfirmTTL, cfg.Now), schemas: mcp.NewSchemaCache()}
	// The go-sdk asks for the server on every request (the stateful
	// handler to check the protocol version, then once per new session;
	// the stateless one per request): serverFor answers a cached one.
	get := func(r *http.Request) *mcp.Server {
		sess, _ := r.Context().Value(sessionKey{}).(*session)
		if sess == nil {
			return nil
		}
		return s.serverFor(sess)
	}
	// The handlers' own origin checks stay on; authentication is ours.
	s.stateful = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Logger: discard(),
		SessionTimeout: 30 * time.Minute, MaxRequestBodyBytes: MaxBodyBytes})
	s.stateless = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Logger: discard(), Stateless: true,
		MaxRequestBodyBytes: MaxBodyBytes})
	return s, nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type sessionKey struct{}

// serverFor returns the MCP server of sess's key and options, made once.
func (s *Server) serverFor(sess *session) *mcp.Server {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%q\x00%q\x00%v", sess.auth, sess.team, sess.opts.features, sess.opts.tools, sess.showAll)
	var k [32]byte
	h.Sum(k[:0])
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.servers[k]; ok {
		c.used = now
		return c.srv
	}
	if len(s.servers) >= maxServers {
		s.evictLocked(now)
	}
	srv := s.newMCPServer(sess)
	s.servers[k] = &cachedServer{srv: srv, team: sess.team, used: now}
	return srv
}

// evictLocked drops the servers without sessions unused for a minute, or
// else the least recently used one.
func (s *Server) evictLocked(now time.Time) {
	var oldest [32]byte
	var oldestAt time.Time
	for k, c := range s.servers {
		if now.Sub(c.used) > time.Minute && noSessions(c.srv) {
			delete(s.servers, k)
			continue
		}
		if oldestAt.IsZero() || c.used.Before(oldestAt) {
			oldest, oldestAt = k, c.used
		}
	}
	if len(s.servers) >= maxServers {
		delete(s.servers, oldest)
	}
}

// session is what one MCP session (or one stateless request) acts as.
type session struct {
	auth   string
	caller admin.Caller
	// team is the default team of tools and resources (0: none, the key
	// reaches several; tools then need team_id).
	team int64
	opts options
	// showAll lists tools the key's scopes do not allow (tests prove the
	// service refuses them).
	showAll bool
}

// options narrow the tool list.
type options struct {
	features []string
	tools    []string
}

// Features lists the feature names of ?features=.
var Features = []string{"flags", "cohorts", "early_access", "activity", "signals", "usage"}

func splitList(q, field string) ([]string, error) {
	if q == "" {
		return nil, nil
	}
	parts := strings.Split(q, ",")
	if len(parts) > MaxListed {
		return nil, errcode.Field(errcode.InvalidArgument, field, "at most %d names", MaxListed)
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseQuery reads ?features=, ?tools= and ?team_id=.
func parseQuery(r *http.Request, caller admin.Caller) (options, int64, error) {
	q := r.URL.Query()
	var o options
	var err error
	if o.features, err = splitList(q.Get("features"), "features"); err != nil {
		return o, 0, err
	}
	for _, f := range o.features {
		if !slices.Contains(Features, f) {
			return o, 0, errcode.Field(errcode.InvalidArgument, "features", "unknown feature %q (known: %s)", f, strings.Join(Features, ", "))
		}
	}
	if o.tools, err = splitList(q.Get("tools"), "tools"); err != nil {
		return o, 0, err
	}
	for _, t := range o.tools {
		if toolByName(t) == nil {
			return o, 0, errcode.Field(errcode.InvalidArgument, "tools", "unknown tool %q", t)
		}
	}
	team := defaultTeam(caller)
	if v := q.Get("team_id"); v != "" {
		if team, err = strconv.ParseInt(v, 10, 64); err != nil || team <= 0 {
			return o, 0, errcode.Field(errcode.InvalidArgument, "team_id", "team_id must be a positive integer")
		}
	}
	if err := reachable(caller, team); err != nil {
		return o, 0, err
	}
	return o, team, nil
}

// reachable refuses a default team the key does not reach, as the
// management API does (not found): resource updates go to the sessions of
// their team, and must reach no other key.
func reachable(caller admin.Caller, team int64) error {
	if team != 0 && !caller.Reaches(team) {
		return errcode.Field(errcode.NotFound, "team_id", "team not found")
	}
	return nil
}

func defaultTeam(c admin.Caller) int64 {
	if len(c.Teams) == 1 {
		return c.Teams[0]
	}
	return 0
}

// Handler serves the MCP endpoint (streamable HTTP, both eras).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	caller, err := s.cfg.Service.Authenticate(r.Context(), auth)
	if err != nil {
		writeError(w, err)
		return
	}
	opts, team, err := parseQuery(r, caller)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := context.WithValue(r.Context(), sessionKey{}, &session{auth: auth, caller: caller, team: team, opts: opts})
	isModern, err := routeModern(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if isModern {
		s.stateless.ServeHTTP(w, r.WithContext(ctx))
	} else {
		s.stateful.ServeHTTP(w, r.WithContext(ctx))
	}
}

// routeModern reports whether r belongs to the stateless 2026-07-28
// handler (package doc). It reads a POST body (bounded) and puts it back.
func routeModern(r *http.Request) (bool, error) {
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
		return false, nil
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" {
		return v >= modern, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return false, errcode.New(errcode.InvalidArgument, "reading the body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		return false, errcode.New(errcode.InvalidArgument, "the body is over %d bytes", MaxBodyBytes)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		Method string `json:"method"`
		Params struct {
			Meta map[string]any `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false, nil // the stateful handler answers the parse error
	}
	switch m.Method {
	case "initialize":
		return false, nil
	case "server/discover":
		return true, nil
	}
	v, _ := m.Params.Meta[mcp.MetaKeyProtocolVersion].(string)
	return v >= modern, nil
}

// writeError answers an HTTP-level refusal (before MCP): the status of
// its code, {"code", "message"}.
func writeError(w http.ResponseWriter, err error) {
	e := errcode.From(err)
	w.Header().Set("Content-Type", "application/json")
	if e.Code == errcode.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vexil"`)
	}
	w.WriteHeader(e.Code.HTTPStatus())
	_ = json.NewEncoder(w).Encode(map[string]string{"code": string(e.Code), "message": e.Message})
}

// ServeStdio serves one session on stdin and stdout (vexil mcp) as the
// key of authorization ("Bearer phx_...") until ctx ends or the client
// leaves. features and tools narrow the tool list as the query does.
func (s *Server) ServeStdio(ctx context.Context, authorization string, team int64, features, tools []string) error {
	return s.Serve(ctx, &mcp.StdioTransport{}, authorization, team, features, tools)
}

// Serve serves one session on t (stdio, or in-memory in tests).
func (s *Server) Serve(ctx context.Context, t mcp.Transport, authorization string, team int64, features, tools []string) error {
	caller, err := s.cfg.Service.Authenticate(ctx, authorization)
	if err != nil {
		return err
	}
	if team == 0 {
		team = defaultTeam(caller)
	}
	if err := reachable(caller, team); err != nil {
		return err
	}
	return s.serveSession(ctx, t, &session{auth: authorization, caller: caller, team: team, opts: options{features: features, tools: tools}})
}

func (s *Server) serveSession(ctx context.Context, t mcp.Transport, sess *session) error {
	return s.serverFor(sess).Run(ctx, t)
}

// Run copies the signal inbox into the store (Inbox.Run) and pushes
// notifications/resources/updated to subscribed sessions:
// vexil://flags/{key} on a flag's change notice, vexil://signals on any
// signal of the team. It returns when ctx ends (at once without Conn).
func (s *Server) Run(ctx context.Context) error {
	if in := s.cfg.Inbox; in != nil {
		// The inbox's copy into the store runs as long as this does.
		ictx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- in.Run(ictx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				s.log.Warn("inbox", "err", err)
			}
		}()
	}
	if s.cfg.Conn == nil {
		<-ctx.Done()
		return nil
	}
	ns := s.cfg.Namespace
	subC, err := s.cfg.Conn.Subscribe(changes.Wildcard(ns), func(m *nats.Msg) {
		n, err := changes.Parse(ns, m.Subject, m.Data)
		if err != nil || n.Kind != changes.KindFlag || n.Key == "" {
			return
		}
		s.notify(n.Team, flagURI(n.Key))
	})
	if err != nil {
		return fmt.Errorf("mcpsvc: subscribe to change notices: %w", err)
	}
	defer func() { _ = subC.Unsubscribe() }()
	prefix := ns.Subject("signals") + "."
	subS, err := s.cfg.Conn.Subscribe(ns.Subject("signals", "*", "*"), func(m *nats.Msg) {
		rest := strings.TrimPrefix(m.Subject, prefix)
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return
		}
		if team, err := strconv.ParseInt(rest[:i], 10, 64); err == nil {
			if s.cfg.Inbox != nil {
				s.cfg.Inbox.Touch(team)
			}
			s.notify(team, SignalsURI)
		}
	})
	if err != nil {
		return fmt.Errorf("mcpsvc: subscribe to signals: %w", err)
	}
	defer func() { _ = subS.Unsubscribe() }()
	<-ctx.Done()
	return nil
}

// notify sends uri's update to the servers of team (their subscribed
// sessions).
func (s *Server) notify(team int64, uri string) {
	s.mu.Lock()
	var targets []*mcp.Server
	for _, c := range s.servers {
		if c.team == team {
			targets = append(targets, c.srv)
		}
	}
	s.mu.Unlock()
	for _, srv := range targets {
		_ = srv.ResourceUpdated(context.Background(), &mcp.ResourceUpdatedNotificationParams{URI: uri})
	}
}

func noSessions(srv *mcp.Server) bool {
	for range srv.Sessions() {
		return false
	}
	return true
}

// Inbox returns the signal inbox (nil without a store), for the detectors
// that add findings (Inbox.Append). Publishing a Finding as JSON on
// FindingSubject from any process is the same.
func (s *Server) Inbox() *Inbox { return s.cfg.Inbox }
