package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RequestError is a request the server refuses, with the HTTP status the
// SDKs expect and a stable code.
type RequestError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *RequestError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Field, e.Message, e.Code)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// Stable request error codes.
const (
	CodeMissingToken      = "missing_token"
	CodeMissingDistinctID = "missing_distinct_id"
	CodeBadBody           = "invalid_body"
	CodeBadContentType    = "unsupported_content_type"
	CodeBadCompression    = "unsupported_compression"
	CodeBodyTooLarge      = "body_too_large"
	// CodeTooManyValues: the properties, groups and key lists of a request
	// hold more than Limits.MaxValues values (413).
	CodeTooManyValues = "too_many_values"
	// CodePropertyTooLarge: a key or a value there is longer than
	// Limits.MaxStringBytes (413).
	CodePropertyTooLarge = "property_too_large"
)

// Limits bound what decoding one request may cost. Zero fields take the
// defaults. With them a request's decoded values hold at most about
// MaxDecodedBytes of text in at most MaxValues values, whatever its
// compression; and a regex filter (flags.MaxRegexProgram) runs on at most
// MaxStringBytes of a value.
type Limits struct {
	// MaxDecodedBytes bounds the body after gzip decompression; the
	// decompression stops one byte past it. Default 2 MiB.
	MaxDecodedBytes int
	// MaxValues bounds the JSON values in the request's person and group
	// properties, groups and key lists together, each member and element
	// of a nested value counted (a property whose value is a list of three
	// is four values). Decoding stops at the first value past it. Default
	// 10000.
	MaxValues int
	// MaxStringBytes bounds each key and each string or number value
	// there, in bytes once unquoted. Default 8 KiB.
	MaxStringBytes int
}

// Default limits.
const (
	DefaultMaxDecodedBytes = 2 << 20
	DefaultMaxValues       = 10_000
	DefaultMaxStringBytes  = 8 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxValues
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = DefaultMaxStringBytes
	}
	return l
}

func badRequest(code, field, format string, args ...any) *RequestError {
	return &RequestError{Status: 400, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// FlagsRequest is a decoded /flags or /decide body.
type FlagsRequest struct {
	Token      string
	DistinctID string
	// Groups maps a group type name to the group key (numbers as text).
	Groups           map[string]string
	PersonProperties map[string]any
	GroupProperties  map[string]map[string]any
	// FlagKeys, when not nil, limits evaluation to these keys.
	FlagKeys           []string
	GeoIPDisable       bool
	DisableFlags       bool
	DeviceID           string
	AnonDistinctID     string
	EvaluationContexts []string
	EvaluationRuntime  string
	Timezone           string
}

// MaxDistinctIDLength is where a distinct id is cut, as PostHog does.
const MaxDistinctIDLength = 200

// DecodeFlagsRequest decodes a body as PostHog's server does: JSON, gzip
// (by the compression parameter, the Content-Encoding header or the magic
// bytes), base64, and the browser's form encoding (data=<base64>), within
// lim: a body past one of its bounds is refused (413, CodeBodyTooLarge,
// CodeTooManyValues or CodePropertyTooLarge, naming the field) as soon as
// the decoding reaches the bound.
func DecodeFlagsRequest(contentType, contentEncoding string, query Query, body []byte, lim Limits) (*FlagsRequest, error) {
	r := new(FlagsRequest)
	if err := DecodeFlagsRequestInto(r, contentType, contentEncoding, query, body, lim); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeFlagsRequestInto is DecodeFlagsRequest into r (zeroed first), for
// a caller that keeps one FlagsRequest per request slot rather than leave
// one to the collector per request. What r holds is r's own, as
// DecodeFlagsRequest's result is; on an error r holds nothing of use.
func DecodeFlagsRequestInto(r *FlagsRequest, contentType, contentEncoding string, query Query, body []byte, lim Limits) error {
	lim = lim.withDefaults()
	raw, err := decodeBody(contentType, contentEncoding, query.Get("compression"), body, lim.MaxDecodedBytes)
	if err != nil {
		return err
	}
	return parseFlagsBodyInto(r, raw, lim)
}

// DecodeFlagsJSON decodes a plain JSON /flags body (no compression or
// encoding) by the same rules and within the same limits as
// DecodeFlagsRequest: the gRPC API builds one from its call, so that both
// transports check a request alike.
func DecodeFlagsJSON(body []byte, lim Limits) (*FlagsRequest, error) {
	lim = lim.withDefaults()
	if len(body) > lim.MaxDecodedBytes {
		return nil, &RequestError{Status: 413, Code: CodeBodyTooLarge, Field: "body", Message: fmt.Sprintf("the request is over %d bytes", lim.MaxDecodedBytes)}
	}
	return parseFlagsBody(body, lim)
}

func decodeBody(contentType, contentEncoding, compression string, body []byte, maxDecoded int) ([]byte, error) {
	mediaType := ""
	switch contentType {
	case "", "application/json": // what the server SDKs send: no parse, no allocation
		mediaType = contentType
	default:
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, badRequest(CodeBadContentType, "Content-Type", "cannot parse content type %q", contentType)
		}
		mediaType = mt
	}
	switch compression {
	case "", "gzip", "gzip-js", "base64":
	default:
		return nil, badRequest(CodeBadCompression, "compression", "unsupported compression %q", compression)
	}
	switch mediaType {
	case "", "application/json", "text/plain":
		gz := compression == "gzip" || compression == "gzip-js" ||
			strings.Contains(strings.ToLower(contentEncoding), "gzip") ||
			len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b
		if gz {
			out, err := gunzip(bytes.NewReader(body), maxDecoded)
			if err != nil {
				return nil, err
			}
			body = out
		}
		if json.Valid(sanitizeJSON5(body)) {
			return body, nil
		}
		out, err := base64Body(string(body))
		if err != nil {
			return nil, badRequest(CodeBadBody, "body", "the body is neither JSON nor base64-encoded JSON")
		}
		return out, nil
	case "application/x-www-form-urlencoded":
		if compression == "gzip" || compression == "gzip-js" {
			return nil, badRequest(CodeBadCompression, "compression", "gzip is not accepted with a form body")
		}
		s := string(body)
		if json.Valid(sanitizeJSON5(body)) {
			return body, nil // plain JSON sent as a form (curl -d): accepted
		}
		if dec, err := url.QueryUnescape(s); err == nil {
			s = dec
		}
		if i := strings.Index(s, "data="); i >= 0 {
			s = s[i+len("data="):]
			if j := strings.IndexByte(s, '&'); j >= 0 {
				s = s[:j]
			}
		}
		out, err := base64Body(s)
		if err != nil {
			return nil, badRequest(CodeBadBody, "data", "the form data is not base64-encoded JSON")
		}
		return []byte(strings.ToValidUTF8(string(out), string(utf8.RuneError))), nil
	default:
		return nil, badRequest(CodeBadContentType, "Content-Type", "unsupported content type %q", mediaType)
	}
}

// gunzip decompresses r, reading no more of it than it needs for max+1
// bytes of output: a body that inflates past max is refused once that much
// is out, whatever it would inflate to.
func gunzip(r io.Reader, max int) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, badRequest(CodeBadBody, "body", "invalid gzip data")
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, badRequest(CodeBadBody, "body", "invalid gzip data")
	}
	if len(out) > max {
		return nil, &RequestError{Status: 413, Code: CodeBodyTooLarge, Field: "body", Message: fmt.Sprintf("the decompressed body is over %d bytes", max)}
	}
	return out, nil
}

