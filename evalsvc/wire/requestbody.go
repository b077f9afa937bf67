package wire

import (
	"fmt"
	"strings"
)

// The body's top-level fields that the request reads, each in one slot.
const (
	fToken = iota
	fAPIKey
	fDollarToken
	fDistinctID
	fDollarDistinctID
	fGroups
	fDollarGroups
	fPersonProperties
	fDollarProperties
	fGroupProperties
	fDollarGroupProperties
	fFlagKeysToEvaluate
	fFlagKeys
	fEvaluationContexts
	fEvaluationEnvironments
	fGeoIPDisable
	fDisableFlags
	fDeviceID
	fDollarDeviceID
	fAnonDistinctID
	fEvaluationRuntime
	fTimezone
	numFields
)

// fieldOf maps a top-level key to its slot, or -1 for keys the request
// ignores.
func fieldOf(k []byte) int {
	switch string(k) {
	case "token":
		return fToken
	case "api_key":
		return fAPIKey
	case "$token":
		return fDollarToken
	case "distinct_id":
		return fDistinctID
	case "$distinct_id":
		return fDollarDistinctID
	case "groups":
		return fGroups
	case "$groups":
		return fDollarGroups
	case "person_properties":
		return fPersonProperties
	case "$properties":
		return fDollarProperties
	case "group_properties":
		return fGroupProperties
	case "$group_properties":
		return fDollarGroupProperties
	case "flag_keys_to_evaluate":
		return fFlagKeysToEvaluate
	case "flag_keys":
		return fFlagKeys
	case "evaluation_contexts":
		return fEvaluationContexts
	case "evaluation_environments":
		return fEvaluationEnvironments
	case "geoip_disable":
		return fGeoIPDisable
	case "disable_flags":
		return fDisableFlags
	case "device_id":
		return fDeviceID
	case "$device_id":
		return fDollarDeviceID
	case "$anon_distinct_id":
		return fAnonDistinctID
	case "evaluation_runtime":
		return fEvaluationRuntime
	case "timezone":
		return fTimezone
	}
	return -1
}

// Kinds of JSON value, by their first byte.
const (
	kindAbsent = 0
	kindNull   = 'n'
	kindString = '"'
	kindNumber = '0'
	kindBool   = 't'
	kindObject = '{'
	kindArray  = '['
)

// field is the last value a body gives one key, decoded as far as the
// request needs: scalars always, objects and arrays only for the fields
// that read them, in the form they are read.
type field struct {
	kind byte
	s    string // string value or number text
	b    bool
	// bad is a member or element of the wrong type: a group type whose
	// key or properties are not usable, or "" for a non-string list entry.
	bad    string
	hasBad bool

	props      map[string]any            // person properties
	groups     map[string]string         // group type → key
	groupProps map[string]map[string]any // group type → properties
	list       []string                  // a list of strings
}

// fieldNames are the names errors give the fields that limits apply to.
var fieldNames = [numFields]string{
	fGroups: "groups", fDollarGroups: "groups",
	fPersonProperties: "person_properties", fDollarProperties: "person_properties",
	fGroupProperties: "group_properties", fDollarGroupProperties: "group_properties",
	fFlagKeysToEvaluate: "flag_keys_to_evaluate", fFlagKeys: "flag_keys_to_evaluate",
	fEvaluationContexts: "evaluation_contexts", fEvaluationEnvironments: "evaluation_contexts",
}

// parseFlagsBody decodes a /flags body as encoding/json with UseNumber
// decoding it into a map[string]any would, then reads the fields from that
// map; it decodes only the fields it reads. The decoding stops as soon as
// the body passes one of lim's bounds on values.
func parseFlagsBody(raw []byte, lim Limits) (*FlagsRequest, error) {
	r := new(FlagsRequest)
	if err := parseFlagsBodyInto(r, raw, lim); err != nil {
		return nil, err
	}
	return r, nil
}

