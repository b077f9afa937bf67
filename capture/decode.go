package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-dev/vexil/errcode"
)

// rawEvent is one event as PostHog's SDKs send it. posthog-js puts the
// distinct id and the token in properties and $set at the top level;
// posthog-node and posthog-python put distinct_id at the top level; the
// legacy /engage/ body has $distinct_id, $token and $set.
type rawEvent struct {
	Event      string                     `json:"event"`
	DistinctID json.RawMessage            `json:"distinct_id"`
	Properties map[string]json.RawMessage `json:"properties"`
	Timestamp  json.RawMessage            `json:"timestamp"`
	UUID       string                     `json:"uuid"`
	Offset     *float64                   `json:"offset"`
	Set        map[string]json.RawMessage `json:"$set"`
	SetOnce    map[string]json.RawMessage `json:"$set_once"`
	Token      string                     `json:"token"`
	APIKey     string                     `json:"api_key"`

	EngageDistinctID json.RawMessage `json:"$distinct_id"`
	EngageToken      string          `json:"$token"`

	// raw is the event as sent: the source of a missing uuid.
	raw []byte
}

// batch is a decoded request.
type batch struct {
	token  string
	sentAt time.Time // zero when the client did not say
	events []rawEvent
	engage bool
}

func invalid(field, format string, args ...any) *errcode.Error {
	return capErr(errcode.InvalidArgument, CodeInvalidPayload, field, format, args...)
}

// decode reads a request's events: the body (or GET's data parameter), in
// any of PostHog's encodings: JSON; gzip (compression=gzip-js or gzip, or
// Content-Encoding: gzip); base64 (compression=base64, or a body that is
// not JSON); a form whose data field holds one of these.
func (h *Handler) decode(r *http.Request, body []byte) (*batch, error) {
	q := r.URL.Query()
	compression := q.Get("compression")
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodGet {
		body = []byte(q.Get("data"))
	} else if t := bytes.TrimSpace(body); bytes.HasPrefix(t, []byte("data=")) ||
		ct == "application/x-www-form-urlencoded" && len(t) > 0 && t[0] != '{' && t[0] != '[' {
		// A form (posthog-js's base64 encoding); a JSON body sent with a
		// form Content-Type (curl -d) is JSON.
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, invalid("data", "the form body does not parse: %v", err)
		}
		body = []byte(form.Get("data"))
		if compression == "" {
			compression = form.Get("compression")
		}
	}
	gz := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	switch compression {
	case "", "base64":
	case "gzip-js", "gzip":
		gz = true
	default:
		return nil, capErr(errcode.InvalidArgument, CodeCompression, "compression", "compression %q is not supported: use gzip-js, gzip or base64", abbrev(compression))
	}
	// posthog-js may send gzip without saying so (text/plain, no query):
	// the magic bytes tell.
	gz = gz || len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b
	trimmed := bytes.TrimSpace(body)
	if !gz && len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != '[' {
		dec, err := decodeBase64(trimmed)
		if err != nil {
			return nil, invalid("data", "the body is neither JSON nor base64")
		}
		body = dec
	}
	if gz || len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b { // base64 of gzip too
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, invalid("body", "the body is not gzip: %v", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(h.cfg.MaxDecodedBytes)+1))
		if err != nil {
			return nil, invalid("body", "the gzip body does not decompress: %v", err)
		}
		if len(out) > h.cfg.MaxDecodedBytes {
			return nil, tooLarge("decompressed body", h.cfg.MaxDecodedBytes)
		}
		body = out
	}
	b, err := h.parse(body)
	if err != nil {
		return nil, err
	}
	b.engage = strings.HasPrefix(strings.Trim(r.URL.Path, "/"), "engage")
	if b.token == "" {
		b.token = firstNonEmpty(q.Get("token"), q.Get("api_key"))
	}
	if b.sentAt.IsZero() {
		// posthog-js sends its clock as _=<milliseconds>.
		if ms, err := strconv.ParseInt(q.Get("_"), 10, 64); err == nil && ms > 0 {
			b.sentAt = time.UnixMilli(ms)
		}
	}
	// Every event must carry the request's token, or none.
	for i := range b.events {
		e := &b.events[i]
		t := firstNonEmpty(e.Token, e.APIKey, e.EngageToken, rawString(e.Properties["token"]))
		switch {
		case t == "":
		case b.token == "":
			b.token = t
		case t != b.token:
			return nil, invalid("batch["+strconv.Itoa(i)+"].token", "the events of one request carry different project tokens")
		}
	}
	if b.token == "" {
		return nil, capErr(errcode.Unauthenticated, CodeNoToken, "token",
			"API key is missing: send the project token as api_key or token (in the body, an event's properties or the query)")
	}
	return b, nil
}

// parse reads the JSON: one event, an array of events, or an object with a
// batch array (posthog-node, posthog-python).
func (h *Handler) parse(body []byte) (*batch, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalid("body", "no events: the body is empty")
	}
	b := &batch{}
	var items []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, invalid("body", "the body is not a JSON array of events: %v", err)
		}
	case '{':
		var top struct {
			APIKey string            `json:"api_key"`
			Token  string            `json:"token"`
			SentAt json.RawMessage   `json:"sent_at"`
			Batch  []json.RawMessage `json:"batch"`
			Data   json.RawMessage   `json:"data"`
		}
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, invalid("body", "the body is not a JSON object: %v", err)
		}
		b.token = firstNonEmpty(top.APIKey, top.Token)
		if t, ok := parseTime(top.SentAt); ok {
			b.sentAt = t
		}
		switch {
		case top.Batch != nil:
			items = top.Batch
		case len(top.Data) > 0 && top.Data[0] == '[':
			if err := json.Unmarshal(top.Data, &items); err != nil {
				return nil, invalid("data", "data is not an array of events: %v", err)
			}
		default:
			items = []json.RawMessage{body}
		}
	default:
		return nil, invalid("body", "the body is not JSON")
	}
	if len(items) == 0 {
		return nil, invalid("batch", "no events")
	}
	if len(items) > h.cfg.MaxEvents {
		return nil, capErr(errcode.TooLarge, CodeTooManyEvents, "batch", "%d events in one request, over the limit of %d", len(items), h.cfg.MaxEvents).
			With("limit", strconv.Itoa(h.cfg.MaxEvents))
	}
	b.events = make([]rawEvent, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it, &b.events[i]); err != nil {
			return nil, invalid("batch["+strconv.Itoa(i)+"]", "the event does not parse: %v", err)
		}
		b.events[i].raw = it
	}
	return b, nil
}

func decodeBase64(b []byte) ([]byte, error) {
	s := strings.TrimRight(string(b), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if out, err := enc.DecodeString(s); err == nil {
			return out, nil
		}
	}
	return nil, errors.New("not base64")
}

// parseTime reads an ISO 8601 timestamp string or epoch milliseconds.
func parseTime(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, false
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	}
	if ms, err := strconv.ParseFloat(string(raw), 64); err == nil && ms > 0 {
		return time.UnixMilli(int64(ms)), true
	}
	return time.Time{}, false
}

// rawString returns the text of a JSON string, or of a number (PostHog
// accepts numeric distinct ids); "" otherwise.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw)
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func abbrev(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
