package flags

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Property values are what encoding/json produces with UseNumber: nil, bool,
// string, json.Number, []any and map[string]any. Go numbers (float64, int,
// int64, ...) passed by callers are accepted too.

// stringify turns a property or filter value into PostHog's string form: a
// string stays as it is, anything else becomes compact JSON as the server's
// serde_json writes it (posthog-compat §5.1). A number keeps its text when
// it is an integer (5 is "5"); any other number is read as a float64 and
// written with the shortest digits that read back the same (5.0 and 5.00 are
// "5.0", 1e3 is "1000.0"), which is also what posthog-python does with the
// float json.loads gives it. Properties are stored as their JSON text, so
// every path (live, precompute, the definitions' filter values) meets the
// same text and the same rule.
func stringify(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return numberText(string(x))
	case bool:
		if x {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case json.RawMessage:
		return string(x)
	}
	return string(appendJSON(nil, v))
}

// numberText is the server's text of a JSON number given as s: s itself
// for an integer that fits 64 bits, the float64 it denotes otherwise. Text
// that is not a number is returned unchanged.
func numberText(s string) string {
	if isInteger(s) {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return s
		}
		if _, err := strconv.ParseUint(s, 10, 64); err == nil {
			return s
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s // not a number, or out of float64's range
	}
	var buf [32]byte
	out := appendFloat(buf[:0], f)
	if string(out) == s {
		return s // already in the server's form: no allocation
	}
	return string(out)
}

// isInteger reports whether s is -?digits.
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatFloat writes a float as PostHog's server writes a JSON float
// (serde_json's shortest form): 5.0, 1000.0, 1.5, 0.0001, 1e16, 1.5e-7.
func formatFloat(f float64) string {
	var buf [32]byte
	return string(appendFloat(buf[:0], f))
}

// appendFloat appends f in serde_json's layout: the shortest round-trip
// digits, written out in full with ".0" when the value is an integer below
// 1e16, with the decimal point inside the digits below 1e16, as 0.000ddd
// down to 1e-5, and as d.ddde<exponent> (no "+") beyond. posthog-python
// writes the same text except for a "+" in a positive exponent (1e+16).
// An infinity or NaN, which JSON cannot hold, is null.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(dst, "null"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var ebuf [32]byte
	e := strconv.AppendFloat(ebuf[:0], f, 'e', -1, 64) // -d.ddde±xx
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	at := 0
	for e[at] != 'e' {
		at++
	}
	exp, _ := strconv.Atoi(string(e[at+1:]))
	var dbuf [24]byte
	digits := append(dbuf[:0], e[0])
	if at > 1 {
		digits = append(digits, e[2:at]...) // skip the point
	}
	n := len(digits)
	kk := exp + 1 // 10^(kk-1) <= |f| < 10^kk
	switch {
	case kk >= n && kk <= 16:
		dst = append(dst, digits...)
		for range kk - n {
			dst = append(dst, '0')
		}
		dst = append(dst, ".0"...)
	case kk > 0 && kk <= 16:
		dst = append(dst, digits[:kk]...)
		dst = append(dst, '.')
		dst = append(dst, digits[kk:]...)
	case kk > -5 && kk <= 0:
		dst = append(dst, "0."...)
		for range -kk {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if n > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	}
	return dst
}

// appendJSON appends v as compact JSON the way serde_json writes it:
// numbers as numberText, object keys sorted, and only '"', '\\' and control
// characters escaped in strings (encoding/json would also escape <, > and
// &, which the server keeps).
func appendJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendJSONString(dst, x)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSON(dst, x[k])
		}
		return append(dst, '}')
	case bool, json.Number, float64, float32, int, int64, int32, uint64:
		return append(dst, stringify(x)...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst
	}
	return append(dst, b...)
}

// appendJSONString appends s quoted as serde_json quotes it.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// truthy is PostHog's is_truthy: a bool is itself, a string is true when it
// lowercases to "true", a list when every element is truthy, anything else
// is false.
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return len(x) == 4 && strings.EqualFold(x, "true")
	case []any:
		for _, e := range x {
			if !truthy(e) {
				return false
			}
		}
		return true
	}
	return false
}

// isBoolish reports whether a filter value triggers the boolean rule of
// exact/is_not: a bool, "true"/"false" in any case, or a list of only those,
// nested lists included ([[]] is one: the server's
// is_truthy_or_falsy_property_value recurses, as posthog-python's does).
func isBoolish(v any) bool {
	switch x := v.(type) {
	case bool:
		return true
	case string:
		// Equal lengths keep EqualFold to ASCII: "falſe" (long s) is not
		// "false" once Python lower-cases it.
		return len(x) == 4 && strings.EqualFold(x, "true") || len(x) == 5 && strings.EqualFold(x, "false")
	case []any:
		for _, e := range x {
			if !isBoolish(e) {
				return false
			}
		}
		return true
	}
	return false
}

