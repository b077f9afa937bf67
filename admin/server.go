package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/cors"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/h1fast"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// ServerConfig configures a Server: the Service served over gRPC and HTTP.
type ServerConfig struct {
	// Service is served. Required.
	Service *Service
	// GRPCListener and HTTPListener, when set, are used instead of
	// listening on GRPCAddr and HTTPAddr (tests pass ":0" listeners).
	GRPCListener, HTTPListener net.Listener
	// GRPCAddr and HTTPAddr default to 127.0.0.1:7081 and 127.0.0.1:7080.
	GRPCAddr, HTTPAddr string
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
	// Logger defaults to the Service's.
	Logger *slog.Logger
	// Routes are served beside the management API on the same HTTP
	// listener, by ServeMux pattern (vexil serve mounts the evaluation
	// endpoints here). They bypass the API's authentication gate and body
	// limit: each handler does its own.
	Routes map[string]http.Handler
	// Register, when set, registers more services on the gRPC server
	// (vexil serve adds the evaluation API). The management API's
	// interceptor applies to its own methods only: such services
	// authenticate their calls themselves.
	Register func(*grpc.Server)
	// Classes gives the admission class of the registered services'
	// methods (by full method name, "/package.Service/Method"): such
	// calls are admitted or refused before their message is decoded. A
	// method it does not know is not admitted by the server.
	Classes func(fullMethod string) (admission.Class, bool)
	// GatewayDialer, when set, connects the HTTP gateway to the gRPC
	// server instead of dialling GRPCListener's address: vexil serve
	// dials in process, so that a gRPC listener serving TLS, or requiring
	// client certificates, needs none for its own gateway.
	GatewayDialer func(ctx context.Context, addr string) (net.Conn, error)
	// CORSOrigins are the browser origins (scheme://host[:port], or "*")
	// the management API answers cross-origin; empty keeps CORS off.
	// PostHog's public endpoints (the early access list) answer every
	// origin regardless.
	CORSOrigins []string
	// FastPaths, when set, are served for plain HTTP/1.1 POST requests
	// below net/http (package h1fast), by the same handler: vexil serve's
	// /flags and /decide.
	FastPaths []string
	// OpenAPI is the document served at /api/openapi.json; default the
	// management API's (adminv1.OpenAPI). A server that mounts documented
	// Routes serves that document with theirs added.
	OpenAPI []byte
}

// Validate checks the configuration.
func (c *ServerConfig) Validate() error {
	if c.Service == nil {
		return errors.New("admin: server config: Service is required")
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("admin: server config: negative ShutdownTimeout")
	}
	if err := cors.CheckOrigins(c.CORSOrigins); err != nil {
		return fmt.Errorf("admin: server config: CORSOrigins: %w", err)
	}
	return nil
}

// Server serves the management API: gRPC, and HTTP through grpc-gateway
// over a client connection to that gRPC server, plus the OpenAPI document
// and PostHog's public early access list.
type Server struct {
	cfg      ServerConfig
	grpcLn   net.Listener
	httpLn   net.Listener
	grpc     *grpc.Server
	http     *http.Server
	fast     *h1fast.Listener // nil unless ServerConfig.FastPaths
	conn     *grpc.ClientConn
	log      *slog.Logger
	svc      *Service
	maxBytes int
}

