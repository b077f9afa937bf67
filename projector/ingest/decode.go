package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/namespace"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// Limits bound what one message may carry; a message over a limit is poison
// with ReasonTooLarge. The zero value of a field means its default.
type Limits struct {
	// MaxMessageBytes bounds the encoded payload. Default 1 MiB.
	MaxMessageBytes int
	// MaxProperties bounds the number of keys of each property map and of
	// $unset. Default 1,000.
	MaxProperties int
	// MaxPropertyBytes bounds the sum of key and value lengths over all
	// property maps and $unset of one message. Default 256 KiB.
	MaxPropertyBytes int
	// MaxDistinctIDs bounds distinct_ids of one message. Default 1,000.
	MaxDistinctIDs int
	// MaxIDBytes bounds each id and name: person id, distinct_id, group
	// key, group type name, event name, uuid, property key. Default 1,024.
	MaxIDBytes int
}

// The defaults of Limits.
const (
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxProperties    = 1000
	DefaultMaxPropertyBytes = 256 << 10
	DefaultMaxDistinctIDs   = 1000
	DefaultMaxIDBytes       = 1024
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxProperties == 0 {
		l.MaxProperties = DefaultMaxProperties
	}
	if l.MaxPropertyBytes == 0 {
		l.MaxPropertyBytes = DefaultMaxPropertyBytes
	}
	if l.MaxDistinctIDs == 0 {
		l.MaxDistinctIDs = DefaultMaxDistinctIDs
	}
	if l.MaxIDBytes == 0 {
		l.MaxIDBytes = DefaultMaxIDBytes
	}
	return l
}

// Validate reports negative limits.
func (l Limits) Validate() error {
	if l.MaxMessageBytes < 0 || l.MaxProperties < 0 || l.MaxPropertyBytes < 0 || l.MaxDistinctIDs < 0 || l.MaxIDBytes < 0 {
		return fmt.Errorf("ingest: limits must not be negative: %+v", l)
	}
	return nil
}

// Encoding is the payload encoding named by a Content-Type header.
type Encoding int

// The encodings.
const (
	Protobuf Encoding = iota + 1
	JSON
)

// ParseContentType maps a Content-Type header value to an Encoding. An empty
// value means protobuf; parameters ("; charset=utf-8") are ignored.
func ParseContentType(v string) (Encoding, error) {
	switch v { // the usual values, without parsing
	case "", ContentTypeProtobuf:
		return Protobuf, nil
	case ContentTypeJSON:
		return JSON, nil
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return 0, poisonf(ReasonContentType, "Content-Type %q: %v", v, err)
	}
	switch mt {
	case ContentTypeProtobuf, "application/x-protobuf":
		return Protobuf, nil
	case ContentTypeJSON:
		return JSON, nil
	}
	return 0, poisonf(ReasonContentType, "Content-Type %q is neither %s nor %s", v, ContentTypeProtobuf, ContentTypeJSON)
}

// Decode decodes and validates one message published on subject of ns with the
// given Content-Type header value. The returned envelope's property values
// are compact JSON text. Every error is an *Error (errors.Is(err, ErrPoison)).
func Decode(ns namespace.Name, subject, contentType string, data []byte, lim Limits) (*ingestv1.Envelope, error) {
	lim = lim.WithDefaults()
	fam, team, err := ParseSubject(ns, subject)
	if err != nil {
		return nil, err
	}
	enc, err := ParseContentType(contentType)
	if err != nil {
		return nil, err
	}
	env, err := decodePayload(enc, data, lim)
	if err != nil {
		return nil, err
	}
	if f := FamilyOf(env); f != fam {
		return nil, poisonf(ReasonWrongSubject, "a %s message does not belong on %s", kindName(env), subject)
	}
	if t := Team(env); t != team {
		return nil, poisonf(ReasonTeamMismatch, "message team %d published on %s", t, subject)
	}
	return env, nil
}

// DecodePayload decodes and validates a payload without a subject (for
// producers and tools: SubjectOf gives the subject it belongs on).
func DecodePayload(enc Encoding, data []byte, lim Limits) (*ingestv1.Envelope, error) {
	return decodePayload(enc, data, lim.WithDefaults())
}

