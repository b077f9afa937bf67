package ingest

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// decodePersonUpdate decodes a protobuf Envelope holding a PersonUpdate,
// the bulk of the ingest, without the reflection of proto.Unmarshal (map
// fields are its slowest part), and with the property keys and values
// sharing one copy of data (the ids are copied on their own). It handles exactly the fields of the schema
// with their declared wire types, and reports false for anything else
// (another kind, unknown fields, malformed or non-UTF-8 input), which
// proto.Unmarshal then decodes or refuses. Where it reports true, the
// result equals proto.Unmarshal's (FuzzPersonUpdateDecoder checks).
func decodePersonUpdate(data []byte) (*ingestv1.Envelope, bool) {
	if len(data) == 0 {
		return nil, false
	}
	pu := new(ingestv1.PersonUpdate)
	if !eachOccurrence(data, 1, func(b []byte, s string) bool { return decodePersonUpdateFields(pu, b, s) }) {
		return nil, false
	}
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: pu}}, true
}

// eachOccurrence walks an envelope whose only field is the message field
// num, calling decode with each occurrence's bytes (and the same bytes as
// a string, cut from one copy of data): a repeated occurrence merges into
// the message, as decoding into the same one does. False when data holds
// anything else or decode refuses.
func eachOccurrence(data []byte, num protowire.Number, decode func(b []byte, s string) bool) bool {
	s := string(data) // one copy: every string decoded is a part of it
	for off := 0; off < len(data); {
		got, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 || got != num || typ != protowire.BytesType {
			return false
		}
		off += n
		v, n := protowire.ConsumeBytes(data[off:])
		if n < 0 {
			return false
		}
		if !decode(data[off+n-len(v):off+n], s[off+n-len(v):off+n]) {
			return false
		}
		off += n
	}
	return true
}

// decodePersonUpdateFields decodes the fields in b into pu; s holds the
// same bytes as b.
func decodePersonUpdateFields(pu *ingestv1.PersonUpdate, b []byte, s string) bool {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return false
		}
		off += n
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b[off:])
			if n < 0 {
				return false
			}
			off += n
			switch num {
			case 1:
				pu.Team = int64(v)
			case 7:
				pu.Version = new(int64(v))
			default:
				return false
			}
			continue
		}
		if typ != protowire.BytesType {
			return false
		}
		v, n := protowire.ConsumeBytes(b[off:])
		if n < 0 {
			return false
		}
		start := off + n - len(v)
		vs := s[start : off+n]
		off += n
		switch num {
		case 2, 3, 6:
			if !utf8.ValidString(vs) {
				return false
			}
			// Ids get their own copies: the projector keeps them (its
			// index cache) long after the message, which would otherwise
			// keep the whole payload alive.
			switch num {
			case 2:
				pu.PersonId = strings.Clone(vs)
			case 3:
				pu.DistinctIds = append(pu.DistinctIds, strings.Clone(vs))
			case 6:
				pu.Unset = append(pu.Unset, vs)
			}
		case 4, 5:
			k, val, ok := decodeStringEntry(v, vs)
			if !ok {
				return false
			}
			m := &pu.Set
			if num == 5 {
				m = &pu.SetOnce
			}
			if *m == nil {
				*m = map[string]string{}
			}
			(*m)[k] = val
		case 8:
			if pu.Timestamp == nil {
				pu.Timestamp = new(timestamppb.Timestamp)
			}
			if !decodeTimestamp(pu.Timestamp, v) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// decodeStringEntry decodes a map<string, string> entry; absent fields are
// "" and a repeated one counts last.
func decodeStringEntry(b []byte, s string) (key, val string, ok bool) {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return "", "", false
		}
		off += n
		v, n := protowire.ConsumeBytes(b[off:])
		if n < 0 {
			return "", "", false
		}
		vs := s[off+n-len(v) : off+n]
		off += n
		if !utf8.ValidString(vs) {
			return "", "", false
		}
		if num == 1 {
			key = vs
		} else {
			val = vs
		}
	}
	return key, val, true
}

// decodeTimestamp merges the encoded google.protobuf.Timestamp b into ts.
func decodeTimestamp(ts *timestamppb.Timestamp, b []byte) bool {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 || typ != protowire.VarintType || (num != 1 && num != 2) {
			return false
		}
		off += n
		v, n := protowire.ConsumeVarint(b[off:])
		if n < 0 {
			return false
		}
		off += n
		if num == 1 {
			ts.Seconds = int64(v)
		} else {
			ts.Nanos = int32(v)
		}
	}
	return true
}
