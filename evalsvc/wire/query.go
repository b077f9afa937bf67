package wire

import (
	"net/url"
	"strings"
)

// Query is a request's raw query string (URL.RawQuery), read one parameter
// at a time. A /flags request needs three parameters (v, config,
// compression); url.ParseQuery built a map of every parameter for them, a
// tenth of the request's garbage. Query answers as the url.Values that
// url.ParseQuery returns for the same string would: the first value of a
// parameter, keys and values unescaped (%XX, '+' as a space), and the pairs
// that ParseQuery drops (a ';' in the pair, a bad escape in its key or
// value) skipped. An unescaped key or value is allocated only when it holds
// an escape.
type Query string

// maxQueryParams is url.ParseQuery's default bound on the parameters of a
// query (GODEBUG urlmaxqueryparams): past it ParseQuery returns no
// parameter at all.
const maxQueryParams = 10000

// Lookup returns the first value of the parameter key and whether the query
// has it.
func (q Query) Lookup(key string) (string, bool) {
	raw := string(q)
	if strings.Count(raw, "&") >= maxQueryParams {
		// Beyond the default bound ParseQuery decides (its GODEBUG may move
		// the bound); such a query is never an SDK's.
		vs, _ := url.ParseQuery(raw)
		if v, ok := vs[key]; ok {
			return v[0], true
		}
		return "", false
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if !keyIs(k, key) {
			continue
		}
		if v, ok := unescapeQuery(v); ok {
			return v, true
		}
	}
	return "", false
}

// Get returns the first value of the parameter key, or "".
func (q Query) Get(key string) string {
	v, _ := q.Lookup(key)
	return v
}

// Has reports whether the query has the parameter key.
func (q Query) Has(key string) bool {
	_, ok := q.Lookup(key)
	return ok
}

// keyIs reports whether the raw key k unescapes to key (a key whose escape
// is bad is no key: ParseQuery drops its pair).
func keyIs(k, key string) bool {
	if strings.IndexByte(k, '%') < 0 && strings.IndexByte(k, '+') < 0 {
		return k == key
	}
	u, ok := unescapeQuery(k)
	return ok && u == key
}

// unescapeQuery is url.QueryUnescape, without its copy when s has nothing
// to unescape.
func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
