package h1fast

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// bufBytes is a connection's read buffer: a head, and the body of an SDK's
// request (a longer body is read straight into its reader's buffer). It
// is what an idle kept-alive connection holds, as net/http's buffers are.
const bufBytes = HeadBytes

// maxDiscard is how much of a body its handler left unread is read and
// dropped to keep the connection (as net/http does); past it the
// connection closes after the answer.
const maxDiscard = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufBytes); return &b }}

// conn is a connection served here. Everything a request needs is kept
// on it and reused by the next request.
type conn struct {
	l  *Listener
	nc net.Conn
	bp *[]byte
	// buf[r:w] are bytes read and not yet used.
	buf  []byte
	r, w int
	// busy is false while the connection waits for a request (Shutdown
	// wakes those).
	busy atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	// tmpl carries the connection's context (http.Request keeps it
	// unexported): each request starts as a copy of it.
	tmpl *http.Request
	req  http.Request
	url  url.URL
	hdr  http.Header
	// names maps header names as sent to their canonical form; seen are
	// this request's header keys.
	names map[string]string
	seen  []string
	// host and target are the last request's, reused while unchanged.
	host, target, query string
	remote              string
	body                body
	rw                  writer
	keys                []string
	handedOver          bool
}

func newConn(l *Listener, nc net.Conn) *conn {
	bp := bufPool.Get().(*[]byte)
	c := &conn{l: l, nc: nc, bp: bp, buf: *bp, hdr: http.Header{}, names: map[string]string{}}
	c.rw = writer{hdr: http.Header{}}
	c.body.c = c
	base := context.Background()
	if l.cfg.ConnContext != nil {
		base = l.cfg.ConnContext(base, nc)
	}
	c.ctx, c.cancel = context.WithCancel(base)
	c.tmpl, _ = http.NewRequestWithContext(c.ctx, http.MethodPost, "/", nil)
	if a := nc.RemoteAddr(); a != nil {
		c.remote = a.String()
	}
	return c
}

// longAgo, as a read deadline, wakes a blocked read.
var longAgo = time.Unix(1, 0)

func (c *conn) wake() { _ = c.nc.SetReadDeadline(longAgo) }

// idleTimeout is how long a kept-alive connection may wait for its next
// request (net/http's rule: IdleTimeout, else ReadTimeout).
func (c *conn) idleTimeout() time.Duration {
	if t := c.l.cfg.IdleTimeout; t > 0 {
		return t
	}
	return c.l.cfg.ReadTimeout
}

func (c *conn) serve() {
	defer c.finish()
	for {
		if c.r == c.w {
			c.r, c.w = 0, 0
			c.busy.Store(false)
			if t := c.idleTimeout(); t > 0 {
				_ = c.nc.SetReadDeadline(time.Now().Add(t))
			}
			if c.l.closing.Load() {
				return
			}
			n, _ := c.nc.Read(c.buf)
			if n == 0 {
				return // closed, timed out, or woken by Shutdown
			}
			c.w = n
		}
		c.busy.Store(true)
		start := time.Now()
		end, ok := c.readHead(start)
		if !ok {
			return
		}
		if reason := c.parse(c.buf[c.r:end]); reason != "" {
			c.handover(reason)
			return
		}
		c.r = end
		if int64(c.w-c.r) < c.body.remain && c.l.cfg.ReadTimeout > 0 {
			_ = c.nc.SetReadDeadline(start.Add(c.l.cfg.ReadTimeout)) // the body is still coming
		}
		if !c.call() {
			return // a handler panic: no answer, as net/http
		}
		c.l.served.Inc()
		closeAfter := c.req.Close || c.l.closing.Load() || c.body.remain > maxDiscard || wantsClose(c.rw.hdr)
		err := c.respond(closeAfter)
		c.rw.release() // an idle connection holds no answer buffer
		if err != nil {
			return
		}
		if closeAfter {
			if c.body.remain > 0 {
				c.closeWriteAndWait()
			}
			return
		}
		if c.body.remain > 0 {
			if _, err := io.CopyN(io.Discard, &c.body, c.body.remain); err != nil {
				return
			}
		}
	}
}

// readHead makes buf[r:] hold a whole head and returns where it ends
// (after its blank line); false when the connection is done (closed,
// timed out, or handed over).
func (c *conn) readHead(start time.Time) (int, bool) {
	from := c.r
	deadline := false
	for {
		if i := bytes.Index(c.buf[from:c.w], crlfcrlf); i >= 0 {
			return from + i + 4, true
		}
		from = max(c.r, c.w-3)
		if c.w-c.r >= HeadBytes {
			c.handover(reasonHead)
			return 0, false
		}
		if c.w == len(c.buf) {
			n := copy(c.buf, c.buf[c.r:c.w])
			from -= c.r
			c.r, c.w = 0, n
		}
		if !deadline && c.l.cfg.ReadHeaderTimeout > 0 {
			_ = c.nc.SetReadDeadline(start.Add(c.l.cfg.ReadHeaderTimeout))
			deadline = true
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil && n == 0 {
			return 0, false
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// rstDelay is how long a connection closed with a body still unread
// waits, after its FIN, before it closes: closing a socket with bytes
// unread makes the kernel send a reset, which can destroy the answer
// before the client has read it (net/http waits so too).
const rstDelay = 500 * time.Millisecond

// closeWriteAndWait sends FIN after the answer and lets the client read
// it before the connection closes.
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(rstDelay)
}

// call runs the handler; false when it panicked.
func (c *conn) call() (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler { //nolint:errorlint // net/http compares it so too
				c.l.cfg.Logger.Error("h1fast: handler panic", "remote", c.remote, "panic", p, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.rw.reset()
	c.l.cfg.Handler.ServeHTTP(&c.rw, &c.req)
	return true
}

// handover gives the connection to net/http with what was read and not
// used replayed first.
func (c *conn) handover(reason string) {
	pending := bytes.Clone(c.buf[c.r:c.w])
	_ = c.nc.SetReadDeadline(time.Time{})
	c.handedOver = true
	c.l.handover[reason].Inc()
	c.l.forget(c)
	c.l.give(&replayConn{Conn: c.nc, pending: pending})
}

func (c *conn) finish() {
	c.cancel()
	bufPool.Put(c.bp)
	if c.handedOver {
		return
	}
	_ = c.nc.Close()
	c.l.forget(c)
}

// body is a request's body: Content-Length bytes, from what the head's
// reads brought first, then from the connection.
type body struct {
	c      *conn
	remain int64
}

func (b *body) Read(p []byte) (int, error) {
	if b.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		b.remain -= int64(n)
		return n, nil
	}
	n, err := c.nc.Read(p)
	b.remain -= int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *body) Close() error { return nil }

// replayConn is a connection handed to net/http: the bytes already read
// come first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection underneath (admission.ConnContext finds the
// stamps through it).
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes, as net/http does before closing when it can.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
