package wire

import (
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/vexil-dev/vexil/flags"
)

// Record is one flag in a response.
type Record struct {
	Key     string
	Enabled bool
	// Variant is empty for a boolean value.
	Variant string
	// Failed: the flag could not be decided (Enabled is false).
	Failed        bool
	Reason        flags.Reason
	ID            int64
	Version       int64
	Description   string
	Payload       []byte // raw JSON, nil for none
	HasExperiment bool
	// ErrorCode is the engine's code of a failed flag ("missing_context");
	// the gRPC API sends it, PostHog's shapes do not.
	ErrorCode string
	// Pre, when set, holds the parts of the v2 record that depend only on
	// the flag's definition, rendered once per definition rather than per
	// request. It is used only when it was rendered for this record's key,
	// id, version, description and experiment flag.
	Pre *Prerendered
}

// Prerendered is the definition-only JSON of a flag's v2 record: the map
// key and "key" field, the metadata and has_experiment. Writing them is
// most of a v2 record's cost (two escaped keys and a dozen constant
// pieces per flag, 50 flags per response), so a team renders them once.
type Prerendered struct {
	key           string
	id, version   int64
	description   string
	hasExperiment bool
	// head is `"<key>":{"key":"<key>","enabled":`; meta is
	// `},"metadata":{"id":…,"version":…,"description":…,"payload":`; tail
	// is `,"has_experiment":…}}`.
	head, meta, tail []byte
	// reasons are the flag's reason objects as rendered (the end of
	// appendV2Reason), kept by their code and condition index: a flag
	// answers with a handful of reasons, and rendering three strings a
	// record was a fifth of a request's instructions. A slot holds the
	// last reason rendered into it, checked whole before it is used.
	reasons [reasonSlots]atomic.Pointer[renderedReason]
}

const reasonSlots = 16

type renderedReason struct {
	reason flags.Reason
	json   []byte
}

// reasonJSON returns `,"reason":{…}` for r, rendered once per slot.
func (p *Prerendered) reasonJSON(r *flags.Reason) []byte {
	slot := &p.reasons[(len(r.Code)*31+r.ConditionIndex+1)&(reasonSlots-1)]
	if c := slot.Load(); c != nil && c.reason == *r {
		return c.json
	}
	c := &renderedReason{reason: *r, json: appendReason(nil, r)}
	slot.Store(c)
	return c.json
}

// Prerender renders the definition-only parts of a flag's v2 record.
func Prerender(key string, id, version int64, description string, hasExperiment bool) *Prerendered {
	p := &Prerendered{key: key, id: id, version: version, description: description, hasExperiment: hasExperiment}
	p.head = appendString(nil, key)
	p.head = append(p.head, `:{"key":`...)
	p.head = appendString(p.head, key)
	p.head = append(p.head, `,"enabled":`...)
	p.meta = append(p.meta, `},"metadata":{"id":`...)
	p.meta = strconv.AppendInt(p.meta, id, 10)
	p.meta = append(p.meta, `,"version":`...)
	p.meta = strconv.AppendInt(p.meta, version, 10)
	p.meta = append(p.meta, `,"description":`...)
	if description != "" {
		p.meta = appendString(p.meta, description)
	} else {
		p.meta = append(p.meta, "null"...)
	}
	p.meta = append(p.meta, `,"payload":`...)
	p.tail = append(p.tail, `,"has_experiment":`...)
	p.tail = strconv.AppendBool(p.tail, hasExperiment)
	p.tail = append(p.tail, "}}"...)
	return p
}

// fits reports whether p was rendered for rec's definition.
func (p *Prerendered) fits(rec *Record) bool {
	return p.key == rec.Key && p.id == rec.ID && p.version == rec.Version &&
		p.description == rec.Description && p.hasExperiment == rec.HasExperiment
}

