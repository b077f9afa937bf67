package store

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Canonical binary encodings. Equal values encode to equal bytes (register
// maps are written in key order), so they serve the digest, and they
// round-trip through UnmarshalBinary, so a backend may store them as blobs.
// Each starts with a kind byte and a format byte.

const codecFormat = 1

// groupFormat is the format byte of group encodings: 2 adds Results and
// ResultsStamp, 3 Counters. Formats 1 (no results) and 2 still decode, for
// groups stored by earlier versions.
const groupFormat = 3

// Kind bytes of the canonical encodings.
const (
	kindPerson    = 'P'
	kindMapping   = 'M'
	kindIndex     = 'I'
	kindRow       = 'R'
	kindGroup     = 'G'
	kindGroupType = 'T'
)

func appendHeader(b []byte, kind byte) []byte { return append(b, kind, codecFormat) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBytes writes a nil-aware byte string: 0 for nil, len+1 otherwise.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendRegisters(b []byte, regs map[string]Register) []byte {
	keys := make([]string, 0, len(regs))
	for k := range regs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		r := regs[k]
		b = appendString(b, k)
		b = binary.AppendVarint(b, r.Version)
		b = appendBytes(b, r.Value)
	}
	return b
}

// AppendBinary appends the canonical encoding of p to b.
func (p *Person) AppendBinary(b []byte) ([]byte, error) {
	b = appendHeader(b, kindPerson)
	b = binary.AppendVarint(b, p.Team)
	b = appendString(b, p.ID)
	b = binary.AppendVarint(b, p.Version)
	if p.Deleted {
		b = append(b, 1)
		b = binary.AppendVarint(b, p.DeleteVersion)
	} else {
		b = append(b, 0)
	}
	b = appendRegisters(b, p.Set)
	return appendRegisters(b, p.SetOnce), nil
}

// MarshalBinary returns the canonical encoding of p.
func (p *Person) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// UnmarshalBinary decodes a canonical encoding into p (copying: data may be
// reused). Errors wrap ErrCorrupt.
func (p *Person) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(kindPerson)
	var q Person
	q.Team = d.varint()
	q.ID = d.string()
	q.Version = d.varint()
	switch d.byte() {
	case 0:
	case 1:
		q.Deleted = true
		q.DeleteVersion = d.varint()
	default:
		d.fail("bad deleted flag")
	}
	q.Set = d.registers()
	q.SetOnce = d.registers()
	if err := d.finish("person"); err != nil {
		return err
	}
	*p = q
	return nil
}

// AppendBinary appends the canonical encoding of m to b.
func (m *Mapping) AppendBinary(b []byte) ([]byte, error) {
	b = appendHeader(b, kindMapping)
	b = binary.AppendVarint(b, m.Team)
	b = appendString(b, m.DistinctID)
	b = appendString(b, m.PersonID)
	return binary.AppendVarint(b, m.Version), nil
}

// MarshalBinary returns the canonical encoding of m.
func (m *Mapping) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// UnmarshalBinary decodes a canonical encoding into m. Errors wrap
// ErrCorrupt.
func (m *Mapping) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(kindMapping)
	var q Mapping
	q.Team = d.varint()
	q.DistinctID = d.string()
	q.PersonID = d.string()
	q.Version = d.varint()
	if err := d.finish("mapping"); err != nil {
		return err
	}
	*m = q
	return nil
}

// AppendBinary appends the canonical encoding of e to b.
func (e *IndexEntry) AppendBinary(b []byte) ([]byte, error) {
	b = appendHeader(b, kindIndex)
	b = binary.AppendVarint(b, e.Team)
	b = appendString(b, e.PersonID)
	return appendString(b, e.DistinctID), nil
}

// MarshalBinary returns the canonical encoding of e.
func (e *IndexEntry) MarshalBinary() ([]byte, error) { return e.AppendBinary(nil) }

// AppendBinary appends the canonical encoding of r to b.
func (r *Row) AppendBinary(b []byte) ([]byte, error) {
	b = appendHeader(b, kindRow)
	b = binary.AppendVarint(b, r.Team)
	b = appendString(b, r.DistinctID)
	b = appendString(b, r.PersonID)
	b = binary.AppendVarint(b, r.PersonVersion)
	b = binary.BigEndian.AppendUint64(b, r.Revision)
	b = appendBytes(b, r.Properties)
	b = appendBytes(b, emptyNil(r.Results))
	b = binary.AppendVarint(b, r.ResultsStamp)
	return appendBytes(b, emptyNil(r.Counters)), nil
}

// emptyNil maps an empty reserved field to nil: backends need not tell an
// empty Results from an absent one.
func emptyNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// MarshalBinary returns the canonical encoding of r, ResultsStamp
// included. Empty and nil Results (and Counters) encode alike.
func (r *Row) MarshalBinary() ([]byte, error) { return r.AppendBinary(nil) }

