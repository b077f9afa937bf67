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