func decodePayload(enc Encoding, data []byte, lim Limits) (*ingestv1.Envelope, error) {
	if len(data) > lim.MaxMessageBytes {
		return nil, poisonf(ReasonTooLarge, "payload of %d bytes exceeds %d", len(data), lim.MaxMessageBytes)
	}
	var env *ingestv1.Envelope
	switch enc {
	case Protobuf:
		var ok bool
		if env, ok = decodePersonUpdate(data); ok {
			break
		}
		if env, ok = decodeEvent(data); ok {
			break
		}
		env = new(ingestv1.Envelope)
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, env); err != nil {
			return nil, poisonf(ReasonUndecodable, "protobuf: %v", err)
		}
	case JSON:
		var err error
		if env, err = decodeJSON(data); err != nil {
			return nil, err
		}
	default:
		return nil, poisonf(ReasonContentType, "unknown encoding %d", enc)
	}
	if err := validate(env, lim); err != nil {
		return nil, err
	}
	return env, nil
}

// Validate checks env against the contract and lim (zero fields meaning the
// defaults), and rewrites its property values to compact JSON text.
func Validate(env *ingestv1.Envelope, lim Limits) error {
	return validate(env, lim.WithDefaults())
}

func kindName(env *ingestv1.Envelope) string {
	switch env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		return "person_update"
	case *ingestv1.Envelope_PersonMerge:
		return "person_merge"
	case *ingestv1.Envelope_PersonDelete:
		return "person_delete"
	case *ingestv1.Envelope_GroupUpdate:
		return "group_update"
	case *ingestv1.Envelope_GroupTypeMapping:
		return "group_type_mapping"
	case *ingestv1.Envelope_Event:
		return "event"
	}
	return "empty"
}

// checker accumulates the size budget of one message while validating it.
type checker struct {
	lim       Limits
	propBytes int
}

func validate(env *ingestv1.Envelope, lim Limits) error {
	c := checker{lim: lim}
	switch k := env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		m := k.PersonUpdate
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.id("person_id", m.GetPersonId()); err != nil {
			return err
		}
		if err := c.distinctIDs(m.GetDistinctIds(), false); err != nil {
			return err
		}
		if err := c.props("$set", m.GetSet()); err != nil {
			return err
		}
		if err := c.props("$set_once", m.GetSetOnce()); err != nil {
			return err
		}
		if err := c.keys("$unset", m.GetUnset()); err != nil {
			return err
		}
		if err := c.version(m.Version); err != nil {
			return err
		}
		return c.timestamp(m.GetTimestamp(), false)
	case *ingestv1.Envelope_PersonMerge:
		m := k.PersonMerge
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.id("person_id", m.GetPersonId()); err != nil {
			return err
		}
		if err := c.distinctIDs(m.GetDistinctIds(), true); err != nil {
			return err
		}
		if err := c.version(m.Version); err != nil {
			return err
		}
		if _, ok := ingestv1.MergeKind_name[int32(m.GetMergeKind())]; !ok {
			return poisonf(ReasonInvalidValue, "merge_kind %d is unknown", m.GetMergeKind())
		}
		return c.timestamp(m.GetTimestamp(), false)
	case *ingestv1.Envelope_PersonDelete:
		m := k.PersonDelete
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.id("person_id", m.GetPersonId()); err != nil {
			return err
		}
		if err := c.version(m.Version); err != nil {
			return err
		}
		return c.timestamp(m.GetTimestamp(), false)
	case *ingestv1.Envelope_GroupUpdate:
		m := k.GroupUpdate
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.groupTypeIndex(m.GetGroupTypeIndex()); err != nil {
			return err
		}
		if err := c.id("group_key", m.GetGroupKey()); err != nil {
			return err
		}
		if err := c.props("$set", m.GetSet()); err != nil {
			return err
		}
		if err := c.keys("$unset", m.GetUnset()); err != nil {
			return err
		}
		if err := c.version(m.Version); err != nil {
			return err
		}
		return c.timestamp(m.GetTimestamp(), false)
	case *ingestv1.Envelope_GroupTypeMapping:
		m := k.GroupTypeMapping
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.groupTypeIndex(m.GetGroupTypeIndex()); err != nil {
			return err
		}
		return c.id("name", m.GetName())
	case *ingestv1.Envelope_Event:
		m := k.Event
		if err := c.team(m.GetTeam()); err != nil {
			return err
		}
		if err := c.id("distinct_id", m.GetDistinctId()); err != nil {
			return err
		}
		if err := c.id("event", m.GetEvent()); err != nil {
			return err
		}
		if err := c.id("uuid", m.GetUuid()); err != nil {
			return err
		}
		if err := c.props("properties", m.GetProperties()); err != nil {
			return err
		}
		return c.timestamp(m.GetTimestamp(), true)
	case nil:
		return poisonf(ReasonUnknownKind, "envelope holds no message")
	default:
		return poisonf(ReasonUnknownKind, "envelope holds an unknown message kind %T", k)
	}
}

