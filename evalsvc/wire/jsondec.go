package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a JSON decoder for the hot path: request bodies and stored
// properties. It accepts exactly what encoding/json accepts and builds the
// same values as encoding/json with UseNumber decoding into an any
// (json.Number, string, bool, nil, []any, map[string]any), with fewer
// allocations: maps and slices are made at their final size from scratch
// stacks, and short keys and short string and number values repeat across
// requests, so a per-parser cache hands back the same immutable string or
// boxed value instead of allocating a new one. No value aliases the input.

// ErrInvalidJSON is returned for input that encoding/json rejects.
var ErrInvalidJSON = errors.New("wire: invalid JSON")

// maxDepth is encoding/json's nesting limit: 10000 nested arrays and
// objects are accepted, one more is an error.
const maxDepth = 10000

// Cache sizes: the number of slots (a power of two) and the longest string
// kept. A slot holds the last string that hashed to it.
const (
	cacheSlots  = 512
	cacheMaxLen = 32
)

type member struct {
	key string
	val any
}

// parser decodes one input. Parsers are pooled with their scratch stacks
// and caches; get one with getParser and return it with putParser.
type parser struct {
	b     []byte
	i     int
	depth int
	err   error

	// With limited set (a request body), each value decoded spends one of
	// budget, and a key or a string or number value over maxStr bytes
	// stops the decoding: over then says which limit (a syntax error is
	// err).
	limited bool
	budget  int
	maxStr  int
	over    int

	vals []any    // elements of the arrays being decoded
	mems []member // members of the objects being decoded
	buf  []byte   // unquoted string under construction

	keys [cacheSlots]string // object keys
	strs [cacheSlots]any    // boxed string and json.Number values
	// tokens are the project tokens of the last requests (token): a
	// node serves few projects, and a token (47 bytes from PostHog) is
	// the longest string a /flags request usually sends.
	tokens [tokenSlots]string
}

// The token cache: its slots, and the longest token kept.
const (
	tokenSlots  = 16
	tokenMaxLen = 128
)

var parsers = sync.Pool{New: func() any { return new(parser) }}

func getParser(b []byte) *parser {
	p := parsers.Get().(*parser)
	p.b, p.i, p.depth, p.err = b, 0, 0, nil
	p.limited, p.budget, p.maxStr, p.over = false, 0, 0, overNone
	return p
}

func putParser(p *parser) {
	p.b = nil
	p.err = nil
	if cap(p.vals) > 4096 {
		p.vals = nil
	}
	if cap(p.mems) > 4096 {
		p.mems = nil
	}
	if cap(p.buf) > 64<<10 {
		p.buf = nil
	}
	parsers.Put(p)
}

// fail records a syntax error at the current offset and returns false.
func (p *parser) fail() bool {
	if p.err == nil {
		p.err = fmt.Errorf("%w: syntax error at offset %d", ErrInvalidJSON, p.i)
	}
	return false
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// Limits a limited parser can pass (parser.over).
const (
	overNone = iota
	overValues
	overString
)

// spend counts one value against the budget of a limited parser.
func (p *parser) spend() bool {
	if !p.limited {
		return true
	}
	p.budget--
	if p.budget < 0 {
		p.over = overValues
		return false
	}
	return true
}

// fits reports whether a key or a string or number value of n bytes fits
// a limited parser.
func (p *parser) fits(n int) bool {
	if p.limited && n > p.maxStr {
		p.over = overString
		return false
	}
	return true
}

// value decodes the value at p.i.
func (p *parser) value() (any, bool) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.fail()
	}
	if !p.spend() {
		return nil, false
	}
	switch c := p.b[p.i]; c {
	case '{':
		m, ok := p.object()
		if !ok {
			return nil, false
		}
		return m, true
	case '[':
		return p.array()
	case '"':
		start, end, plain, ok := p.scanString()
		if !ok {
			return nil, false
		}
		t := p.text(start, end, plain)
		if !p.fits(len(t)) {
			return nil, false
		}
		return p.stringValue(t), true
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return nil, p.literal("null")
	default:
		start := p.i
		if !p.number() || !p.fits(p.i-start) {
			return nil, false
		}
		return p.numberValue(p.b[start:p.i]), true
	}
}

