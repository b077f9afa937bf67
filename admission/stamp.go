package admission

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// A request's age at admission is how long ago the kernel received its
// bytes: the time it waited in the socket's buffer, in the Go netpoller
// and run queue, and (under a CPU quota) throttled, before its handler
// ran. Nothing inside the process sees that wait otherwise: a node whose
// CPU is saturated keeps its handlers fast and few while its requests age
// in the kernel. StampListener asks the kernel for a receive timestamp on
// each read (SO_TIMESTAMPNS), ConnContext hands the connection to the
// request's context, and Age reads it.

// stamps is what a stamped connection records.
type stamps struct {
	// last is the kernel's receive time (Unix nanoseconds) of the bytes
	// of the connection's last read; 0: none yet.
	last atomic.Int64
	// coalesce, when not 0, is one more than the body length of the
	// response its handler is about to write (CoalesceResponse).
	coalesce atomic.Int64
}

type stampKey struct{}

// stamped is a connection that records receive timestamps.
type stamped interface{ stamps() *stamps }

// ConnContext is an http.Server's ConnContext: it keeps the connection's
// stamps in the context of its requests. A connection that is not stamped
// (or wraps none, through NetConn) leaves ctx as it is.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for range 4 {
		if s, ok := c.(stamped); ok {
			return context.WithValue(ctx, stampKey{}, s.stamps())
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// Age returns how long before now the kernel received the last bytes read
// from the connection of a request with context ctx (for HTTP/1.1, the end
// of the request itself, since clients do not pipeline): 0 when the
// connection is not stamped or the kernel gave no timestamp.
func Age(ctx context.Context, now time.Time) time.Duration {
	s, _ := ctx.Value(stampKey{}).(*stamps)
	if s == nil {
		return 0
	}
	last := s.last.Load()
	if last == 0 {
		return 0
	}
	return max(0, time.Duration(now.UnixNano()-last))
}

// CoalesceResponse tells the connection of the request with context ctx
// that its handler is about to write the whole response, a body of
// bodyLen bytes with that Content-Length, in one Write: the connection
// then sends the head and the body in one system call. net/http writes
// through a 4 KB buffer, so a 14 KB answer otherwise leaves in two writes
// (the head and the buffer's first 4 KB, then the rest), each a TCP
// segment the kernel sends, and on loopback delivers, on its own.
// Without a stamped HTTP/1.x connection (TLS, HTTP/2, another OS) it does
// nothing.
func CoalesceResponse(ctx context.Context, bodyLen int) {
	if s, _ := ctx.Value(stampKey{}).(*stamps); s != nil && bodyLen > 0 {
		s.coalesce.Store(int64(bodyLen) + 1)
	}
}
