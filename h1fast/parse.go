package h1fast

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"

	"golang.org/x/net/http/httpguts"
)

// maxHeaders bounds a head's header lines served here.
const maxHeaders = 100

// maxNames bounds a connection's table of header names.
const maxNames = 64

var noCache = []string{"no-cache"}

// parse reads head (the request line, the header lines, the blank line)
// into c.req, reusing the previous request's strings where the bytes are
// the same. It returns "" or why net/http should serve the connection
// instead.
func (c *conn) parse(head []byte) string {
	eol := bytes.Index(head, crlf)
	line := head[:eol]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[:sp]) != http.MethodPost {
		return reasonMethod
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return reasonVersion
	}
	target := line[:sp]
	if len(target) == 0 || target[0] != '/' {
		return reasonPath
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return reasonPath
		}
	}
	path, rawQuery, hasQuery := bytes.Cut(target, []byte("?"))
	pi := -1
	for i, p := range c.l.paths {
		if bytes.Equal(path, p) {
			pi = i
			break
		}
	}
	if pi < 0 {
		return reasonPath
	}
	if string(target) != c.target {
		c.target = string(target)
		c.query = ""
		if hasQuery {
			c.query = c.target[len(c.target)-len(rawQuery):]
		}
	}

	var (
		hosts      int
		host       []byte
		cl         int64 = -1
		closeAfter bool
	)
	c.seen = c.seen[:0]
	rest := head[eol+2:]
	for n := 0; ; n++ {
		eol = bytes.Index(rest, crlf)
		if eol == 0 {
			break // the blank line
		}
		if n == maxHeaders {
			return reasonHead
		}
		line, rest = rest[:eol], rest[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return reasonHead // no name, or obs-fold (a line starting with a space has no valid name)
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validName(name) || !validValue(value) {
			return reasonHead
		}
		key := c.canonical(name)
		switch key {
		case "Host":
			hosts++
			host = value
			continue
		case "Content-Length":
			if cl >= 0 {
				return reasonFraming
			}
			if cl = parseLength(value); cl < 0 {
				return reasonFraming
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return reasonFraming
		case "Connection":
			var ok bool
			if closeAfter, ok = connection(value, closeAfter); !ok {
				return reasonFraming
			}
		}
		c.setHeader(key, value)
	}
	if hosts != 1 {
		return reasonFraming
	}
	if string(host) != c.host {
		if !httpguts.ValidHostHeader(string(host)) {
			return reasonHead
		}
		c.host = string(host)
	}
	if len(c.hdr) != len(c.seen) {
		for k := range c.hdr {
			if !slices.Contains(c.seen, k) {
				delete(c.hdr, k)
			}
		}
	}
	// As net/http: HTTP/1.0's Pragma: no-cache means Cache-Control's.
	if p, ok := c.hdr["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" && len(c.hdr["Cache-Control"]) == 0 {
		c.hdr["Cache-Control"] = noCache
	}

	c.req = *c.tmpl
	c.url = url.URL{Path: c.l.cfg.Paths[pi], RawQuery: c.query, ForceQuery: hasQuery && len(rawQuery) == 0}
	r := &c.req
	r.Method = http.MethodPost
	r.URL = &c.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = c.hdr
	r.Host = c.host
	r.RemoteAddr = c.remote
	r.RequestURI = c.target
	r.Close = closeAfter
	c.body.remain = max(cl, 0)
	r.ContentLength = c.body.remain
	r.Body = http.NoBody
	if c.body.remain > 0 {
		r.Body = &c.body
	}
	return ""
}

var crlf = []byte("\r\n")

// setHeader records one header line of this request, keeping the
// previous request's value (and its string) when it is the same.
func (c *conn) setHeader(key string, value []byte) {
	vs := c.hdr[key]
	if slices.Contains(c.seen, key) {
		c.hdr[key] = append(slices.Clip(vs), string(value))
		return
	}
	c.seen = append(c.seen, key)
	if len(vs) == 1 && vs[0] == string(value) {
		return
	}
	c.hdr[key] = []string{string(value)}
}

// canonical returns name's canonical form (http.CanonicalHeaderKey), from
// the connection's table when it was sent before.
func (c *conn) canonical(name []byte) string {
	if k, ok := c.names[string(name)]; ok {
		return k
	}
	k := http.CanonicalHeaderKey(string(name))
	if len(c.names) < maxNames {
		c.names[string(name)] = k
	}
	return k
}

// connection reads a Connection header's tokens: close, keep-alive, or
// (false) another, which this server leaves to net/http.
func connection(v []byte, closeAfter bool) (bool, bool) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte(","))
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
		case asciiEqualFold(tok, "close"):
			closeAfter = true
		case asciiEqualFold(tok, "keep-alive"):
		default:
			return closeAfter, false
		}
	}
	return closeAfter, true
}

// wantsClose tells whether a handler set Connection: close on its answer.
func wantsClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		if c, _ := connection([]byte(v), false); c {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length value: decimal digits, at most 18
// (-1 otherwise).
func parseLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return -1
		}
		n = n*10 + int64(b-'0')
	}
	return n
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokenChars are the bytes of an HTTP token (RFC 9110 5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validName[T string | []byte](b T) bool {
	for i := range len(b) {
		if !tokenChars[b[i]] {
			return false
		}
	}
	return len(b) > 0
}

// validValue refuses control bytes other than a tab, as net/http does.
func validValue(b []byte) bool {
	for _, x := range b {
		if x < ' ' && x != '\t' || x == 0x7f {
			return false
		}
	}
	return true
}