// base64Body URL-decodes, strips spaces, pads and base64-decodes s.
func base64Body(s string) ([]byte, error) {
	if dec, err := url.QueryUnescape(s); err == nil {
		s = dec
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if m := len(s) % 4; m != 0 {
		s += strings.Repeat("=", 4-m)
	}
	out, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		out, err = base64.URLEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
	}
	if !json.Valid(sanitizeJSON5(out)) {
		return nil, errors.New("not JSON")
	}
	return out, nil
}

// sanitizeJSON5 replaces the bare tokens NaN, Infinity and -Infinity outside
// strings with null, as PostHog's JSON5 parsing turns them into null.
func sanitizeJSON5(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, "null"...)
			i += len("Infinity") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

func stringish(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	}
	return ""
}

// Shape is the response shape of a /flags or /decide request.
type Shape int

// Response shapes (docs/posthog-compat.md §1.2).
const (
	ShapeV2       Shape = iota // "flags" map of records
	ShapeLegacy                // "featureFlags" + "featureFlagPayloads", every flag
	ShapeDecideV1              // "featureFlags": keys of enabled flags
	ShapeDecideV2              // "featureFlags": enabled flags only, key → true or variant
)

// ChooseShape picks the response shape from the endpoint and the query, and
// whether browser config keys are merged in.
func ChooseShape(decide bool, query Query) (Shape, bool) {
	vs, hasV := query.Lookup("v")
	v := 1
	if hasV {
		if n, err := strconv.Atoi(vs); err == nil {
			v = n
		}
	}
	cs, hasConfig := query.Lookup("config")
	config := cs == "true"
	if decide {
		switch {
		case v >= 4:
			return ShapeV2, true
		case v == 3:
			return ShapeLegacy, true
		case v == 2:
			return ShapeDecideV2, true
		default:
			return ShapeDecideV1, true
		}
	}
	if !hasV && !hasConfig {
		return ShapeV2, true
	}
	if v >= 2 {
		return ShapeV2, config
	}
	return ShapeLegacy, config
}