// Response is what a /flags or /decide request gets.
type Response struct {
	Records              []Record
	ErrorsWhileComputing bool
	QuotaLimited         bool
	// RequestID is written in its text form: formatting it into the
	// answer rather than into a string is one allocation less a request.
	RequestID         uuid.UUID
	EvaluatedAtMillis int64
	// Config merges the browser config keys into the top level.
	Config bool
}

// browserConfig is the minimal set of config keys posthog-js accepts.
const browserConfig = `"supportedCompression":["gzip","gzip-js"],"sessionRecording":false,"toolbarParams":{},"isAuthenticated":false,"config":{"enable_collect_everything":true}`

// AppendJSON appends the response in the given shape to buf.
func (r *Response) AppendJSON(buf []byte, shape Shape) []byte {
	buf = append(buf, '{')
	switch shape {
	case ShapeV2:
		buf = append(buf, `"flags":{`...)
		if !r.QuotaLimited {
			for i := range r.Records {
				if i > 0 {
					buf = append(buf, ',')
				}
				rec := &r.Records[i]
				if rec.Pre != nil && rec.Pre.fits(rec) {
					buf = rec.appendV2Pre(buf)
					continue
				}
				buf = appendString(buf, rec.Key)
				buf = append(buf, ':')
				buf = rec.appendV2(buf)
			}
		}
		buf = append(buf, '}')
	case ShapeLegacy:
		buf = append(buf, `"featureFlags":{`...)
		n := 0
		if !r.QuotaLimited {
			for i := range r.Records {
				rec := &r.Records[i]
				if rec.Failed {
					continue // unknown, not false: the SDK must not cache it
				}
				if n > 0 {
					buf = append(buf, ',')
				}
				n++
				buf = appendString(buf, rec.Key)
				buf = append(buf, ':')
				buf = rec.appendValue(buf)
			}
		}
		buf = append(buf, `},"featureFlagPayloads":{`...)
		n = 0
		if !r.QuotaLimited {
			for i := range r.Records {
				rec := &r.Records[i]
				if rec.Failed || !rec.Enabled || rec.Payload == nil {
					continue
				}
				if n > 0 {
					buf = append(buf, ',')
				}
				n++
				buf = appendString(buf, rec.Key)
				buf = append(buf, ':')
				buf = append(buf, rec.Payload...)
			}
		}
		buf = append(buf, '}')
	case ShapeDecideV1:
		buf = append(buf, `"featureFlags":[`...)
		n := 0
		for i := range r.Records {
			if rec := &r.Records[i]; rec.Enabled && !r.QuotaLimited {
				if n > 0 {
					buf = append(buf, ',')
				}
				n++
				buf = appendString(buf, rec.Key)
			}
		}
		buf = append(buf, ']')
	case ShapeDecideV2:
		buf = append(buf, `"featureFlags":{`...)
		n := 0
		for i := range r.Records {
			if rec := &r.Records[i]; rec.Enabled && !r.QuotaLimited {
				if n > 0 {
					buf = append(buf, ',')
				}
				n++
				buf = appendString(buf, rec.Key)
				buf = append(buf, ':')
				buf = rec.appendValue(buf)
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `,"errorsWhileComputingFlags":`...)
	buf = strconv.AppendBool(buf, r.ErrorsWhileComputing)
	if r.QuotaLimited {
		buf = append(buf, `,"quotaLimited":["feature_flags"]`...)
	}
	buf = append(buf, `,"requestId":"`...)
	buf = appendUUID(buf, r.RequestID)
	buf = append(buf, '"')
	buf = append(buf, `,"evaluatedAt":`...)
	buf = strconv.AppendInt(buf, r.EvaluatedAtMillis, 10)
	if r.Config {
		buf = append(buf, ',')
		buf = append(buf, browserConfig...)
	}
	return append(buf, '}')
}

// appendUUID appends u's text form (8-4-4-4-12 lowercase hex digits),
// as u.String() spells it.
func appendUUID(buf []byte, u uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf = append(buf, '-')
		}
		buf = append(buf, hex[b>>4], hex[b&0xf])
	}
	return buf
}