// skip validates the value at p.i without building it.
func (p *parser) skip() bool {
	p.ws()
	if p.i >= len(p.b) {
		return p.fail()
	}
	switch p.b[p.i] {
	case '{':
		if !p.push() {
			return false
		}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			p.depth--
			return true
		}
		for {
			p.ws()
			if _, _, _, ok := p.scanString(); !ok || !p.colon() || !p.skip() {
				return false
			}
			end, ok := p.next('}')
			if !ok {
				return false
			}
			if end {
				p.depth--
				return true
			}
		}
	case '[':
		if !p.push() {
			return false
		}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			p.depth--
			return true
		}
		for {
			if !p.skip() {
				return false
			}
			end, ok := p.next(']')
			if !ok {
				return false
			}
			if end {
				p.depth--
				return true
			}
		}
	case '"':
		_, _, _, ok := p.scanString()
		return ok
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		return p.number()
	}
}

func (p *parser) push() bool {
	p.depth++
	if p.depth > maxDepth {
		return p.fail()
	}
	return true
}

// colon consumes the ':' after an object key.
func (p *parser) colon() bool {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return p.fail()
	}
	p.i++
	return true
}

// next consumes the ',' between elements or the closing byte; end reports
// the closing byte.
func (p *parser) next(closing byte) (end, ok bool) {
	p.ws()
	if p.i >= len(p.b) {
		return false, p.fail()
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, true
	case closing:
		p.i++
		return true, true
	}
	return false, p.fail()
}

func (p *parser) literal(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		// Point at the first byte that differs, as the scanner does.
		for j := 0; j < len(lit) && p.i < len(p.b) && p.b[p.i] == lit[j]; j++ {
			p.i++
		}
		return p.fail()
	}
	p.i += len(lit)
	return true
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() bool {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		p.i = i
		return p.fail()
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			p.i = i
			return p.fail()
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			p.i = i
			return p.fail()
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	p.i = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanString consumes the string at p.i (its opening quote) and returns the
// bounds of its contents. plain means the contents are the string's value:
// no escapes and valid UTF-8.
func (p *parser) scanString() (start, end int, plain, ok bool) {
	b := p.b
	if p.i >= len(b) || b[p.i] != '"' {
		return 0, 0, false, p.fail()
	}
	i := p.i + 1
	start = i
	ascii := true
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			plain = ascii || utf8.Valid(b[start:i])
			return start, i, plain, true
		case c == '\\':
			ascii = false
			plain = false
			i++
			if i >= len(b) {
				p.i = i
				return 0, 0, false, p.fail()
			}
			if i = p.escape(i); i < 0 {
				return 0, 0, false, false
			}
			// Escapes make the contents differ from the value; finish the
			// scan without the ASCII bookkeeping.
			return p.scanEscaped(start, i+1)
		case c < ' ':
			p.i = i
			return 0, 0, false, p.fail()
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	p.i = i
	return 0, 0, false, p.fail()
}

// escape validates the escape whose letter is at b[i] and returns the
// offset of its last byte, or -1 after recording the error.
func (p *parser) escape(i int) int {
	b := p.b
	switch b[i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i
	case 'u':
		for k := 1; k <= 4; k++ {
			if i+k >= len(b) || !isHex(b[i+k]) {
				p.i = i + k
				p.fail()
				return -1
			}
		}
		return i + 4
	}
	p.i = i
	p.fail()
	return -1
}

// scanEscaped continues scanString from i in a string known to need
// unquoting.
func (p *parser) scanEscaped(start, i int) (int, int, bool, bool) {
	b := p.b
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return start, i, false, true
		case c == '\\':
			i++
			if i >= len(b) {
				p.i = i
				return 0, 0, false, p.fail()
			}
			if i = p.escape(i); i < 0 {
				return 0, 0, false, false
			}
		case c < ' ':
			p.i = i
			return 0, 0, false, p.fail()
		}
	}
	p.i = i
	return 0, 0, false, p.fail()
}