// UnmarshalBinary decodes a canonical encoding into r. Errors wrap
// ErrCorrupt.
func (r *Row) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(kindRow)
	var q Row
	q.Team = d.varint()
	q.DistinctID = d.string()
	q.PersonID = d.string()
	q.PersonVersion = d.varint()
	q.Revision = d.uint64()
	q.Properties = d.bytes()
	q.Results = d.bytes()
	q.ResultsStamp = d.varint()
	q.Counters = d.bytes()
	if err := d.finish("row"); err != nil {
		return err
	}
	*r = q
	return nil
}

// AppendBinary appends the canonical encoding of g to b.
func (g *Group) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, kindGroup, groupFormat)
	b = binary.AppendVarint(b, g.Team)
	b = binary.AppendUvarint(b, uint64(g.TypeIndex))
	b = appendString(b, g.Key)
	b = binary.AppendVarint(b, g.Version)
	b = appendRegisters(b, g.Set)
	b = appendBytes(b, g.Properties)
	b = binary.BigEndian.AppendUint64(b, g.Revision)
	b = appendBytes(b, emptyNil(g.Results))
	b = binary.AppendVarint(b, g.ResultsStamp)
	return appendBytes(b, emptyNil(g.Counters)), nil
}

// MarshalBinary returns the canonical encoding of g, Results and
// ResultsStamp included (empty and nil Results encode alike).
func (g *Group) MarshalBinary() ([]byte, error) { return g.AppendBinary(nil) }

// UnmarshalBinary decodes a canonical encoding into g. Errors wrap
// ErrCorrupt.
func (g *Group) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	format := d.headerFormat(kindGroup, 1, groupFormat)
	var q Group
	q.Team = d.varint()
	ti := d.uvarint()
	if ti > MaxGroupTypeIndex {
		d.fail("group type index out of range")
	}
	q.TypeIndex = int(ti)
	q.Key = d.string()
	q.Version = d.varint()
	q.Set = d.registers()
	q.Properties = d.bytes()
	q.Revision = d.uint64()
	if format >= 2 {
		q.Results = d.bytes()
		q.ResultsStamp = d.varint()
	}
	if format >= 3 {
		q.Counters = d.bytes()
	}
	if err := d.finish("group"); err != nil {
		return err
	}
	*g = q
	return nil
}

// AppendBinary appends the canonical encoding of gt to b.
func (gt *GroupType) AppendBinary(b []byte) ([]byte, error) {
	b = appendHeader(b, kindGroupType)
	b = binary.AppendVarint(b, gt.Team)
	b = binary.AppendUvarint(b, uint64(gt.Index))
	return appendString(b, gt.Name), nil
}

// MarshalBinary returns the canonical encoding of gt.
func (gt *GroupType) MarshalBinary() ([]byte, error) { return gt.AppendBinary(nil) }

// AppendBinary appends the canonical encoding of the entity's non-nil
// field to b; an empty Entity is an error wrapping ErrInvalid.
func (e Entity) AppendBinary(b []byte) ([]byte, error) {
	switch {
	case e.Person != nil:
		return e.Person.AppendBinary(b)
	case e.Mapping != nil:
		return e.Mapping.AppendBinary(b)
	case e.Index != nil:
		return e.Index.AppendBinary(b)
	case e.Row != nil:
		return e.Row.AppendBinary(b)
	case e.Group != nil:
		return e.Group.AppendBinary(b)
	case e.GroupType != nil:
		return e.GroupType.AppendBinary(b)
	}
	return b, fmt.Errorf("%w: empty entity", ErrInvalid)
}

// decoder reads the canonical encodings; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, msg)
	}
	d.b = nil
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func (d *decoder) header(kind byte) {
	if len(d.b) < 2 || d.b[0] != kind || d.b[1] != codecFormat {
		d.fail("bad header")
		return
	}
	d.b = d.b[2:]
}

// headerFormat checks the kind byte and a format byte in [lo, hi], and
// returns the format.
func (d *decoder) headerFormat(kind, lo, hi byte) byte {
	if len(d.b) < 2 || d.b[0] != kind || d.b[1] < lo || d.b[1] > hi {
		d.fail("bad header")
		return 0
	}
	f := d.b[1]
	d.b = d.b[2:]
	return f
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) { // non-minimal encodings are not canonical
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("short")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) raw(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail("length out of range")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.raw(d.uvarint())) }

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	return slices.Clone(d.raw(n - 1))
}

func (d *decoder) registers() map[string]Register {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each register takes at least 3 bytes
		d.fail("register count out of range")
		return nil
	}
	regs := make(map[string]Register, n)
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string()
		if i > 0 && k <= prev {
			d.fail("registers not in key order")
		}
		prev = k
		regs[k] = Register{Version: d.varint(), Value: d.bytes()}
	}
	return regs
}
