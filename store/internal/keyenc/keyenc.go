package keyenc

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Kind bytes: the first byte of every key.
const (
	KindPerson    byte = 'p'
	KindMapping   byte = 'm'
	KindIndex     byte = 'i'
	KindRow       byte = 'r'
	KindGroup     byte = 'g'
	KindGroupType byte = 't'
	// KindExpiry keys are not keyed by team first: they sort by time.
	KindExpiry byte = 'x'
	// KindUsage keys hold usage rows (store.UsageRow): team, flag, kind,
	// bucket, node.
	KindUsage byte = 'u'
	// KindSLO keys hold SLO rollups (store.SLORow): series, minute, node;
	// not keyed by team (they are the node's, not a team's).
	KindSLO byte = 'o'
	// KindSignal keys hold the MCP inbox's signals (store.Signal): team,
	// stream sequence.
	KindSignal byte = 'n'
	// KindInbox keys hold the inbox's other rows: team, then 'a' (the
	// acknowledged position) or 'f' and a finding id.
	KindInbox byte = 'k'
)

// ErrMalformed reports a key that does not decode.
var ErrMalformed = errors.New("keyenc: malformed key")

// AppendTeam appends team so that encodings sort like the signed values.
func AppendTeam(b []byte, team int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(team)^(1<<63))
}

// AppendString appends the escaped, terminated encoding of s.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// Team decodes a team from the front of b and returns the rest.
func Team(b []byte) (int64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, ErrMalformed
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
}

// String decodes a string from the front of b and returns the rest.
func String(b []byte) (string, []byte, error) {
	// Fast path: no escapes before the terminator.
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		switch b[i+1] {
		case 1:
			return string(b[:i]), b[i+2:], nil
		case 0xFF:
			return stringSlow(b)
		default:
			return "", nil, ErrMalformed
		}
	}
	return "", nil, ErrMalformed
}

func stringSlow(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 1:
			return string(out), b[i+2:], nil
		case 0xFF:
			out = append(out, 0)
			i++
		default:
			return "", nil, ErrMalformed
		}
	}
	return "", nil, ErrMalformed
}

// Prefix returns the key prefix of a kind within a team.
func Prefix(kind byte, team int64) []byte {
	return AppendTeam(append(make([]byte, 0, 9), kind), team)
}

// Person returns the key of a person.
func Person(team int64, id string) []byte {
	return AppendString(AppendTeam(append(make([]byte, 0, 11+len(id)), KindPerson), team), id)
}

// Mapping returns the key of a distinct id's mapping.
func Mapping(team int64, distinctID string) []byte {
	return AppendString(AppendTeam(append(make([]byte, 0, 11+len(distinctID)), KindMapping), team), distinctID)
}

// Row returns the key of a distinct id's row.
func Row(team int64, distinctID string) []byte {
	return AppendRow(make([]byte, 0, 11+len(distinctID)), team, distinctID)
}

// AppendRow appends the key of a distinct id's row to b.
func AppendRow(b []byte, team int64, distinctID string) []byte {
	return AppendString(AppendTeam(append(b, KindRow), team), distinctID)
}

// IndexPrefix returns the prefix of every index entry of a person.
func IndexPrefix(team int64, personID string) []byte {
	return AppendString(AppendTeam(append(make([]byte, 0, 13+len(personID)), KindIndex), team), personID)
}

// Index returns the key of one person → distinct id index entry.
func Index(team int64, personID, distinctID string) []byte {
	return AppendString(IndexPrefix(team, personID), distinctID)
}

// Group returns the key of a group.
func Group(team int64, typeIndex uint8, key string) []byte {
	b := AppendTeam(append(make([]byte, 0, 12+len(key)), KindGroup), team)
	return AppendString(append(b, typeIndex), key)
}

// GroupPrefix returns the prefix of the keys of a team's groups of one
// type.
func GroupPrefix(team int64, typeIndex uint8) []byte {
	return append(Prefix(KindGroup, team), typeIndex)
}

// Expiry returns the key of an expiry index entry: the kind, at (sorting
// like the signed value), the team, the target. Keys sort by (at, team,
// target).
func Expiry(at, team int64, target string) []byte {
	b := AppendTeam(append(make([]byte, 0, 19+len(target)), KindExpiry), at)
	return AppendString(AppendTeam(b, team), target)
}

// ExpiryUntil returns the exclusive upper bound of the expiry keys with
// at <= until.
func ExpiryUntil(until int64) []byte {
	return PrefixEnd(AppendTeam([]byte{KindExpiry}, until))
}

// DecodeExpiry decodes an expiry key.
func DecodeExpiry(k []byte) (at, team int64, target string, err error) {
	if len(k) < 1 || k[0] != KindExpiry {
		return 0, 0, "", ErrMalformed
	}
	if at, k, err = Team(k[1:]); err != nil {
		return 0, 0, "", err
	}
	if team, k, err = Team(k); err != nil {
		return 0, 0, "", err
	}
	if target, k, err = String(k); err != nil || len(k) != 0 {
		return 0, 0, "", ErrMalformed
	}
	return at, team, target, nil
}

// GroupType returns the key of a group type mapping.
func GroupType(team int64, index uint8) []byte {
	return append(Prefix(KindGroupType, team), index)
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil if there is none (prefix is all 0xFF).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// Successor returns the smallest key greater than key (key followed by
// 0x00). Keys that end with an encoded string have no other key as a
// prefix, so it is also the first key of the rest of the range.
func Successor(key []byte) []byte {
	return append(append(make([]byte, 0, len(key)+1), key...), 0)
}

// EncodeCursor returns the opaque scan cursor that resumes after the
// distinct id last: a format byte and base64url, never empty.
func EncodeCursor(last string) string {
	return "1" + base64.RawURLEncoding.EncodeToString([]byte(last))
}

// DecodeCursor returns the distinct id a cursor resumes after.
func DecodeCursor(c string) (string, error) {
	if len(c) == 0 || c[0] != '1' {
		return "", ErrMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(c[1:])
	if err != nil {
		return "", ErrMalformed
	}
	return string(b), nil
}