// text returns the value of the string whose contents are b[start:end], as
// bytes that are valid until the next call.
func (p *parser) text(start, end int, plain bool) []byte {
	if plain {
		return p.b[start:end]
	}
	p.buf = unquote(p.buf[:0], p.b[start:end])
	return p.buf
}

// unquote appends the value of validated string contents s to b, as
// encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func unquote(b, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							r += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}

// hex4 decodes four validated hex digits.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func hash(b []byte, seed uint32) uint32 {
	h := seed ^ 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// key returns the string for an object key's value t.
func (p *parser) key(t []byte) string {
	if len(t) > cacheMaxLen {
		return string(t)
	}
	slot := &p.keys[hash(t, 0)%cacheSlots]
	if *slot != string(t) {
		*slot = string(t)
	}
	return *slot
}

// token returns the string of a project token's text t (from p.text),
// the one of the last request with that token when the cache has it.
func (p *parser) token(t []byte) string {
	if len(t) > tokenMaxLen {
		return string(t)
	}
	slot := &p.tokens[hash(t, 3)%tokenSlots]
	if *slot != string(t) {
		*slot = string(t)
	}
	return *slot
}

// stringValue returns the string for a string value's text t (from
// p.text).
func (p *parser) stringValue(t []byte) any {
	if len(t) > cacheMaxLen {
		return string(t)
	}
	slot := &p.strs[hash(t, 1)%cacheSlots]
	if s, ok := (*slot).(string); !ok || s != string(t) {
		*slot = string(t)
	}
	return *slot
}

func (p *parser) numberValue(t []byte) any {
	if len(t) > cacheMaxLen {
		return json.Number(t)
	}
	slot := &p.strs[hash(t, 2)%cacheSlots]
	if n, ok := (*slot).(json.Number); !ok || string(n) != string(t) {
		*slot = json.Number(t)
	}
	return *slot
}

// object decodes the object at p.i into a new map.
func (p *parser) object() (map[string]any, bool) {
	base := len(p.mems)
	if !p.members() {
		clear(p.mems[base:])
		p.mems = p.mems[:base]
		return nil, false
	}
	m := make(map[string]any, len(p.mems)-base)
	for _, e := range p.mems[base:] {
		m[e.key] = e.val
	}
	clear(p.mems[base:])
	p.mems = p.mems[:base]
	return m, true
}

// members decodes the members of the object at p.i onto p.mems, in order
// (a later duplicate key wins when they are stored).
func (p *parser) members() bool {
	if !p.push() {
		return false
	}
	p.i++ // '{'
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return true
	}
	for {
		p.ws()
		start, end, plain, ok := p.scanString()
		if !ok || !p.colon() {
			return false
		}
		kt := p.text(start, end, plain)
		if !p.fits(len(kt)) {
			return false
		}
		k := p.key(kt)
		v, ok := p.value()
		if !ok {
			return false
		}
		p.mems = append(p.mems, member{k, v})
		end2, ok := p.next('}')
		if !ok {
			return false
		}
		if end2 {
			p.depth--
			return true
		}
	}
}

// array decodes the array at p.i into a new []any (never nil).
func (p *parser) array() (any, bool) {
	if !p.push() {
		return nil, false
	}
	p.i++ // '['
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return []any{}, true
	}
	base := len(p.vals)
	for {
		v, ok := p.value()
		if !ok {
			clear(p.vals[base:])
			p.vals = p.vals[:base]
			return nil, false
		}
		p.vals = append(p.vals, v)
		end, ok := p.next(']')
		if !ok {
			clear(p.vals[base:])
			p.vals = p.vals[:base]
			return nil, false
		}
		if end {
			break
		}
	}
	p.depth--
	out := make([]any, len(p.vals)-base)
	copy(out, p.vals[base:])
	clear(p.vals[base:])
	p.vals = p.vals[:base]
	return out, true
}