// equalLower reports whether s lower-cased with lowerFull equals lowered,
// which is lower-cased already. It allocates nothing for ASCII s, nor for
// a short s of any kind.
func equalLower(s, lowered string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			var buf [128]byte
			return string(appendLower(buf[:0], s)) == lowered
		}
		if i >= len(lowered) || asciiLower(c) != lowered[i] {
			return false
		}
	}
	return len(s) == len(lowered)
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiLowerString lowercases ASCII letters only, as PostHog's text
// operators do.
func asciiLowerString(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = asciiLower(b[j])
			}
			return string(b)
		}
	}
	return s
}

// hasPrefixFold, hasSuffixFold and containsFold compare with ASCII-only case
// folding; needle must already be ASCII-lowercased.
func hasPrefixFold(s, needle string) bool {
	if len(s) < len(needle) {
		return false
	}
	for i := 0; i < len(needle); i++ {
		if asciiLower(s[i]) != needle[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(s, needle string) bool {
	if len(s) < len(needle) {
		return false
	}
	return hasPrefixFold(s[len(s)-len(needle):], needle)
}

func containsFold(s, needle string) bool {
	if len(needle) == 0 {
		return true
	}
	for i := 0; i+len(needle) <= len(s); i++ {
		if asciiLower(s[i]) == needle[0] && hasPrefixFold(s[i:], needle) {
			return true
		}
	}
	return false
}

// parseNumber parses a value as a float64 the way PostHog does for
// gt/gte/lt/lte: JSON numbers, and strings of the form
// [+-]?digits[.digits][e[+-]digits] with no surrounding space. Booleans and
// everything else are not numbers.
func parseNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case string:
		if !isDecimalText(x) {
			return 0, false
		}
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	}
	return 0, false
}

// isDecimalText reports whether s is [+-]?digits[.digits][e[+-]?digits].
func isDecimalText(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == fs {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == es {
			return false
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// relativeDate is a filter date of the form -?<n><unit>: now minus n units.
type relativeDate struct {
	n    int
	unit byte // 'h', 'd', 'w', 'm' (months), 'y'
}

// parseRelativeDate parses -?<n><unit> with n < 10000.
func parseRelativeDate(s string) (relativeDate, bool) {
	t := strings.TrimPrefix(s, "-")
	if len(t) < 2 {
		return relativeDate{}, false
	}
	unit := t[len(t)-1]
	switch unit {
	case 'h', 'd', 'w', 'm', 'y':
	default:
		return relativeDate{}, false
	}
	digits := t[:len(t)-1]
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return relativeDate{}, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n >= 10000 {
		return relativeDate{}, false
	}
	return relativeDate{n: n, unit: unit}, true
}

// looksRelative reports whether s has the shape of a relative date, valid or
// not (so that "-10000d" is reported as invalid, not parsed as ISO-8601).
func looksRelative(s string) bool {
	t := strings.TrimPrefix(s, "-")
	if len(t) < 2 {
		return false
	}
	for i := 0; i < len(t)-1; i++ {
		if !isDigit(t[i]) {
			return false
		}
	}
	last := t[len(t)-1]
	return 'a' <= last && last <= 'z'
}

// at returns the threshold instant for now: now minus the amount, months and
// years clamped to the end of the month.
func (r relativeDate) at(now time.Time) time.Time {
	switch r.unit {
	case 'h':
		return now.Add(-time.Duration(r.n) * time.Hour)
	case 'd':
		return now.AddDate(0, 0, -r.n)
	case 'w':
		return now.AddDate(0, 0, -7*r.n)
	case 'm':
		return addMonthsClamped(now, -r.n)
	default:
		return addMonthsClamped(now, -12*r.n)
	}
}

// addMonthsClamped adds months, clamping the day to the end of the target
// month (Mar 31 - 1 month = Feb 28/29) instead of overflowing like AddDate.
func addMonthsClamped(t time.Time, months int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location()).AddDate(0, months, 0)
	last := daysIn(first.Year(), first.Month())
	if d > last {
		d = last
	}
	return first.AddDate(0, 0, d-1)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// flipAt returns the first instant at which the threshold (now minus the
// amount) is later than p (strict, for "before") or at or after p (for
// "after"): the moment a relative-date comparison against p changes. It
// returns the zero time when no such instant exists in range.
func (r relativeDate) flipAt(p time.Time, strict bool) time.Time {
	// threshold(now) = now - amount is non-decreasing in now. Search the
	// smallest now with threshold(now) > p (strict) or >= p.
	ok := func(now time.Time) bool {
		t := r.at(now)
		if strict {
			return t.After(p)
		}
		return !t.Before(p)
	}
	switch r.unit {
	case 'h', 'd', 'w':
		var d time.Duration
		switch r.unit {
		case 'h':
			d = time.Duration(r.n) * time.Hour
		case 'd':
			d = time.Duration(r.n) * 24 * time.Hour
		default:
			d = time.Duration(r.n) * 7 * 24 * time.Hour
		}
		// AddDate in a zone with DST can differ from a fixed duration by an
		// hour; search a window around the fixed estimate.
		lo, hi := p.Add(d).Add(-2*time.Hour), p.Add(d).Add(2*time.Hour)
		return searchFlip(lo, hi, ok)
	default:
		months := r.n
		if r.unit == 'y' {
			months *= 12
		}
		est := addMonthsClamped(p, months)
		return searchFlip(est.AddDate(0, 0, -4), est.AddDate(0, 0, 4), ok)
	}
}

// searchFlip returns the smallest instant in (lo, hi] for which ok holds,
// given that ok is monotone (false then true). The zero time means ok is
// false at hi.
func searchFlip(lo, hi time.Time, ok func(time.Time) bool) time.Time {
	if !ok(hi) {
		return time.Time{}
	}
	if ok(lo) {
		return lo
	}
	l, h := lo.UnixNano(), hi.UnixNano()
	for h-l > 1 {
		mid := l + (h-l)/2
		if ok(time.Unix(0, mid).In(hi.Location())) {
			h = mid
		} else {
			l = mid
		}
	}
	return time.Unix(0, h).In(hi.Location())
}

// dateLayouts are the ISO-8601 forms PostHog accepts: a date, or a date and
// time with a T or a space, optional seconds and fraction, and an optional
// offset (Z, +HH:MM, +HHMM or +HH).
var dateLayouts = func() []string {
	var out []string
	for _, sep := range []string{"T", " "} {
		for _, tm := range []string{"15:04:05.999999999", "15:04"} {
			for _, zone := range []string{"Z07:00", "Z0700", "Z07", ""} {
				out = append(out, "2006-01-02"+sep+tm+zone)
			}
		}
	}
	return append(out, "2006-01-02")
}()

// parseDate parses an ISO-8601 date or date-time. A value without an offset
// is wall time in loc (the team's time zone).
func parseDate(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 10 {
		return time.Time{}, false
	}
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// semver is a parsed version; PostHog's SDKs drop the pre-release and build
// suffix, and so does Vexil, so that local and remote evaluation agree.
type semver struct{ major, minor, patch uint64 }

func (a semver) cmp(b semver) int {
	switch {
	case a.major != b.major:
		return cmpU(a.major, b.major)
	case a.minor != b.minor:
		return cmpU(a.minor, b.minor)
	default:
		return cmpU(a.patch, b.patch)
	}
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// parseSemver parses "v1.2.3-rc1+build": trimmed, a leading v dropped,
// missing minor and patch counted as 0, leading zeros removed (as the
// server does), the pre-release and build suffix dropped. It also returns
// how many parts were written (1 to 3).
func parseSemver(s string) (semver, int, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return semver{}, 0, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return semver{}, 0, false
	}
	var nums [3]uint64
	for i, p := range parts {
		if p == "" {
			return semver{}, 0, false
		}
		for j := 0; j < len(p); j++ {
			if !isDigit(p[j]) {
				return semver{}, 0, false
			}
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return semver{}, 0, false
		}
		nums[i] = n
	}
	return semver{nums[0], nums[1], nums[2]}, len(parts), true
}

// semverRange is a half-open range [lo, hi); hiInf means no upper bound.
type semverRange struct {
	lo, hi semver
	hiInf  bool
}

func (r semverRange) contains(v semver) bool {
	return v.cmp(r.lo) >= 0 && (r.hiInf || v.cmp(r.hi) < 0)
}

// tildeRange: >= v and < (major, minor+1, 0).
func tildeRange(v semver) semverRange {
	return semverRange{lo: v, hi: semver{v.major, v.minor + 1, 0}}
}

// caretRange: >= v and < the next major; for 0.x the next minor; for 0.0.x
// the next patch.
func caretRange(v semver) semverRange {
	switch {
	case v.major > 0:
		return semverRange{lo: v, hi: semver{v.major + 1, 0, 0}}
	case v.minor > 0:
		return semverRange{lo: v, hi: semver{0, v.minor + 1, 0}}
	default:
		return semverRange{lo: v, hi: semver{0, 0, v.patch + 1}}
	}
}

// wildcardRange parses "1.*", "1.2.*", "1.*.*" and "*"; a full version
// "1.2.3" means ^1.2.3, as the server's semver requirement does.
func wildcardRange(s string) (semverRange, bool) {
	s = strings.TrimSpace(s)
	if s == "*" || s == "x" || s == "X" {
		return semverRange{hiInf: true}, true
	}
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	var fixed []string
	for i, p := range parts {
		if p == "*" || p == "x" || p == "X" {
			for _, rest := range parts[i:] {
				if rest != "*" && rest != "x" && rest != "X" {
					return semverRange{}, false
				}
			}
			break
		}
		fixed = append(fixed, p)
	}
	if len(fixed) == 0 || len(fixed) > 3 {
		return semverRange{}, false
	}
	v, _, ok := parseSemver(strings.Join(fixed, "."))
	if !ok {
		return semverRange{}, false
	}
	switch len(fixed) {
	case 1:
		return semverRange{lo: semver{v.major, 0, 0}, hi: semver{v.major + 1, 0, 0}}, true
	case 2:
		return semverRange{lo: semver{v.major, v.minor, 0}, hi: semver{v.major, v.minor + 1, 0}}, true
	default:
		if len(fixed) == len(parts) { // no wildcard at all
			return caretRange(v), true
		}
		return semverRange{lo: v, hi: semver{v.major, v.minor, v.patch + 1}}, true
	}
}
