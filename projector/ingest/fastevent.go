package ingest

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// decodeEvent decodes a protobuf Envelope holding an Event as
// decodePersonUpdate does a PersonUpdate: without proto.Unmarshal's
// reflection (its map decoding was a third of an event's ingest cost with
// twenty properties), the properties sharing one copy of data. It reports
// false for anything but exactly the Event's fields with their wire types,
// which proto.Unmarshal then decodes or refuses; where it reports true the
// result equals proto.Unmarshal's (FuzzEventDecoder checks).
func decodeEvent(data []byte) (*ingestv1.Envelope, bool) {
	if len(data) == 0 {
		return nil, false
	}
	ev := new(ingestv1.Event)
	if !eachOccurrence(data, 6, func(b []byte, s string) bool { return decodeEventFields(ev, b, s) }) {
		return nil, false
	}
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: ev}}, true
}

// decodeEventFields decodes the fields in b into ev; s holds the same
// bytes as b.
func decodeEventFields(ev *ingestv1.Event, b []byte, s string) bool {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return false
		}
		off += n
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b[off:])
			if n < 0 || num != 1 {
				return false
			}
			off += n
			ev.Team = int64(v)
			continue
		}
		if typ != protowire.BytesType {
			return false
		}
		v, n := protowire.ConsumeBytes(b[off:])
		if n < 0 {
			return false
		}
		vs := s[off+n-len(v) : off+n]
		off += n
		switch num {
		case 2, 3, 5:
			if !utf8.ValidString(vs) {
				return false
			}
			switch num {
			case 2:
				// Its own copy: a backfill keeps distinct ids for a
				// whole pass, which would otherwise keep the payload.
				ev.DistinctId = strings.Clone(vs)
			case 3:
				ev.Event = vs
			case 5:
				ev.Uuid = vs
			}
		case 4:
			if ev.Timestamp == nil {
				ev.Timestamp = new(timestamppb.Timestamp)
			}
			if !decodeTimestamp(ev.Timestamp, v) {
				return false
			}
		case 6:
			k, val, ok := decodeStringEntry(v, vs)
			if !ok {
				return false
			}
			if ev.Properties == nil {
				ev.Properties = map[string]string{}
			}
			ev.Properties[k] = val
		default:
			return false
		}
	}
	return true
}