// NewServer listens (unless listeners are given) and prepares the servers;
// Run serves.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:7081"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:7080"
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, svc: cfg.Service, log: cfg.Logger, maxBytes: cfg.Service.cfg.Limits.MaxBodyBytes}
	if s.log == nil {
		s.log = cfg.Service.log
	}
	var err error
	if s.grpcLn = cfg.GRPCListener; s.grpcLn == nil {
		if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("admin: listen gRPC: %w", err)
		}
	}
	if s.httpLn = cfg.HTTPListener; s.httpLn == nil {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = s.grpcLn.Close()
			return nil, fmt.Errorf("admin: listen HTTP: %w", err)
		}
	}
	s.grpc = grpc.NewServer(append(admitOptions(s.svc.cfg.Admission, cfg.Classes),
		grpc.ChainUnaryInterceptor(adminOnly(admit(s.svc.cfg.Admission)), adminOnly(s.svc.UnaryInterceptor())),
		grpc.MaxRecvMsgSize(s.maxBytes),
	)...)
	adminv1.RegisterAdminServiceServer(s.grpc, s.svc)
	if cfg.Register != nil {
		cfg.Register(s.grpc)
	}

	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if cfg.GatewayDialer != nil {
		dial = append(dial, grpc.WithContextDialer(cfg.GatewayDialer))
	}
	s.conn, err = grpc.NewClient(s.grpcLn.Addr().String(), dial...)
	if err != nil {
		_ = s.grpcLn.Close()
		_ = s.httpLn.Close()
		return nil, fmt.Errorf("admin: gateway client: %w", err)
	}
	handler, err := s.httpHandler()
	if err != nil {
		_ = s.conn.Close()
		_ = s.grpcLn.Close()
		_ = s.httpLn.Close()
		return nil, err
	}
	// Requests carry their age at admission: the kernel's receive time of
	// their bytes (admission.Age), what they waited before any handler ran.
	s.httpLn = admission.StampListener(s.httpLn)
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ConnContext: admission.ConnContext,
		ErrorLog: log.New(serverErrors{s.log}, "", 0)}
	if len(cfg.FastPaths) > 0 {
		s.fast, err = h1fast.NewListener(s.httpLn, h1fast.Config{Handler: handler, Paths: cfg.FastPaths,
			ReadHeaderTimeout: s.http.ReadHeaderTimeout, ReadTimeout: s.http.ReadTimeout, IdleTimeout: s.http.IdleTimeout,
			ConnContext: admission.ConnContext, Logger: s.log, Registry: s.svc.cfg.Registry})
		if err != nil {
			_ = s.conn.Close()
			_ = s.grpcLn.Close()
			_ = s.httpLn.Close()
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.httpLn = s.fast
	}
	return s, nil
}

// GRPCAddr and HTTPAddr return the addresses served.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// HTTPAddr returns the HTTP address served.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// Run serves until ctx ends, runs the Service's job worker, and returns
// after every goroutine has stopped.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.grpc.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("admin: gRPC: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin: HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error { return s.svc.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		herr := s.http.Shutdown(sctx)
		if s.fast != nil {
			_ = s.fast.Shutdown(sctx)
		}
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			s.grpc.Stop()
			<-stopped
		}
		_ = s.conn.Close()
		if herr != nil && !errors.Is(herr, context.DeadlineExceeded) {
			return herr
		}
		return nil
	})
	return g.Wait()
}

// adminOnly applies i to the management API's methods and passes the
// calls of services added through ServerConfig.Register straight through.
func adminOnly(i grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	prefix := "/" + adminv1.AdminService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, prefix) {
			return handler(ctx, req)
		}
		return i(ctx, req, info, handler)
	}
}

// admit admits a management call, before authentication, or refuses it
// at once with RESOURCE_EXHAUSTED overloaded (and retry_after); a call
// the server's tap admitted already (admitOptions) goes on.
func admit(c *admission.Controller) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := admission.TicketFrom(ctx); ok {
			return handler(ctx, req)
		}
		t, err := c.Acquire(admission.Management)
		if err != nil {
			return nil, errcode.GRPCStatus(err).Err()
		}
		defer t.Done()
		return handler(ctx, req)
	}
}

