package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// The JSON encoding is one object per message with a "type" member naming
// the kind; docs/ingest.md lists the members of each kind. Unknown members
// are refused (ReasonUnknownField), null means absent, integers must be
// integer literals, property values keep their JSON text.

// The JSON "type" values.
const (
	TypePersonUpdate     = "person_update"
	TypePersonMerge      = "person_merge"
	TypePersonDelete     = "person_delete"
	TypeGroupUpdate      = "group_update"
	TypeGroupTypeMapping = "group_type_mapping"
	TypeEvent            = "event"
)

// mergeKinds maps the JSON "merge_kind" values to the enum.
var mergeKinds = map[string]ingestv1.MergeKind{
	"identify": ingestv1.MergeKind_MERGE_KIND_IDENTIFY,
	"alias":    ingestv1.MergeKind_MERGE_KIND_ALIAS,
	"merge":    ingestv1.MergeKind_MERGE_KIND_MERGE,
}

// jsonObject is one decoded JSON object: member name -> raw value, with the
// names already consumed removed as the decoder takes them.
type jsonObject map[string]json.RawMessage

func decodeJSON(data []byte) (*ingestv1.Envelope, error) {
	if !utf8.Valid(data) {
		return nil, poisonf(ReasonUndecodable, "JSON payload is not valid UTF-8")
	}
	var obj jsonObject
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, poisonf(ReasonUndecodable, "JSON: %v", err)
	}
	if obj == nil {
		return nil, poisonf(ReasonUndecodable, "JSON payload is null, not an object")
	}
	d := jsonDecoder{obj: obj}
	typ := d.str("type", true)
	if d.err != nil {
		return nil, d.err
	}
	env := new(ingestv1.Envelope)
	switch typ {
	case TypePersonUpdate:
		m := &ingestv1.PersonUpdate{
			Team:        d.int64("team"),
			PersonId:    d.str("person_id", false),
			DistinctIds: d.strs("distinct_ids"),
			Set:         d.props("$set"),
			SetOnce:     d.props("$set_once"),
			Unset:       d.strs("$unset"),
			Version:     d.optInt64("version"),
			Timestamp:   d.timestamp("timestamp"),
		}
		env.Kind = &ingestv1.Envelope_PersonUpdate{PersonUpdate: m}
	case TypePersonMerge:
		m := &ingestv1.PersonMerge{
			Team:        d.int64("team"),
			PersonId:    d.str("person_id", false),
			DistinctIds: d.strs("distinct_ids"),
			Version:     d.optInt64("version"),
			Timestamp:   d.timestamp("timestamp"),
		}
		if k := d.str("merge_kind", false); k != "" && d.err == nil {
			mk, ok := mergeKinds[k]
			if !ok {
				d.fail(poisonf(ReasonInvalidValue, "merge_kind %q is not identify, alias or merge", k))
			}
			m.MergeKind = mk
		}
		env.Kind = &ingestv1.Envelope_PersonMerge{PersonMerge: m}
	case TypePersonDelete:
		m := &ingestv1.PersonDelete{
			Team:      d.int64("team"),
			PersonId:  d.str("person_id", false),
			Version:   d.optInt64("version"),
			Timestamp: d.timestamp("timestamp"),
		}
		env.Kind = &ingestv1.Envelope_PersonDelete{PersonDelete: m}
	case TypeGroupUpdate:
		m := &ingestv1.GroupUpdate{
			Team:           d.int64("team"),
			GroupTypeIndex: d.int32("group_type_index"),
			GroupKey:       d.str("group_key", false),
			Set:            d.props("$set"),
			Unset:          d.strs("$unset"),
			Version:        d.optInt64("version"),
			Timestamp:      d.timestamp("timestamp"),
		}
		env.Kind = &ingestv1.Envelope_GroupUpdate{GroupUpdate: m}
	case TypeGroupTypeMapping:
		m := &ingestv1.GroupTypeMapping{
			Team:           d.int64("team"),
			GroupTypeIndex: d.int32("group_type_index"),
			Name:           d.str("name", false),
		}
		env.Kind = &ingestv1.Envelope_GroupTypeMapping{GroupTypeMapping: m}
	case TypeEvent:
		m := &ingestv1.Event{
			Team:       d.int64("team"),
			DistinctId: d.str("distinct_id", false),
			Event:      d.str("event", false),
			Timestamp:  d.timestamp("timestamp"),
			Uuid:       d.str("uuid", false),
			Properties: d.props("properties"),
		}
		env.Kind = &ingestv1.Envelope_Event{Event: m}
	default:
		return nil, poisonf(ReasonUnknownKind, "unknown type %q", typ)
	}
	if d.err != nil {
		return nil, d.err
	}
	if names := d.leftover(); names != "" {
		return nil, poisonf(ReasonUnknownField, "a %s has no member %s", typ, names)
	}
	return env, nil
}