// appendValue writes the flag's value: the variant, or the enabled bool.
func (rec *Record) appendValue(buf []byte) []byte {
	if rec.Variant != "" {
		return appendString(buf, rec.Variant)
	}
	return strconv.AppendBool(buf, rec.Enabled)
}

func (rec *Record) appendV2(buf []byte) []byte {
	buf = append(buf, `{"key":`...)
	buf = appendString(buf, rec.Key)
	buf = append(buf, `,"enabled":`...)
	buf = strconv.AppendBool(buf, rec.Enabled)
	buf = rec.appendV2Reason(buf)
	buf = append(buf, `},"metadata":{"id":`...)
	buf = strconv.AppendInt(buf, rec.ID, 10)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendInt(buf, rec.Version, 10)
	buf = append(buf, `,"description":`...)
	if rec.Description != "" {
		buf = appendString(buf, rec.Description)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"payload":`...)
	if rec.Enabled && rec.Payload != nil {
		buf = append(buf, rec.Payload...)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"has_experiment":`...)
	buf = strconv.AppendBool(buf, rec.HasExperiment)
	return append(buf, "}}"...)
}

// appendV2Pre is `"<key>":` and appendV2 with rec.Pre's parts: the same
// bytes.
func (rec *Record) appendV2Pre(buf []byte) []byte {
	p := rec.Pre
	buf = append(buf, p.head...)
	buf = strconv.AppendBool(buf, rec.Enabled)
	buf = rec.appendV2Variant(buf)
	buf = append(buf, p.reasonJSON(&rec.Reason)...)
	buf = append(buf, p.meta...)
	if rec.Enabled && rec.Payload != nil {
		buf = append(buf, rec.Payload...)
	} else {
		buf = append(buf, "null"...)
	}
	return append(buf, p.tail...)
}

// appendV2Reason writes a v2 record from "variant" to the reason's
// description.
func (rec *Record) appendV2Reason(buf []byte) []byte {
	return appendReason(rec.appendV2Variant(buf), &rec.Reason)
}

// appendV2Variant writes a v2 record's "variant" and "failed".
func (rec *Record) appendV2Variant(buf []byte) []byte {
	buf = append(buf, `,"variant":`...)
	if rec.Variant != "" {
		buf = appendString(buf, rec.Variant)
	} else {
		buf = append(buf, "null"...)
	}
	if rec.Failed {
		buf = append(buf, `,"failed":true`...)
	}
	return buf
}

// appendReason writes `,"reason":{…}` up to the description (the object
// is closed by the metadata that follows).
func appendReason(buf []byte, r *flags.Reason) []byte {
	buf = append(buf, `,"reason":{"code":`...)
	buf = appendString(buf, string(r.Code))
	buf = append(buf, `,"condition_index":`...)
	if r.ConditionIndex >= 0 {
		buf = strconv.AppendInt(buf, int64(r.ConditionIndex), 10)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"description":`...)
	return appendString(buf, r.Description)
}

const hexDigits = "0123456789abcdef"

// plainPrefix is the length of s's longest prefix that JSON takes as it
// is: printable ASCII other than the quote and the backslash. Eight bytes at a time: the
// reasons, variants and keys of an answer are all plain, and a byte at a
// time, with four comparisons each, was a tenth of a /flags request's CPU.
func plainPrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, b := x^(ones*'"'), x^(ones*'\\')
		// A byte's high bit is set in: x, when it is not ASCII; x - 0x20
		// (with ^x: no borrow from a high byte), when it is under 0x20;
		// q - 1 (with ^q), when it is the quote; likewise b for the
		// backslash. A carry can mark a byte above one that is marked:
		// the loop below finds the first from i.
		if (x|(x-ones*0x20)&^x|(q-ones)&^q|(b-ones)&^b)&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
	}
	return i
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	n := plainPrefix(s)
	buf = append(buf, '"')
	if n == len(s) {
		buf = append(buf, s...)
		return append(buf, '"')
	}
	start := 0
	for i := n; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