// parseFlagsBodyInto is parseFlagsBody into r, which it zeroes first.
func parseFlagsBodyInto(r *FlagsRequest, raw []byte, lim Limits) error {
	*r = FlagsRequest{}
	var f [numFields]field
	ok, over, at := scanFlagsBody(sanitizeJSON5(raw), &f, lim)
	switch over {
	case overValues:
		return limitError(CodeTooManyValues, fieldNames[at], "the request's properties, groups and key lists hold more than %d values", lim.MaxValues)
	case overString:
		return limitError(CodePropertyTooLarge, fieldNames[at], "a key or value is longer than %d bytes", lim.MaxStringBytes)
	}
	if !ok {
		return badRequest(CodeBadBody, "body", "the body must be a JSON object")
	}
	first := func(slots ...int) (*field, bool) {
		for _, i := range slots {
			if f[i].kind != kindAbsent && f[i].kind != kindNull {
				return &f[i], true
			}
		}
		return nil, false
	}
	if v, ok := first(fToken, fAPIKey, fDollarToken); ok {
		if v.kind != kindString {
			return badRequest(CodeBadBody, "token", "the token must be a string")
		}
		r.Token = v.s
	}
	v, ok := first(fDistinctID, fDollarDistinctID)
	if !ok {
		return badRequest(CodeMissingDistinctID, "distinct_id", "distinct_id is required")
	}
	switch v.kind {
	case kindString, kindNumber:
		r.DistinctID = v.s
	default:
		return badRequest(CodeBadBody, "distinct_id", "distinct_id must be a string or a number")
	}
	r.DistinctID = truncateDistinctID(r.DistinctID)
	if v, ok := first(fGroups, fDollarGroups); ok {
		if v.kind != kindObject {
			return badRequest(CodeBadBody, "groups", "groups must be an object of group type to key")
		}
		if v.hasBad {
			return badRequest(CodeBadBody, "groups."+v.bad, "a group key must be a string or a number")
		}
		r.Groups = v.groups
	}
	if v, ok := first(fPersonProperties, fDollarProperties); ok {
		if v.kind != kindObject {
			return badRequest(CodeBadBody, "person_properties", "person_properties must be an object")
		}
		r.PersonProperties = v.props
	}
	if v, ok := first(fGroupProperties, fDollarGroupProperties); ok {
		if v.kind != kindObject {
			return badRequest(CodeBadBody, "group_properties", "group_properties must be an object")
		}
		if v.hasBad {
			return badRequest(CodeBadBody, "group_properties."+v.bad, "group properties must be an object")
		}
		r.GroupProperties = v.groupProps
	}
	if v, ok := first(fFlagKeysToEvaluate, fFlagKeys); ok {
		if v.kind != kindArray || v.hasBad {
			return badRequest(CodeBadBody, "flag_keys_to_evaluate", "%s must be a list of strings", "flag_keys_to_evaluate")
		}
		r.FlagKeys = v.list
	}
	if v, ok := first(fEvaluationContexts, fEvaluationEnvironments); ok {
		if v.kind != kindArray || v.hasBad {
			return badRequest(CodeBadBody, "evaluation_contexts", "%s must be a list of strings", "evaluation_contexts")
		}
		r.EvaluationContexts = v.list
	}
	r.GeoIPDisable = f[fGeoIPDisable].boolean()
	r.DisableFlags = f[fDisableFlags].boolean()
	if v, ok := first(fDeviceID, fDollarDeviceID); ok {
		r.DeviceID = v.stringish()
	} else if d, ok := r.PersonProperties["$device_id"]; ok {
		r.DeviceID = stringish(d)
	}
	r.AnonDistinctID = f[fAnonDistinctID].stringish()
	r.EvaluationRuntime = f[fEvaluationRuntime].stringish()
	r.Timezone = f[fTimezone].stringish()
	return nil
}