// jsonDecoder takes members out of a jsonObject, keeping the first error.
type jsonDecoder struct {
	obj jsonObject
	err error
}

func (d *jsonDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// take removes and returns member name; absent and null both give nil.
func (d *jsonDecoder) take(name string) json.RawMessage {
	raw, ok := d.obj[name]
	if !ok {
		return nil
	}
	delete(d.obj, name)
	if bytes.Equal(raw, []byte("null")) {
		return nil
	}
	return raw
}

func (d *jsonDecoder) leftover() string {
	if len(d.obj) == 0 {
		return ""
	}
	names := make([]string, 0, len(d.obj))
	for n := range d.obj {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func wrongType(name, want string, raw json.RawMessage) *Error {
	return poisonf(ReasonWrongType, "%s must be %s, not %s", name, want, abbrev(string(raw)))
}

func (d *jsonDecoder) str(name string, required bool) string {
	raw := d.take(name)
	if raw == nil {
		if required {
			d.fail(poisonf(ReasonMissingField, "%s is required", name))
		}
		return ""
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		d.fail(wrongType(name, "a string", raw))
	}
	return s
}

func (d *jsonDecoder) strs(name string) []string {
	raw := d.take(name)
	if raw == nil {
		return nil
	}
	var ss []string
	if raw[0] != '[' || json.Unmarshal(raw, &ss) != nil {
		d.fail(wrongType(name, "an array of strings", raw))
		return nil
	}
	return ss
}

// intText parses a JSON integer literal (no fraction, no exponent).
func (d *jsonDecoder) intText(name string, raw json.RawMessage, bits int) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			d.fail(poisonf(ReasonInvalidValue, "%s %s is out of range", name, raw))
		} else {
			d.fail(wrongType(name, "an integer", raw))
		}
		return 0, false
	}
	return n, true
}

func (d *jsonDecoder) int64(name string) int64 {
	raw := d.take(name)
	if raw == nil {
		return 0
	}
	n, _ := d.intText(name, raw, 64)
	return n
}

func (d *jsonDecoder) optInt64(name string) *int64 {
	raw := d.take(name)
	if raw == nil {
		return nil
	}
	n, ok := d.intText(name, raw, 64)
	if !ok {
		return nil
	}
	return &n
}

func (d *jsonDecoder) int32(name string) int32 {
	raw := d.take(name)
	if raw == nil {
		return 0
	}
	n, _ := d.intText(name, raw, 32)
	return int32(n)
}

func (d *jsonDecoder) timestamp(name string) *timestamppb.Timestamp {
	raw := d.take(name)
	if raw == nil {
		return nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		d.fail(wrongType(name, "an RFC 3339 string", raw))
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.fail(poisonf(ReasonInvalidValue, "%s %q is not RFC 3339: %v", name, s, err))
		return nil
	}
	return timestamppb.New(t)
}

// props decodes a JSON object into key -> compact JSON text of the value.
func (d *jsonDecoder) props(name string) map[string]string {
	raw := d.take(name)
	if raw == nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		d.fail(wrongType(name, "an object", raw))
		return nil
	}
	m := make(map[string]string, len(obj))
	var b bytes.Buffer
	for k, v := range obj {
		b.Reset()
		if err := json.Compact(&b, v); err != nil {
			d.fail(poisonf(ReasonUndecodable, "%s[%q]: %v", name, k, err))
			return nil
		}
		m[k] = b.String()
	}
	return m
}

