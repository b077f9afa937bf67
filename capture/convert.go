package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// personSpace is the UUID namespace of derived person ids.
var personSpace = uuid.MustParse("6f1d2a52-3c1e-4b7a-9d0c-5e8f7a6b4c21")

// eventSpace is the UUID namespace of the uuids given to events sent
// without one (derived from the event's bytes, so a retry gets the same).
var eventSpace = uuid.MustParse("0b8e4d7c-2f6a-4e19-8c3d-7a5b9e1f2d60")

// PersonID is the person id capture gives a distinct id that has no
// person: a name-based UUID of the team and the distinct id.
func PersonID(team int64, distinctID string) string {
	return uuid.NewSHA1(personSpace, []byte(strconv.FormatInt(team, 10)+"/"+distinctID)).String()
}

// persons resolves distinct ids to persons for one request: the store's
// mapping, or what an earlier event of the request decided.
type persons struct {
	h     *Handler
	ctx   context.Context
	team  int64
	known map[string]string
}

// of returns the person of did and whether one exists.
func (p *persons) of(did string) (string, bool, error) {
	if pid, ok := p.known[did]; ok {
		return pid, pid != "", nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.h.cfg.LookupTimeout)
	defer cancel()
	m, err := p.h.cfg.Mappings.GetMapping(ctx, p.team, did)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.known[did] = ""
		return "", false, nil
	case err != nil:
		// Deriving a person here could take the distinct id away from its
		// real one: refuse, and let the SDK retry.
		return "", false, fmt.Errorf("reading the person of a distinct id: %w", err)
	}
	p.known[did] = m.PersonID
	return m.PersonID, true, nil
}

// convert turns a request's events into ingest messages, validated.
func (h *Handler) convert(ctx context.Context, project Project, b *batch) ([]*nats.Msg, error) {
	now := h.cfg.Now()
	ps := &persons{h: h, ctx: ctx, team: project.Team, known: map[string]string{}}
	var msgs []*nats.Msg
	for i := range b.events {
		e := &b.events[i]
		field := "batch[" + strconv.Itoa(i) + "]"
		add := func(env *ingestv1.Envelope, id string) error {
			m, err := h.message(env, id)
			if err != nil {
				return invalid(field, "%v", err)
			}
			msgs = append(msgs, m)
			return nil
		}
		did := firstNonEmpty(rawString(e.DistinctID), rawString(e.Properties["distinct_id"]),
			rawString(e.EngageDistinctID), rawString(e.Properties["$distinct_id"]))
		if did == "" {
			return nil, invalid(field+".distinct_id", "the event has no distinct_id")
		}
		name := e.Event
		if b.engage {
			name = "$identify"
		}
		if name == "" {
			return nil, invalid(field+".event", "the event has no name")
		}
		ts := eventTime(e, b.sentAt, now)
		version := max(ts.UnixMilli(), 0)*1000 + int64(min(i, 999))
		id := e.UUID
		if _, err := uuid.Parse(id); err != nil {
			id = uuid.NewSHA1(eventSpace, e.raw).String()
		}
		props := make(map[string]string, len(e.Properties))
		for k, v := range e.Properties {
			switch k {
			case "$set", "$set_once", "$unset", "token", "api_key":
				continue
			}
			props[k] = string(v)
		}
		set := objectProps(e.Set, e.Properties["$set"])
		setOnce := objectProps(e.SetOnce, e.Properties["$set_once"])
		unset := stringList(e.Properties["$unset"])
		changes := len(set) > 0 || len(setOnce) > 0 || len(unset) > 0
		personless := string(e.Properties["$process_person_profile"]) == "false"
		pts := timestamppb.New(ts)
		v := version

		personUpdate := func(pid string, ids []string) error {
			return add(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: project.Team, PersonId: pid, DistinctIds: ids, Set: set, SetOnce: setOnce, Unset: unset,
				Version: &v, Timestamp: pts}}}, id+":person")
		}
		other, kind := rawString(e.Properties["$anon_distinct_id"]), ingestv1.MergeKind_MERGE_KIND_IDENTIFY
		if name == "$create_alias" || name == "$merge_dangerously" {
			other, kind = rawString(e.Properties["alias"]), ingestv1.MergeKind_MERGE_KIND_ALIAS
			if other == "" {
				return nil, invalid(field+".properties.alias", "%s needs properties.alias", name)
			}
		}
		merge := other != "" && other != did && (name == "$identify" || kind == ingestv1.MergeKind_MERGE_KIND_ALIAS)
		switch {
		case merge:
			target, found, err := ps.of(did)
			if err != nil {
				return nil, unavailable(err.Error())
			}
			ids := []string{did, other}
			if !found {
				if target, found, err = ps.of(other); err != nil {
					return nil, unavailable(err.Error())
				}
			}
			if !found {
				target = PersonID(project.Team, did)
			}
			for _, d := range ids {
				ps.known[d] = target
			}
			if err := add(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
				Team: project.Team, PersonId: target, DistinctIds: ids, Version: &v, Timestamp: pts, MergeKind: kind}}}, id+":merge"); err != nil {
				return nil, err
			}
			if changes {
				if err := personUpdate(target, nil); err != nil {
					return nil, err
				}
			}
		case name == "$groupidentify":
			typeName, key := rawString(e.Properties["$group_type"]), rawString(e.Properties["$group_key"])
			if typeName == "" || key == "" {
				return nil, invalid(field+".properties", "$groupidentify needs $group_type and $group_key")
			}
			idx, ok := groupIndex(project.GroupTypes, typeName)
			if !ok {
				h.cfg.Logger.Debug("capture: $groupidentify of a group type the team has not named", "team", project.Team, "group_type", typeName)
				break
			}
			if err := add(&ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: project.Team, GroupTypeIndex: int32(idx), GroupKey: key, Set: objectProps(nil, e.Properties["$group_set"]),
				Version: &v, Timestamp: pts}}}, id+":group"); err != nil {
				return nil, err
			}
		default:
			if personless && !changes {
				break
			}
			pid, found, err := ps.of(did)
			if err != nil {
				return nil, unavailable(err.Error())
			}
			if found && !changes {
				break
			}
			var ids []string
			if !found {
				pid, ids = PersonID(project.Team, did), []string{did}
				ps.known[did] = pid
			}
			if err := personUpdate(pid, ids); err != nil {
				return nil, err
			}
		}
		if b.engage {
			continue
		}
		if err := add(&ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
			Team: project.Team, DistinctId: did, Event: name, Timestamp: pts, Uuid: id, Properties: props}}}, id+":event"); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// message validates env against the ingest contract and makes its NATS