// headerMatcher forwards Authorization and If-Match to the gRPC server.
func headerMatcher(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "authorization":
		return "authorization", true
	case "if-match":
		return "if-match", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// marshaler writes PostHog-style snake_case JSON, scalars included even
// when zero (false, 0, "") so clients see every field, 64-bit integers as
// numbers; unset messages (timestamps) are left out (see restMarshaler).
var marshaler = newRESTMarshaler()

// errorHandler writes a gRPC error as HTTP: the status from errcode's
// table, the body google.rpc.Status as JSON (code, message, details with
// the ErrorInfo).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = errcode.GRPCStatus(err)
	}
	e := errcode.FromStatus(st)
	if len(st.Details()) == 0 {
		// The gateway's own errors (a body that does not decode) get the
		// stable code too.
		st = errcode.GRPCStatus(e)
	}
	body, merr := m.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code":13,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if e.Code == errcode.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vexil"`)
	}
	if ra := e.Meta[errcode.MetaRetryAfter]; ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	w.WriteHeader(e.Code.HTTPStatus())
	_, _ = w.Write(body)
}

// writeError writes an errcode error from plain HTTP handlers.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	errorHandler(r.Context(), nil, marshaler, w, r, errcode.GRPCStatus(err).Err())
}

func (s *Server) httpHandler() (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			c := errcode.NotFound
			msg := "no such route"
			if code == http.StatusMethodNotAllowed {
				c, msg = errcode.Unimplemented, "method not allowed on this route"
			}
			err := errcode.New(c, "%s", msg)
			st := errcode.GRPCStatus(err)
			body, _ := m.Marshal(st.Proto())
			w.Header().Set("Content-Type", "application/json")
			if code == http.StatusMethodNotAllowed {
				w.WriteHeader(http.StatusMethodNotAllowed)
			} else {
				w.WriteHeader(http.StatusNotFound)
			}
			_, _ = w.Write(body)
		}),
	)
	if err := adminv1.RegisterAdminServiceHandler(context.Background(), gw, s.conn); err != nil {
		return nil, fmt.Errorf("admin: gateway: %w", err)
	}
	client := adminv1.NewAdminServiceClient(s.conn)
	mux := http.NewServeMux()
	doc := s.cfg.OpenAPI
	if doc == nil {
		doc = adminv1.OpenAPI
	}
	mux.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	// posthog-js reads the public early access list from the browser, on
	// the site's origin: it answers every origin, preflights included.
	early := cors.Public(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			w.Header().Set("Allow", "GET, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.publicEarlyAccess(w, r, client)
	}))
	for _, p := range []string{"/api/early_access_features", "/api/early_access_features/"} {
		mux.Handle("GET "+p, early)
		mux.Handle("OPTIONS "+p, early)
	}
	// The management API answers browsers only from the configured
	// origins (none by default): a preflight carries no key, so it is
	// answered before the authentication gate.
	mux.Handle("/", cors.AllowList(s.cfg.CORSOrigins, s.authGate(trimSlash(gw))))
	api := s.limitBody(mux)
	if len(s.cfg.Routes) == 0 {
		return api, nil
	}
	outer := http.NewServeMux()
	for pattern, h := range s.cfg.Routes {
		outer.Handle(pattern, h)
	}
	outer.Handle("/", api)
	return outer, nil
}

// authGate refuses a request without a valid personal key with 401 before
// the gateway decodes its body, so that an anonymous caller learns nothing,
// not even whether its body would parse. The gRPC interceptor still does
// the whole check (team, scope) for both surfaces.
func (s *Server) authGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.svc.authenticate(r.Context(), r.Header.Get("Authorization"), catalog.KeyPersonal); err != nil {
			writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// trimSlash serves every route with and without a trailing slash, as
// PostHog's clients call them (/api/projects/1/feature_flags/).
func trimSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimRight(p, "/")
			r2.URL.RawPath = ""
			if r2.URL.Path == "" {
				r2.URL.Path = "/"
			}
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses bodies over the limit with 413 before the gateway
// decodes them.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > int64(s.maxBytes) {
			writeError(w, r, tooLarge(s.maxBytes))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			data, err := io.ReadAll(io.LimitReader(r.Body, int64(s.maxBytes)+1))
			if err != nil {
				writeError(w, r, errcode.New(errcode.InvalidArgument, "reading the body: %v", err))
				return
			}
			if len(data) > s.maxBytes {
				writeError(w, r, tooLarge(s.maxBytes))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(data))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(n int) error {
	return errcode.New(errcode.TooLarge, "the request body is over %d bytes", n).With("limit", fmt.Sprint(n))
}

// publicEarlyAccess serves PostHog's GET /api/early_access_features
// ?token=phc_... in its camelCase shape: {"earlyAccessFeatures": [...]}.
func (s *Server) publicEarlyAccess(w http.ResponseWriter, r *http.Request, client adminv1.AdminServiceClient) {
	q := r.URL.Query()
	ctx := metadata.NewOutgoingContext(r.Context(), metadata.MD{})
	resp, err := client.ListPublicEarlyAccessFeatures(ctx, &adminv1.ListPublicEarlyAccessFeaturesRequest{
		Token: q.Get("token"), Stages: q["stage"],
	})
	if err != nil {
		errorHandler(r.Context(), nil, marshaler, w, r, err)
		return
	}
	type feature struct {
		Name             string `json:"name"`
		Description      string `json:"description"`
		Stage            string `json:"stage"`
		DocumentationURL string `json:"documentationUrl"`
		FlagKey          string `json:"flagKey"`
	}
	out := struct {
		EarlyAccessFeatures []feature `json:"earlyAccessFeatures"`
	}{EarlyAccessFeatures: []feature{}}
	for _, f := range resp.GetEarlyAccessFeatures() {
		out.EarlyAccessFeatures = append(out.EarlyAccessFeatures, feature{f.GetName(), f.GetDescription(), f.GetStage(),
			f.GetDocumentationUrl(), f.GetFlagKey()})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = jsonEncode(w, out)
}

// serverErrors sends the HTTP server's error log to the logger: failed TLS
// handshakes (scanners, a client without the CA) are the caller's problem
// and logged at debug; anything else (a handler's panic) is a warning.
type serverErrors struct{ log *slog.Logger }

func (e serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		e.log.Debug(msg)
	} else {
		e.log.Warn(msg)
	}
	return len(p), nil
}
