// Package cors answers the cross-origin requests of browsers.
//
// posthog-js runs on the customer's own site and calls Vexil from that
// origin: /flags, /decide, the early access list and the capture endpoints.
// Public does for those what PostHog's own servers do (posthog/utils.py's
// cors_response and the capture service): the caller's Origin is echoed
// with Access-Control-Allow-Credentials: true, so a page that sends
// cookies or uses withCredentials still reads the answer. That is safe on
// these endpoints because none of them reads a cookie: they authenticate
// with the project token in the request, which the page already holds.
//
// AllowList does the same for a configured list of origins only: the
// management API authenticates with personal keys and is off to browsers
// unless an operator names the origins of a trusted console.
package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxAge is how long a browser may cache a preflight answer. Chromium caps
// it at 2 hours (Firefox at 24); a longer value would only be ignored.
const MaxAge = 7200

// Methods are the methods the browser SDKs use.
const Methods = "GET, POST, OPTIONS"

// maxRequestHeaders bounds the Access-Control-Request-Headers value that is
// echoed, and maxHeaders the number of names in it.
const (
	maxRequestHeaders = 1024
	maxHeaders        = 32
	maxOrigin         = 512
)

// baseHeaders are always allowed: the ones posthog-js, posthog-node and
// PostHog's own servers name.
var baseHeaders = []string{"Content-Type", "X-Requested-With", "Authorization", "X-Request-Id"}

// Public answers every origin, as PostHog's public endpoints do.
func Public(next http.Handler) http.Handler {
	return handler(next, func(string) bool { return true })
}

// AllowList answers the listed origins only (scheme://host[:port], as a
// browser sends them); "*" in the list allows every origin. An empty list
// returns next unchanged: CORS stays off.
func AllowList(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[strings.ToLower(o)] = true
	}
	any := allowed["*"]
	return handler(next, func(origin string) bool { return any || allowed[strings.ToLower(origin)] })
}

// CheckOrigins validates a configured allow-list: each entry is "*" or an
// http(s) origin without path, query or trailing slash.
func CheckOrigins(origins []string) error {
	for i, o := range origins {
		if o == "*" {
			continue
		}
		if _, ok := normalize(o); !ok || strings.HasSuffix(o, "/") {
			return fmt.Errorf("origin %d %q: want scheme://host[:port] (http or https, no path) or *", i, o)
		}
	}
	return nil
}

// normalize returns scheme://host[:port] of a browser's Origin header, or
// false for "null", an opaque or malformed origin.
func normalize(origin string) (string, bool) {
	if origin == "" || len(origin) > maxOrigin {
		return "", false
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return u.Scheme + "://" + u.Host, true
}

// varyOrigin is the Vary value of every answer, shared rather than
// allocated per request: net/http never modifies a header value, and an
// Add after it appends to a copy (its capacity is its length).
var varyOrigin = []string{"Origin"}

func handler(next http.Handler, allow func(string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if _, ok := h["Vary"]; ok {
			h.Add("Vary", "Origin")
		} else {
			h["Vary"] = varyOrigin
		}
		origin, ok := normalize(r.Header.Get("Origin"))
		if !ok || !allow(origin) {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		// A preflight: OPTIONS with the method the page wants.
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", Methods)
			h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Get("Access-Control-Request-Headers")))
			h.Set("Access-Control-Max-Age", strconv.Itoa(MaxAge))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowHeaders is the base list plus the header names the preflight asks
// for, as the capture service mirrors them; only well-formed names are
// echoed, and no more than maxHeaders of them.
func allowHeaders(requested string) string {
	out := slices.Clone(baseHeaders)
	if len(requested) > maxRequestHeaders {
		return strings.Join(out, ", ")
	}
	for name := range strings.SplitSeq(requested, ",") {
		name = strings.TrimSpace(name)
		if name == "" || !token(name) || len(out) >= maxHeaders ||
			slices.ContainsFunc(out, func(h string) bool { return strings.EqualFold(h, name) }) {
			continue
		}
		out = append(out, name)
	}
	return strings.Join(out, ", ")
}

// token reports whether s is an HTTP header name (RFC 9110 token).
func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