// message; msgID lets JetStream drop a retried request's copy.
func (h *Handler) message(env *ingestv1.Envelope, msgID string) (*nats.Msg, error) {
	if err := ingest.Validate(env, h.cfg.Limits); err != nil {
		return nil, err
	}
	subject, err := ingest.SubjectOf(h.cfg.Namespace, env)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(env)
	if err != nil {
		return nil, err
	}
	if len(data) > h.cfg.Limits.MaxMessageBytes {
		return nil, errcode.New(errcode.TooLarge, "the event is over %d bytes as an ingest message", h.cfg.Limits.MaxMessageBytes)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(ingest.HeaderContentType, ingest.ContentTypeProtobuf)
	m.Header.Set(nats.MsgIdHdr, "capture:"+msgID)
	m.Data = data
	return m, nil
}

// eventTime is the event's time corrected for the client's clock skew, as
// PostHog computes it, and never later than now.
func eventTime(e *rawEvent, sentAt, now time.Time) time.Time {
	t := now
	if e.Offset != nil {
		t = now.Add(-time.Duration(*e.Offset * float64(time.Millisecond)))
	} else if ts, ok := parseTime(e.Timestamp); ok {
		t = ts
		if !sentAt.IsZero() {
			t = now.Add(ts.Sub(sentAt))
		}
	}
	if t.After(now) {
		t = now
	}
	return t.UTC()
}

// objectProps merges a top-level property object and one inside the
// properties (the latter wins), as JSON text values.
func objectProps(top map[string]json.RawMessage, inner json.RawMessage) map[string]string {
	var in map[string]json.RawMessage
	if len(inner) > 0 && inner[0] == '{' {
		_ = json.Unmarshal(inner, &in)
	}
	if len(top) == 0 && len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(top)+len(in))
	for k, v := range top {
		out[k] = string(v)
	}
	for k, v := range in {
		out[k] = string(v)
	}
	return out
}

func stringList(raw json.RawMessage) []string {
	var out []string
	if len(raw) > 0 && raw[0] == '[' {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

func groupIndex(types map[int]string, name string) (int, bool) {
	for i, n := range types {
		if n == name {
			return i, true
		}
	}
	return 0, false
}
