package h1fast

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxKeptBody bounds an answer buffer kept for another request; a larger
// one goes to the collector.
const maxKeptBody = 256 << 10

// answerPool holds the buffers of answers being written (bodies, and
// whole answers), shared by the connections: one waiting for its next
// request holds none, so that many idle kept-alive connections cost
// their read buffers only.
var answerPool = sync.Pool{New: func() any { return new([]byte) }}

func getAnswerBuf() *[]byte { return answerPool.Get().(*[]byte) }

// putAnswerBuf returns p to the pool, holding b's memory.
func putAnswerBuf(p *[]byte, b []byte) {
	if cap(b) <= maxKeptBody {
		*p = b[:0]
		answerPool.Put(p)
	}
}

// writer is a request's http.ResponseWriter: it keeps the answer whole,
// and the connection writes it with its Content-Length in one system
// call once the handler returns.
type writer struct {
	hdr    http.Header
	status int
	body   []byte
	bp     *[]byte // body's pooled buffer, nil between requests
}

// reset readies w for a request, with a buffer from the pool.
func (w *writer) reset() {
	clear(w.hdr)
	w.status = 0
	w.bp = getAnswerBuf()
	w.body = (*w.bp)[:0]
}

// release gives the body's buffer back once the answer is written.
func (w *writer) release() {
	if w.bp != nil {
		putAnswerBuf(w.bp, w.body)
	}
	w.bp, w.body = nil, nil
}

func (w *writer) Header() http.Header { return w.hdr }

// WriteHeader records the status. As net/http, a code outside 100-999
// panics and a second call is ignored; a 1xx is not sent (see the
// package's documentation).
func (w *writer) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.startBody(); err != nil {
		return 0, err
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *writer) WriteString(s string) (int, error) {
	if err := w.startBody(); err != nil {
		return 0, err
	}
	w.body = append(w.body, s...)
	return len(s), nil
}

// startBody is a body write's status: 200 unless one was written, and
// http.ErrBodyNotAllowed for a status without a body.
func (w *writer) startBody() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !bodyAllowed(w.status) {
		return http.ErrBodyNotAllowed
	}
	return nil
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// respond writes the answer the handler left in c.rw: the status line,
// the handler's headers in key order, Content-Type (sniffed when the
// handler set none, as net/http does), Date, Content-Length and, when
// the connection closes after it, Connection: close.
func (c *conn) respond(closeAfter bool) error {
	w := &c.rw
	if w.status == 0 {
		w.status = http.StatusOK
	}
	op := getAnswerBuf()
	b := append((*op)[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	if text := http.StatusText(w.status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(w.status), 10)
	}
	b = append(b, "\r\n"...)
	keys := c.keys[:0]
	for k := range w.hdr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	_, hasType := w.hdr["Content-Type"]
	_, hasDate := w.hdr["Date"]
	for _, k := range keys {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if !validName(k) {
			continue
		}
		for _, v := range w.hdr[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	c.keys = keys[:0]
	allowed := bodyAllowed(w.status)
	if !hasType && allowed && len(w.body) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(w.body)...)
		b = append(b, "\r\n"...)
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = append(b, date()...)
		b = append(b, "\r\n"...)
	}
	if allowed {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n"...)
	}
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if allowed {
		// One Write of the whole answer, through whatever wraps the
		// connection (a writev of two buffers would go around a wrapper's
		// Write, and admission's stamped connection keeps state there).
		b = append(b, w.body...)
	}
	_, err := c.nc.Write(b)
	putAnswerBuf(op, b)
	return err
}

// appendValue appends a header value as net/http writes one: CR and LF
// become spaces, and surrounding white space goes.
func appendValue(b []byte, v string) []byte {
	i, j := 0, len(v)
	for i < j && isSpace(v[i]) {
		i++
	}
	for j > i && isSpace(v[j-1]) {
		j--
	}
	v = v[i:j]
	if strings.IndexAny(v, "\r\n") < 0 {
		return append(b, v...)
	}
	for k := range len(v) {
		x := v[k]
		if x == '\r' || x == '\n' {
			x = ' '
		}
		b = append(b, x)
	}
	return b
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// dateCache is the Date header's value for one second.
type dateCache struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[dateCache]

// date is now as an HTTP date, formatted once a second.
func date() []byte {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateCache{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	lastDate.Store(d)
	return d.b
}
