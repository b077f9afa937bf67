package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawClient is a minimal HTTP/1.1 client for Config.Raw: requests written
// from bytes built once per body on kept-alive connections, answers read
// for their status and length only. net/http's client costs a core tens of
// microseconds per request (header maps, a goroutine per connection,
// transport bookkeeping), so one core of it cannot offer twice what a
// server answers on a comparable share of a core; this one costs a few
// microseconds, and the generator stays ahead of the server it measures.
type rawClient struct {
	addr    string
	reqs    [][]byte // one per body: the whole request
	timeout time.Duration
	// idle holds the open connections not in use (at most Connections).
	idle chan *rawConn
}

type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

// newRawClient builds the requests of cfg (Raw set, URL http://host/path).
func newRawClient(cfg Config) (*rawClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("loadtest: URL: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, errors.New("loadtest: Raw needs an http://host[:port]/path URL")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n", u.RequestURI(), u.Host, cfg.ContentType)
	for k, vs := range cfg.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	rc := &rawClient{addr: addr, timeout: cfg.Timeout, idle: make(chan *rawConn, cfg.Connections)}
	for _, b := range cfg.Bodies {
		req := append([]byte(nil), head.Bytes()...)
		req = fmt.Appendf(req, "Content-Length: %d\r\n\r\n", len(b))
		rc.reqs = append(rc.reqs, append(req, b...))
	}
	return rc, nil
}

// do sends request i on an idle connection (or a new one) and reads the
// answer; a connection that failed is closed, and its sample has status 0.
func (rc *rawClient) do(i uint64) sample {
	var conn *rawConn
	select {
	case conn = <-rc.idle:
	default:
		c, err := net.DialTimeout("tcp", rc.addr, rc.timeout)
		if err != nil {
			return sample{}
		}
		conn = &rawConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
	}
	status, n, keep, err := conn.roundTrip(rc.reqs[i%uint64(len(rc.reqs))], time.Now().Add(rc.timeout))
	if err != nil || !keep {
		conn.c.Close()
		if err != nil {
			return sample{}
		}
	} else {
		select {
		case rc.idle <- conn:
		default:
			conn.c.Close()
		}
	}
	return sample{status: status, bytes: n}
}

// close closes the idle connections.
func (rc *rawClient) close() {
	for {
		select {
		case c := <-rc.idle:
			c.c.Close()
		default:
			return
		}
	}
}

var errBadAnswer = errors.New("loadtest: malformed HTTP answer")

// roundTrip writes req and reads one answer: its status, its body's
// length, and whether the connection may be reused.
func (c *rawConn) roundTrip(req []byte, deadline time.Time) (status, n int, keep bool, err error) {
	if err := c.c.SetDeadline(deadline); err != nil {
		return 0, 0, false, err
	}
	if _, err := c.c.Write(req); err != nil {
		return 0, 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, errBadAnswer
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, errBadAnswer
	}
	length, chunked, keep := -1, false, line[7] == '1'
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, err
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, 0, false, errBadAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, 0, false, errBadAnswer
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
		return status, 0, keep, nil
	case chunked:
		n, err = c.readChunked()
		return status, n, keep, err
	case length >= 0:
		_, err = c.r.Discard(length)
		return status, length, keep, err
	}
	// No length: the body runs to the end of the connection.
	for {
		k, err := c.r.Discard(64 << 10)
		n += k
		if err != nil {
			return status, n, false, nil
		}
	}
}

// readChunked discards a chunked body, returning its length.
func (c *rawConn) readChunked() (int, error) {
	n := 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		hex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(hex)), 16, 32)
		if err != nil || size < 0 {
			return n, errBadAnswer
		}
		if size == 0 {
			for { // trailers, then the blank line
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					return n, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return n, nil
				}
			}
		}
		if _, err := c.r.Discard(int(size) + 2); err != nil {
			return n, err
		}
		n += int(size)
	}
}
