package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// PersonUpdate is one person update message as the convergence logic sees
// it. Values are JSON text; numbers keep their text.
type PersonUpdate struct {
	Version int64
	Set     map[string][]byte
	SetOnce map[string][]byte
	Unset   []string
}

// GroupUpdate is one group update message: a $set of properties at a
// version and an optional $unset.
type GroupUpdate struct {
	Version int64
	Set     map[string][]byte
	Unset   []string
}

// NewPerson returns an empty person state.
func NewPerson(team int64, id string) *Person {
	return &Person{Team: team, ID: id, Set: map[string]Register{}, SetOnce: map[string]Register{}}
}

// NewGroup returns an empty group state with empty properties.
func NewGroup(team int64, typeIndex int, key string) *Group {
	g := &Group{Team: team, TypeIndex: typeIndex, Key: key, Set: map[string]Register{}}
	g.Properties = []byte("{}")
	g.Revision = Revision(g.Properties)
	return g
}

// CompactValue validates that v is one JSON value and returns it without
// insignificant whitespace (numbers and strings keep their text): v itself
// when it has none (values from the ingest decoder are compact already),
// else a new slice. The error wraps ErrInvalid.
func CompactValue(v []byte) ([]byte, error) {
	if !bytes.ContainsAny(v, " \t\r\n") {
		if !json.Valid(v) {
			return nil, compactError(v)
		}
		return v, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, errInvalidf("property value %.40q: %v", v, err)
	}
	if buf.Len() == 0 {
		return nil, errInvalidf("empty property value")
	}
	return buf.Bytes(), nil
}

// compactError is CompactValue's error for an invalid v: json.Compact's.
func compactError(v []byte) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return errInvalidf("property value %.40q: %v", v, err)
	}
	return errInvalidf("property value %.40q: not one JSON value", v)
}

// sBeats reports whether a candidate S register c replaces the current s.
func sBeats(c, s Register) bool {
	if c.Version != s.Version {
		return c.Version > s.Version
	}
	if (c.Value == nil) != (s.Value == nil) {
		return c.Value != nil // a set beats a tombstone
	}
	return bytes.Compare(c.Value, s.Value) > 0
}

// oBeats reports whether a candidate O register c replaces the current o.
func oBeats(c, o Register) bool {
	if c.Version != o.Version {
		return c.Version < o.Version
	}
	if (c.Value == nil) != (o.Value == nil) {
		return c.Value == nil // a blanked value wins: deletes are final
	}
	return bytes.Compare(c.Value, o.Value) < 0
}

func (p *Person) dead(v int64) bool { return p.Deleted && v <= p.DeleteVersion }

func (p *Person) applyS(key string, r Register) bool {
	if p.dead(r.Version) {
		return false
	}
	if p.Set == nil {
		p.Set = map[string]Register{}
	}
	if cur, ok := p.Set[key]; ok && !sBeats(r, cur) {
		return false
	}
	p.Set[key] = r
	return true
}

func (p *Person) applyO(key string, r Register) bool {
	if p.dead(r.Version) {
		r.Value = nil
	}
	if p.SetOnce == nil {
		p.SetOnce = map[string]Register{}
	}
	if cur, ok := p.SetOnce[key]; ok && !oBeats(r, cur) {
		return false
	}
	p.SetOnce[key] = r
	return true
}

// ApplyUpdate applies one person update (idempotent, commutative with every
// other update and delete) and reports whether the state changed. Values
// are compacted; an invalid value returns an error wrapping ErrInvalid and
// leaves p unchanged. A key both set and unset in one message is set. p
// may keep u's value slices: the caller must not modify them afterwards.
func (p *Person) ApplyUpdate(u PersonUpdate) (bool, error) {
	set, err := compactAll(u.Set)
	if err != nil {
		return false, err
	}
	once, err := compactAll(u.SetOnce)
	if err != nil {
		return false, err
	}
	changed := false
	if u.Version > p.Version {
		p.Version, changed = u.Version, true
	}
	for _, k := range u.Unset {
		if p.applyS(k, Register{Version: u.Version}) {
			changed = true
		}
	}
	for k, v := range set {
		if p.applyS(k, Register{Version: u.Version, Value: v}) {
			changed = true
		}
	}
	for k, v := range once {
		if p.applyO(k, Register{Version: u.Version, Value: v}) {
			changed = true
		}
	}
	return changed, nil
}

// ApplyDelete applies a person delete at version and reports whether the
// state changed: S registers at or below the highest delete version are
// dropped and O registers there lose their value.
func (p *Person) ApplyDelete(version int64) bool {
	changed := false
	if version > p.Version {
		p.Version, changed = version, true
	}
	if p.Deleted && version <= p.DeleteVersion {
		return changed
	}
	p.Deleted, p.DeleteVersion = true, version
	for k, r := range p.Set {
		if r.Version <= version {
			delete(p.Set, k)
		}
	}
	for k, r := range p.SetOnce {
		if r.Version <= version && r.Value != nil {
			p.SetOnce[k] = Register{Version: r.Version}
		}
	}
	return true
}

// Alive reports whether the person has not been deleted at or after
// version: a mapping asserted at version counts only if Alive(version).
func (p *Person) Alive(version int64) bool { return p == nil || !p.dead(version) }

// EffectiveProperties returns the effective properties as a canonical JSON
// object: keys sorted bytewise, values as stored.
func (p *Person) EffectiveProperties() []byte {
	eff := make([]property, 0, len(p.Set)+len(p.SetOnce))
	for k, s := range p.Set {
		if s.Value != nil {
			eff = append(eff, property{k, s.Value})
		} else if o, ok := p.SetOnce[k]; ok && o.Value != nil && o.Version > s.Version {
			eff = append(eff, property{k, o.Value})
		}
	}
	for k, o := range p.SetOnce {
		if _, ok := p.Set[k]; !ok && o.Value != nil {
			eff = append(eff, property{k, o.Value})
		}
	}
	return canonicalObject(eff)
}