func limitError(code, field, format string, args ...any) *RequestError {
	return &RequestError{Status: 413, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func (f *field) boolean() bool {
	switch f.kind {
	case kindBool:
		return f.b
	case kindString:
		return strings.EqualFold(f.s, "true")
	}
	return false
}

func (f *field) stringish() string {
	if f.kind == kindString || f.kind == kindNumber {
		return f.s
	}
	return ""
}

// truncateDistinctID cuts id to MaxDistinctIDLength runes.
func truncateDistinctID(id string) string {
	if len(id) <= MaxDistinctIDLength {
		return id
	}
	n := 0
	for i := range id {
		if n == MaxDistinctIDLength {
			return id[:i] // decoded JSON strings are valid UTF-8
		}
		n++
	}
	return id
}

// scanFlagsBody decodes the top-level object of b into f and reports
// whether b starts with a valid JSON object (encoding/json ignores what
// follows it). The values of the fields it decodes (properties, groups,
// key lists) are bounded by lim: past a bound it stops at once and over
// says which bound (overValues, overString) in which field's slot, at.
func scanFlagsBody(b []byte, f *[numFields]field, lim Limits) (ok bool, over, at int) {
	lim = lim.withDefaults()
	p := getParser(b)
	defer putParser(p)
	p.limited, p.budget, p.maxStr = true, lim.MaxValues, lim.MaxStringBytes
	p.ws()
	if p.i >= len(b) || b[p.i] != '{' {
		return false, overNone, 0 // null, another value, or not JSON
	}
	ok = p.eachMember(func(k []byte) bool {
		i := fieldOf(k)
		if i < 0 {
			return p.skip()
		}
		at = i
		f[i] = field{}
		return p.field(i, &f[i])
	}, func() {})
	return ok, p.over, at
}

// field decodes the value at p.i into slot i.
func (p *parser) field(i int, f *field) bool {
	p.ws()
	if p.i >= len(p.b) {
		return p.fail()
	}
	switch c := p.b[p.i]; c {
	case '"':
		start, end, plain, ok := p.scanString()
		if !ok {
			return false
		}
		t := p.text(start, end, plain)
		f.kind = kindString
		switch i {
		case fToken, fAPIKey, fDollarToken:
			f.s = p.token(t)
		default:
			f.s = string(t)
		}
		return true
	case 't', 'f':
		f.kind, f.b = kindBool, c == 't'
		if c == 't' {
			return p.literal("true")
		}
		return p.literal("false")
	case 'n':
		f.kind = kindNull
		return p.literal("null")
	case '{':
		f.kind = kindObject
		switch i {
		case fPersonProperties, fDollarProperties:
			m, ok := p.object()
			f.props = m
			return ok
		case fGroups, fDollarGroups:
			return p.groups(f)
		case fGroupProperties, fDollarGroupProperties:
			return p.groupProperties(f)
		}
		return p.skip()
	case '[':
		f.kind = kindArray
		switch i {
		case fFlagKeysToEvaluate, fFlagKeys, fEvaluationContexts, fEvaluationEnvironments:
			return p.stringList(f)
		}
		return p.skip()
	default:
		start := p.i
		if !p.number() {
			return false
		}
		f.kind, f.s = kindNumber, string(p.b[start:p.i])
		return true
	}
}

// groups decodes a groups object: each group type's key is a string or a
// number (kept as its text); null drops the type; anything else is bad.
func (p *parser) groups(f *field) bool {
	f.groups = map[string]string{}
	var bad map[string]bool
	return p.eachMember(func(kt []byte) bool {
		if !p.spend() || !p.fits(len(kt)) {
			return false
		}
		k := p.key(kt)
		if p.i < len(p.b) {
			switch c := p.b[p.i]; {
			case c == '"':
				start, end, plain, ok := p.scanString()
				if !ok {
					return false
				}
				t := p.text(start, end, plain)
				if !p.fits(len(t)) {
					return false
				}
				f.groups[k] = string(t)
				delete(bad, k)
				return true
			case c == '-' || isDigit(c):
				start := p.i
				if !p.number() || !p.fits(p.i-start) {
					return false
				}
				f.groups[k] = string(p.b[start:p.i])
				delete(bad, k)
				return true
			case c == 'n':
				delete(f.groups, k)
				delete(bad, k)
				return p.literal("null")
			}
		}
		delete(f.groups, k)
		if bad == nil {
			bad = map[string]bool{}
		}
		bad[k] = true
		return p.skip()
	}, func() { f.setBad(bad) })
}

// groupProperties decodes a group_properties object: each group type's
// properties are an object; null drops the type; anything else is bad.
func (p *parser) groupProperties(f *field) bool {
	f.groupProps = map[string]map[string]any{}
	var bad map[string]bool
	return p.eachMember(func(kt []byte) bool {
		if !p.spend() || !p.fits(len(kt)) {
			return false
		}
		k := p.key(kt)
		if p.i < len(p.b) {
			switch p.b[p.i] {
			case '{':
				m, ok := p.object()
				if !ok {
					return false
				}
				f.groupProps[k] = m
				delete(bad, k)
				return true
			case 'n':
				delete(f.groupProps, k)
				delete(bad, k)
				return p.literal("null")
			}
		}
		delete(f.groupProps, k)
		if bad == nil {
			bad = map[string]bool{}
		}
		bad[k] = true
		return p.skip()
	}, func() { f.setBad(bad) })
}

func (f *field) setBad(bad map[string]bool) {
	// The smallest bad key, so that the error names the same field every
	// time (map order is random).
	for k := range bad {
		if !f.hasBad || k < f.bad {
			f.bad, f.hasBad = k, true
		}
	}
}

// eachMember walks the object at p.i, calling member with each key's value
// (valid until the next key) and p.i at its value, which member must
// consume, then done at the end.
func (p *parser) eachMember(member func(k []byte) bool, done func()) bool {
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
		p.ws()
		if !member(p.text(start, end, plain)) {
			return false
		}
		end2, ok := p.next('}')
		if !ok {
			return false
		}
		if end2 {
			p.depth--
			done()
			return true
		}
	}
}

// stringList decodes an array that must hold only strings; another
// element marks f bad.
func (p *parser) stringList(f *field) bool {
	if !p.push() {
		return false
	}
	p.i++ // '['
	p.ws()
	f.list = []string{}
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return true
	}
	for {
		p.ws()
		if !p.spend() {
			return false
		}
		if p.i < len(p.b) && p.b[p.i] == '"' {
			start, end, plain, ok := p.scanString()
			if !ok {
				return false
			}
			t := p.text(start, end, plain)
			if !p.fits(len(t)) {
				return false
			}
			if !f.hasBad {
				f.list = append(f.list, string(t))
			}
		} else {
			f.hasBad = true
			f.list = nil
			if !p.skip() {
				return false
			}
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
}