// MarshalJSON encodes env in the JSON shape of the contract. Property values
// are written as the JSON text they hold, so they must be valid JSON
// (Validate checks it).
func MarshalJSON(env *ingestv1.Envelope) ([]byte, error) {
	var v any
	switch k := env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		m := k.PersonUpdate
		v = struct {
			Type        string    `json:"type"`
			Team        int64     `json:"team"`
			PersonID    string    `json:"person_id"`
			DistinctIDs []string  `json:"distinct_ids,omitempty"`
			Set         rawProps  `json:"$set,omitempty"`
			SetOnce     rawProps  `json:"$set_once,omitempty"`
			Unset       []string  `json:"$unset,omitempty"`
			Version     *int64    `json:"version,omitempty"`
			Timestamp   *jsonTime `json:"timestamp,omitempty"`
		}{TypePersonUpdate, m.GetTeam(), m.GetPersonId(), m.GetDistinctIds(), rawProps(m.GetSet()), rawProps(m.GetSetOnce()), m.GetUnset(), m.Version, newJSONTime(m.GetTimestamp())}
	case *ingestv1.Envelope_PersonMerge:
		m := k.PersonMerge
		kind := ""
		for name, mk := range mergeKinds {
			if mk == m.GetMergeKind() {
				kind = name
			}
		}
		v = struct {
			Type        string    `json:"type"`
			Team        int64     `json:"team"`
			PersonID    string    `json:"person_id"`
			DistinctIDs []string  `json:"distinct_ids,omitempty"`
			Version     *int64    `json:"version,omitempty"`
			Timestamp   *jsonTime `json:"timestamp,omitempty"`
			MergeKind   string    `json:"merge_kind,omitempty"`
		}{TypePersonMerge, m.GetTeam(), m.GetPersonId(), m.GetDistinctIds(), m.Version, newJSONTime(m.GetTimestamp()), kind}
	case *ingestv1.Envelope_PersonDelete:
		m := k.PersonDelete
		v = struct {
			Type      string    `json:"type"`
			Team      int64     `json:"team"`
			PersonID  string    `json:"person_id"`
			Version   *int64    `json:"version,omitempty"`
			Timestamp *jsonTime `json:"timestamp,omitempty"`
		}{TypePersonDelete, m.GetTeam(), m.GetPersonId(), m.Version, newJSONTime(m.GetTimestamp())}
	case *ingestv1.Envelope_GroupUpdate:
		m := k.GroupUpdate
		v = struct {
			Type           string    `json:"type"`
			Team           int64     `json:"team"`
			GroupTypeIndex int32     `json:"group_type_index"`
			GroupKey       string    `json:"group_key"`
			Set            rawProps  `json:"$set,omitempty"`
			Unset          []string  `json:"$unset,omitempty"`
			Version        *int64    `json:"version,omitempty"`
			Timestamp      *jsonTime `json:"timestamp,omitempty"`
		}{TypeGroupUpdate, m.GetTeam(), m.GetGroupTypeIndex(), m.GetGroupKey(), rawProps(m.GetSet()), m.GetUnset(), m.Version, newJSONTime(m.GetTimestamp())}
	case *ingestv1.Envelope_GroupTypeMapping:
		m := k.GroupTypeMapping
		v = struct {
			Type           string `json:"type"`
			Team           int64  `json:"team"`
			GroupTypeIndex int32  `json:"group_type_index"`
			Name           string `json:"name"`
		}{TypeGroupTypeMapping, m.GetTeam(), m.GetGroupTypeIndex(), m.GetName()}
	case *ingestv1.Envelope_Event:
		m := k.Event
		v = struct {
			Type       string    `json:"type"`
			Team       int64     `json:"team"`
			DistinctID string    `json:"distinct_id"`
			Event      string    `json:"event"`
			Timestamp  *jsonTime `json:"timestamp,omitempty"`
			UUID       string    `json:"uuid"`
			Properties rawProps  `json:"properties,omitempty"`
		}{TypeEvent, m.GetTeam(), m.GetDistinctId(), m.GetEvent(), newJSONTime(m.GetTimestamp()), m.GetUuid(), rawProps(m.GetProperties())}
	default:
		return nil, poisonf(ReasonUnknownKind, "envelope holds no known message kind")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep string text as written
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("ingest: encode JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// rawProps marshals key -> JSON text as a JSON object of those values.
type rawProps map[string]string

func (p rawProps) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(k); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		v := p[k]
		if !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("property %q: value %s is not JSON text", k, abbrev(v))
		}
		b.WriteString(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonTime marshals as RFC 3339 with nanoseconds, in UTC.
type jsonTime struct{ t time.Time }

func newJSONTime(ts *timestamppb.Timestamp) *jsonTime {
	if ts == nil {
		return nil
	}
	return &jsonTime{ts.AsTime()}
}

func (t *jsonTime) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(t.t.UTC().Format(time.RFC3339Nano))), nil
}
