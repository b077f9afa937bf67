package h1fast

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HeadBytes bounds a request head served here: a longer one is handed to
// net/http, whose own limit (http.Server.MaxHeaderBytes) then applies.
const HeadBytes = 8 << 10

// Config is what a Listener serves.
type Config struct {
	// Handler answers the requests served here: the http.Server's own
	// handler. Required.
	Handler http.Handler
	// Paths are the request paths served here, for POST requests: exact
	// matches of the path (the query aside). Required.
	Paths []string
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout are the http.Server's
	// (0: none): the head must arrive within ReadHeaderTimeout of its
	// first byte, the whole request within ReadTimeout, and a kept-alive
	// connection's next request start within IdleTimeout.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// ConnContext, when set, derives a connection's context from the
	// base one, as the http.Server's ConnContext does.
	ConnContext func(context.Context, net.Conn) context.Context
	// Logger logs handler panics (default slog.Default()).
	Logger *slog.Logger
	// Registry, when set, gets the listener's metrics.
	Registry prometheus.Registerer
}

// Handover reasons: why a connection went to net/http.
const (
	reasonTLS     = "tls"
	reasonMethod  = "method"
	reasonPath    = "path"
	reasonVersion = "version"
	reasonFraming = "framing" // Transfer-Encoding, Expect, Upgrade, Connection, Content-Length, Host
	reasonHead    = "head"    // a malformed or oversized head
)

var reasons = []string{reasonTLS, reasonMethod, reasonPath, reasonVersion, reasonFraming, reasonHead}

// A Listener accepts connections from an inner listener and serves the
// requests Config describes itself; Accept returns the connections it
// hands to net/http. Serve an http.Server on it, and call Shutdown after
// the server's.
type Listener struct {
	inner   net.Listener
	cfg     Config
	paths   [][]byte
	handoff chan net.Conn
	done    chan struct{}
	once    sync.Once
	err     error // why the accept loop stopped, set before done closes

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*conn]struct{}
	wg      sync.WaitGroup

	served   prometheus.Counter
	handover map[string]prometheus.Counter
}

// NewListener serves cfg on the connections inner accepts.
func NewListener(inner net.Listener, cfg Config) (*Listener, error) {
	if cfg.Handler == nil || len(cfg.Paths) == 0 {
		return nil, errors.New("h1fast: Config needs a Handler and Paths")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Listener{inner: inner, cfg: cfg, handoff: make(chan net.Conn), done: make(chan struct{}), conns: map[*conn]struct{}{}}
	for _, p := range cfg.Paths {
		l.paths = append(l.paths, []byte(p))
	}
	l.served = prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_http_fast_requests_total",
		Help: "HTTP/1.1 requests answered below net/http (package h1fast)."})
	hv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_http_fast_handovers_total",
		Help: "Connections handed to net/http by the HTTP/1.1 fast path, by reason."}, []string{"reason"})
	l.handover = map[string]prometheus.Counter{}
	for _, r := range reasons {
		l.handover[r] = hv.WithLabelValues(r)
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{l.served, hv} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	go l.acceptLoop()
	return l, nil
}

// Accept returns the next connection for net/http.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting. Connections served here stay open: Shutdown
// ends them.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.inner.Close()
		close(l.done)
	})
	return err
}

// Addr is the inner listener's.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Shutdown closes the listener and the connections served here that wait
// for a request, lets those answering finish and close, and returns when
// all have, or ctx ends (then it closes the rest).
func (l *Listener) Shutdown(ctx context.Context) error {
	l.closing.Store(true)
	_ = l.Close()
	l.mu.Lock()
	for c := range l.conns {
		if !c.busy.Load() {
			c.wake()
		}
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			_ = c.nc.Close()
		}
		l.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-l.done:
					return
				}
			}
			l.once.Do(func() {
				if !errors.Is(err, net.ErrClosed) {
					l.err = err
				}
				close(l.done)
			})
			return
		}
		backoff = 0
		if _, isTLS := nc.(interface{ ConnectionState() tls.ConnectionState }); isTLS {
			l.handover[reasonTLS].Inc()
			l.give(nc)
			continue
		}
		c := newConn(l, nc)
		l.mu.Lock()
		if l.closing.Load() {
			l.mu.Unlock()
			_ = nc.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go c.serve()
	}
}

// give hands nc to net/http.
func (l *Listener) give(nc net.Conn) {
	select {
	case l.handoff <- nc:
	case <-l.done:
		_ = nc.Close()
	}
}

// forget removes c from the served connections.
func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wg.Done()
}