func (c *checker) team(team int64) error {
	if team == 0 {
		return poisonf(ReasonMissingField, "team is required")
	}
	if team < 0 {
		return poisonf(ReasonInvalidValue, "team %d must be > 0", team)
	}
	return nil
}

func (c *checker) id(field, v string) error {
	if v == "" {
		return poisonf(ReasonMissingField, "%s is required", field)
	}
	if len(v) > c.lim.MaxIDBytes {
		return poisonf(ReasonTooLarge, "%s of %d bytes exceeds %d", field, len(v), c.lim.MaxIDBytes)
	}
	if !utf8.ValidString(v) {
		return poisonf(ReasonInvalidValue, "%s is not valid UTF-8", field)
	}
	return nil
}

func (c *checker) distinctIDs(ids []string, required bool) error {
	if required && len(ids) == 0 {
		return poisonf(ReasonMissingField, "distinct_ids needs at least one distinct_id")
	}
	if len(ids) > c.lim.MaxDistinctIDs {
		return poisonf(ReasonTooLarge, "%d distinct_ids exceed %d", len(ids), c.lim.MaxDistinctIDs)
	}
	for _, id := range ids {
		if err := c.id("distinct_ids[]", id); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) version(v *int64) error {
	if v == nil {
		return poisonf(ReasonMissingField, "version is required")
	}
	if *v < 0 {
		return poisonf(ReasonInvalidValue, "version %d must be >= 0", *v)
	}
	return nil
}

func (c *checker) groupTypeIndex(i int32) error {
	if i < 0 || i > 255 {
		return poisonf(ReasonInvalidValue, "group_type_index %d is outside 0..255", i)
	}
	return nil
}

func (c *checker) timestamp(ts *timestamppb.Timestamp, required bool) error {
	if ts == nil {
		if required {
			return poisonf(ReasonMissingField, "timestamp is required")
		}
		return nil
	}
	if err := ts.CheckValid(); err != nil {
		return poisonf(ReasonInvalidValue, "timestamp: %v", err)
	}
	return nil
}

func (c *checker) budget(field string, n int) error {
	c.propBytes += n
	if c.propBytes > c.lim.MaxPropertyBytes {
		return poisonf(ReasonTooLarge, "%s: properties exceed %d bytes", field, c.lim.MaxPropertyBytes)
	}
	return nil
}

func (c *checker) keys(field string, keys []string) error {
	if len(keys) > c.lim.MaxProperties {
		return poisonf(ReasonTooLarge, "%s has %d keys, more than %d", field, len(keys), c.lim.MaxProperties)
	}
	for _, k := range keys {
		if err := c.key(field, k); err != nil {
			return err
		}
		if err := c.budget(field, len(k)); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) key(field, k string) error {
	if k == "" {
		return poisonf(ReasonInvalidValue, "%s has an empty property key", field)
	}
	if len(k) > c.lim.MaxIDBytes {
		return poisonf(ReasonTooLarge, "%s: property key of %d bytes exceeds %d", field, len(k), c.lim.MaxIDBytes)
	}
	if !utf8.ValidString(k) {
		return poisonf(ReasonInvalidValue, "%s: property key is not valid UTF-8", field)
	}
	return nil
}

// props validates a property map and rewrites each value to compact JSON.
func (c *checker) props(field string, m map[string]string) error {
	if len(m) > c.lim.MaxProperties {
		return poisonf(ReasonTooLarge, "%s has %d keys, more than %d", field, len(m), c.lim.MaxProperties)
	}
	for k, v := range m {
		if err := c.key(field, k); err != nil {
			return err
		}
		if err := c.budget(field, len(k)+len(v)); err != nil {
			return err
		}
		cv, err := compactValue(v)
		if err != nil {
			return poisonf(ReasonInvalidValue, "%s[%q]: %v", field, k, err)
		}
		if len(cv) != len(v) {
			m[k] = cv
		}
	}
	return nil
}

// compactValue checks that v is one JSON value and returns it without
// insignificant whitespace; number and string text are kept as written.
func compactValue(v string) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("value is not valid UTF-8")
	}
	if !json.Valid([]byte(v)) {
		return "", fmt.Errorf("value %s is not JSON text", abbrev(v))
	}
	if !strings.ContainsAny(v, " \t\r\n") {
		return v, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(v)); err != nil {
		return "", err
	}
	return b.String(), nil
}

func abbrev(s string) string {
	const max = 40
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:max])
}
