package admission

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StampListener returns ln whose TCP connections record the kernel's
// receive time of each read (see Age). A connection on which the socket
// option cannot be set is returned as it is.
// The option is set on the listening socket too, as soon as it is
// wrapped: the kernel turns receive timestamps on in the background (a
// deferred static key), so a connection's first packets may come
// unstamped (Age 0) until it has, and accepted sockets inherit the flag.
func StampListener(ln net.Listener) net.Listener {
	if tl, ok := ln.(*net.TCPListener); ok {
		if raw, err := tl.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, 1) })
		}
	}
	return stampListener{ln}
}

type stampListener struct{ net.Listener }

func (l stampListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, 1)
	}); err != nil || serr != nil {
		return c, nil
	}
	sc := &stampConn{TCPConn: tc, raw: raw, oob: make([]byte, unix.CmsgSpace(16))}
	sc.recv = sc.recvmsg
	return sc, nil
}

// recvmsg is one recvmsg(2) into c.r.p (raw.Read's callback): false to
// wait for readiness again.
func (c *stampConn) recvmsg(fd uintptr) bool {
	for {
		c.r.n, c.r.oobn, c.r.err = recvmsgNoAddr(int(fd), c.r.p, c.oob)
		if c.r.err != unix.EINTR {
			return c.r.err != unix.EAGAIN
		}
	}
}

// recvmsgNoAddr is recvmsg(2) without the sender's address, which
// unix.Recvmsg decodes into a Sockaddr allocated per call (a connected TCP
// socket's peer is known).
func recvmsgNoAddr(fd int, p, oob []byte) (n, oobn int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	if e != 0 {
		return 0, 0, e
	}
	return int(r), int(msg.Controllen), nil
}

// stampConn reads with recvmsg to get the receive timestamp. Its Read is
// not safe for concurrent use (net/http reads a connection from one
// goroutine at a time).
type stampConn struct {
	*net.TCPConn
	raw syscall.RawConn
	oob []byte
	st  stamps
	// r is the read in progress: recv, built once per connection, reads
	// into r.p and leaves its results in r (a closure built per read
	// escaped to the heap: an allocation per request).
	r struct {
		p       []byte
		n, oobn int
		err     error
	}
	recv func(fd uintptr) bool
	// w guards the response being held (CoalesceResponse): net/http
	// writes from one goroutine at a time, but Close may come from
	// another.
	w struct {
		sync.Mutex
		hold  []byte // the response's first bytes, not sent yet
		total int    // the response's length, head and body
		buf   []byte // hold's memory, kept for the next response
		calls int    // write system calls (tests)
		// vec and bufs are writev's arguments: a net.Buffers made per
		// response escaped (WriteTo consumes it through a pointer).
		vec  [2][]byte
		bufs net.Buffers
	}
	// deadlineErr is the error of a read past the connection's deadline,
	// made at the first: net/http ends the background read it starts
	// after each request with a deadline in the past, so every response
	// on a kept-alive connection ends one read this way. (The error of
	// RawConn.Read under it is made per read, in package net.)
	deadlineErr *net.OpError
}

// Write sends p, or holds it while it is the start of a response whose
// handler said (CoalesceResponse) the rest follows at once, and sends the
// whole response with one writev when the rest has come.
func (c *stampConn) Write(p []byte) (int, error) {
	c.w.Lock()
	defer c.w.Unlock()
	if c.w.hold == nil {
		want := c.st.coalesce.Swap(0)
		if want == 0 || !bytes.HasPrefix(p, []byte("HTTP/1.")) {
			c.w.calls++
			return c.TCPConn.Write(p)
		}
		h := bytes.Index(p, []byte("\r\n\r\n"))
		if h < 0 || len(p) >= h+4+int(want-1) {
			c.w.calls++
			return c.TCPConn.Write(p)
		}
		c.w.hold, c.w.total = append(c.w.buf[:0], p...), h+4+int(want-1)
		return len(p), nil
	}
	if len(c.w.hold)+len(p) < c.w.total {
		c.w.hold = append(c.w.hold, p...)
		return len(p), nil
	}
	c.w.vec = [2][]byte{c.w.hold, p}
	c.w.bufs = c.w.vec[:]
	c.w.buf, c.w.hold = c.w.hold[:0], nil
	c.w.calls++
	n, err := c.w.bufs.WriteTo(c.TCPConn) // writev
	c.w.vec, c.w.bufs = [2][]byte{}, nil  // p is the caller's
	held := int64(len(c.w.buf))
	if err != nil {
		return int(max(0, n-held)), err
	}
	return len(p), nil
}

// flushHeld sends what Write holds, if anything (a response shorter than
// its handler said, ended by a close).
func (c *stampConn) flushHeld() {
	c.w.Lock()
	defer c.w.Unlock()
	if c.w.hold != nil {
		c.w.calls++
		_, _ = c.TCPConn.Write(c.w.hold)
		c.w.hold = nil
	}
}

func (c *stampConn) Close() error {
	c.flushHeld()
	return c.TCPConn.Close()
}

func (c *stampConn) CloseWrite() error {
	c.flushHeld()
	return c.TCPConn.CloseWrite()
}

func (c *stampConn) stamps() *stamps { return &c.st }

func (c *stampConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// raw.Read waits for readiness in the netpoller and honours the
	// connection's deadlines, as TCPConn.Read does.
	c.r.p = p
	err := c.raw.Read(c.recv)
	c.r.p = nil
	n, oobn, rerr := c.r.n, c.r.oobn, c.r.err
	if err == nil {
		err = rerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) { // raw.Read's own error wraps it
		if c.deadlineErr == nil {
			c.deadlineErr = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
		}
		return 0, c.deadlineErr
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	if n == 0 {
		return 0, io.EOF
	}
	if ns, ok := parseStamp(c.oob[:oobn]); ok {
		c.st.last.Store(ns)
	}
	return n, nil
}

// parseStamp finds SCM_TIMESTAMPNS (a timespec of two 64-bit words) in a
// control message buffer, without allocating.
func parseStamp(b []byte) (int64, bool) {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(16) {
			d := b[unix.CmsgLen(0):]
			sec, nsec := int64(binary.NativeEndian.Uint64(d)), int64(binary.NativeEndian.Uint64(d[8:]))
			return sec*1e9 + nsec, true
		}
		b = b[min(len(b), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0, false
}