// property is one key and compact JSON value of an object.
type property struct {
	key   string
	value []byte
}

// CanonicalObject encodes props as a JSON object with keys sorted bytewise
// and values copied verbatim (they must be compact JSON values).
func CanonicalObject(props map[string][]byte) []byte {
	ps := make([]property, 0, len(props))
	for k, v := range props {
		ps = append(ps, property{k, v})
	}
	return canonicalObject(ps)
}

// canonicalObject is CanonicalObject of properties with distinct keys; it
// sorts ps.
func canonicalObject(ps []property) []byte {
	n := 2
	for _, p := range ps {
		n += len(p.key) + len(p.value) + 4
	}
	slices.SortFunc(ps, func(a, b property) int { return strings.Compare(a.key, b.key) })
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.key)
		b = append(b, ':')
		b = append(b, p.value...)
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	if isPlain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s) // never fails for a string
	return append(b, enc...)
}

// isPlain reports whether s needs no escaping in JSON (and no HTML
// escaping, to match encoding/json).
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Revision returns the properties revision of a canonical JSON object.
func Revision(properties []byte) uint64 { return xxhash.Sum64(properties) }

// Merge applies another assertion of the same distinct id's mapping (last
// writer wins by version, ties to the bytewise larger person id) and
// reports whether m changed. A zero m (empty PersonID) takes o.
func (m *Mapping) Merge(o Mapping) bool {
	if m.PersonID != "" {
		if o.Version < m.Version || (o.Version == m.Version && strings.Compare(o.PersonID, m.PersonID) <= 0) {
			return false
		}
	}
	m.Team, m.DistinctID, m.PersonID, m.Version = o.Team, o.DistinctID, o.PersonID, o.Version
	return true
}

// DeriveRow computes the person part of the row of m.DistinctID from its
// mapping and the state of the person it maps to (nil when the person has
// no state yet: empty properties). ok is false when the mapping is dead
// (the person was deleted at or after m.Version): the row must not exist.
func DeriveRow(m Mapping, p *Person) (row *Row, ok bool) {
	r := &Row{Team: m.Team, DistinctID: m.DistinctID, PersonID: m.PersonID}
	if p == nil {
		r.Properties = []byte("{}")
	} else {
		if !p.Alive(m.Version) {
			return nil, false
		}
		r.PersonVersion = p.Version
		r.Properties = p.EffectiveProperties()
	}
	r.Revision = Revision(r.Properties)
	return r, true
}

// ApplyUpdate applies one group update and reports whether the state
// changed; Properties and Revision are recomputed when it did.
func (g *Group) ApplyUpdate(u GroupUpdate) (bool, error) {
	set, err := compactAll(u.Set)
	if err != nil {
		return false, err
	}
	if g.Set == nil {
		g.Set = map[string]Register{}
	}
	changed := false
	if u.Version > g.Version {
		g.Version, changed = u.Version, true
	}
	apply := func(k string, r Register) {
		if cur, ok := g.Set[k]; ok && !sBeats(r, cur) {
			return
		}
		g.Set[k] = r
		changed = true
	}
	for _, k := range u.Unset {
		apply(k, Register{Version: u.Version})
	}
	for k, v := range set {
		apply(k, Register{Version: u.Version, Value: v})
	}
	if changed || g.Properties == nil {
		g.Properties = g.EffectiveProperties()
		g.Revision = Revision(g.Properties)
	}
	return changed, nil
}

// EffectiveProperties returns the group's effective properties as a
// canonical JSON object.
func (g *Group) EffectiveProperties() []byte {
	eff := make([]property, 0, len(g.Set))
	for k, s := range g.Set {
		if s.Value != nil {
			eff = append(eff, property{k, s.Value})
		}
	}
	return canonicalObject(eff)
}

// MergeGroupTypeName returns the name to keep for a group type index given
// the stored one ("" for none) and a newly seen one. Names of an index are
// not expected to change; if two disagree the bytewise smaller wins, so any
// delivery order converges.
func MergeGroupTypeName(stored, seen string) string {
	if stored == "" || (seen != "" && seen < stored) {
		return seen
	}
	return stored
}

// CheckTypeIndex returns an error wrapping ErrInvalid when i is not a valid
// group type index.
func CheckTypeIndex(i int) error { return checkTypeIndex(i) }

func checkTypeIndex(i int) error {
	if i < 0 || i > MaxGroupTypeIndex {
		return errInvalidf("group type index %d outside 0..%d", i, MaxGroupTypeIndex)
	}
	return nil
}

// compactAll compacts the values of m: m itself when every value is
// compact already (no copy), else a new map.
func compactAll(m map[string][]byte) (map[string][]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	var out map[string][]byte // a copy of m, made at the first change
	for k, v := range m {
		c, err := CompactValue(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		if len(c) != len(v) {
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = c
		}
	}
	if out == nil {
		return m, nil
	}
	return out, nil
}

func isObject(b []byte) bool {
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}'
}

func errInvalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ResultsWin reports whether results written with stamp replace stored
// results written with storedStamp (0 when none are stored): a larger
// stamp wins, and at equal stamps the bytewise larger results win (as
// Cassandra breaks write timestamp ties), so any order of racing writes
// converges on the same value. Empty and nil results compare alike.
func ResultsWin(stamp int64, results []byte, storedStamp int64, stored []byte) bool {
	if stamp != storedStamp {
		return stamp > storedStamp
	}
	return bytes.Compare(results, stored) > 0
}
