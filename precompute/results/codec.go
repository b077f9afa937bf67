package results

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

// The encoding of a row's (or group's) stored results. Compact on purpose:
// a row of a 50-flag team carries 50 entries, so an entry is about 4 bytes
// for a boolean flag (no key, no payload, no description: the definitions
// hold those, and Set.Expand restores them).
//
//	header:  format byte (2)
//	         bits byte   (bit 0: KeyConsistent)
//	         varint      Version (the row's person version, the group's version)
//	         8 bytes LE  Revision (the properties' xxhash64)
//	         uvarint     entry count
//	entry:   uvarint     flag id
//	         byte        bit 0 enabled, bit 1 variant, bit 2 valid_until,
//	                     bits 4-7 reason code (reasonCodes index)
//	         uvarint     condition index + 1
//	         [uvarint length, bytes]  variant key
//	         [varint]                 valid_until, Unix milliseconds rounded
//	                                  down (an earlier expiry is safe)
//	after every stampGroup entries, and after the last:
//	         8 bytes LE  the group's stamp digest (fold)
//
// A result's flag stamp is not stored with it: the reader recomputes the
// digest of its group from the flags' current stamps (a Stamper, the Plan)
// and takes the group's stamps as current only if the digests are equal,
// which holds only if every stamp in it is the one the result was computed
// with (always when one stamp changed, and but for a 2^-64 chance when
// several did): the check of docs/design.md §2 at the strength of the
// 64-bit stamps themselves. A changed flag thus
// marks the other results of its group stale too, until they are computed
// again (Compute does it in the same pass); stampGroup trades that against
// 8 bytes per group. With 50 flags the stamps take 56 bytes instead of 400.
//
// Format 1, written before, stored each entry's 8-byte stamp (little
// endian) after its flag id and had no digests; it still decodes.
const (
	format      = 2
	format1     = 1
	stampGroup  = 8
	digestBytes = 8
)

// Stamper gives a flag's current stamp by id: the Plan of the definitions
// the reader checks against.
type Stamper interface {
	CurrentStamp(flagID int64) (uint64, bool)
}

// The digest of a stamp group folds each entry's stamp and flag id, in
// order, into a 64-bit state through fmix64 (MurmurHash3's finalizer, a
// bijection): two groups that differ in one stamp always differ in digest,
// and groups that differ in more collide with a chance of about 2^-64.
const digestSeed = 0x9e3779b97f4a7c15

func fold(d uint64, flagID int64, stamp uint64) uint64 {
	return fmix64(fmix64(d^stamp) ^ uint64(flagID))
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// Header is what a row's results were computed against.
type Header struct {
	// Version and Revision are the row's PersonVersion and Revision (a
	// group's Version and Revision) when the results were computed.
	Version  int64
	Revision uint64
	// KeyConsistent says the stored properties had no implicit-key property
	// ("distinct_id" on rows, "$group_key" on groups) other than the row's
	// own key, so a request sending that property with the row's key (as
	// posthog-node and posthog-python always do) changes nothing.
	KeyConsistent bool
}

// Entry is one flag's stored result.
type Entry struct {
	FlagID int64
	Stamp  uint64
	flags.Compact
}

var reasonCodes = [...]flags.ReasonCode{
	flags.ReasonConditionMatch, flags.ReasonNoConditionMatch, flags.ReasonOutOfRolloutBound,
	flags.ReasonNoGroupType, flags.ReasonSuperCondition, flags.ReasonHoldout, flags.ReasonFlagDisabled,
	flags.ReasonMissingDependency, flags.ReasonOverride,
}

func reasonIndex(c flags.ReasonCode) (int, bool) {
	for i, rc := range reasonCodes {
		if rc == c {
			return i, true
		}
	}
	return 0, false
}

// ErrCorrupt reports bytes that do not decode.
var ErrCorrupt = errors.New("results: corrupt encoding")

// Append appends the encoding of h and entries to dst. Entries whose reason
// code it cannot encode are left out (they are evaluated live). Each
// entry's Stamp goes into its group's digest.
func Append(dst []byte, h Header, entries []Entry) []byte {
	dst = appendHeader(dst, format, h, entries)
	d, k := uint64(digestSeed), 0
	for i := range entries {
		e := &entries[i]
		rc, ok := reasonIndex(e.Code)
		if !ok {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(e.FlagID))
		dst = appendResult(dst, e, rc)
		d = fold(d, e.FlagID, e.Stamp)
		if k++; k == stampGroup {
			dst = binary.LittleEndian.AppendUint64(dst, d)
			d, k = digestSeed, 0
		}
	}
	if k > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, d)
	}
	return dst
}

// appendFormat1 is Append as format 1 wrote it, for the tests that show
// such rows still decode.
func appendFormat1(dst []byte, h Header, entries []Entry) []byte {
	dst = appendHeader(dst, format1, h, entries)
	for i := range entries {
		e := &entries[i]
		rc, ok := reasonIndex(e.Code)
		if !ok {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(e.FlagID))
		dst = binary.LittleEndian.AppendUint64(dst, e.Stamp)
		dst = appendResult(dst, e, rc)
	}
	return dst
}

func appendHeader(dst []byte, f byte, h Header, entries []Entry) []byte {
	dst = append(dst, f)
	var bits byte
	if h.KeyConsistent {
		bits |= 1
	}
	dst = append(dst, bits)
	dst = binary.AppendVarint(dst, h.Version)
	dst = binary.LittleEndian.AppendUint64(dst, h.Revision)
	n := 0
	for i := range entries {
		if _, ok := reasonIndex(entries[i].Code); ok {
			n++
		}
	}
	return binary.AppendUvarint(dst, uint64(n))
}

// appendResult appends an entry's bits, condition, variant and expiry.
func appendResult(dst []byte, e *Entry, rc int) []byte {
	b := byte(rc) << 4
	if e.Enabled {
		b |= 1
	}
	if e.Variant != "" {
		b |= 2
	}
	if !e.ValidUntil.IsZero() {
		b |= 4
	}
	dst = append(dst, b)
	dst = binary.AppendUvarint(dst, uint64(e.ConditionIndex+1))
	if e.Variant != "" {
		dst = binary.AppendUvarint(dst, uint64(len(e.Variant)))
		dst = append(dst, e.Variant...)
	}
	if !e.ValidUntil.IsZero() {
		dst = binary.AppendVarint(dst, e.ValidUntil.UnixMilli())
	}
	return dst
}

// Decode decodes b into h and appends its entries to entries[:0]. Variant
// keys are copied out of b.
//
// In the current format an entry's Stamp is its flag's current stamp (from
// current) when its group's digest shows the result was computed with it;
// otherwise it is a value that differs from the current stamp (0 for a
// flag current does not know, or with a nil current), so the result is
// stale. Format 1 entries carry the stamps they were stored with.
func Decode(b []byte, entries []Entry, current Stamper) (Header, []Entry, error) {
	var h Header
	entries = entries[:0]
	d := decoder{b: b}
	f := d.byte()
	if f != format && f != format1 {
		return h, entries, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	h.KeyConsistent = d.byte()&1 != 0
	h.Version = d.varint()
	h.Revision = d.uint64()
	n := d.uvarint()
	if d.err || n > uint64(len(b)) {
		return h, entries, fmt.Errorf("%w: header", ErrCorrupt)
	}
	// The group being read: its entries' current stamps, which flags have
	// none, and the digest of its entries' ids with those stamps.
	var (
		stamps  [stampGroup]uint64
		unknown uint
		digest  = uint64(digestSeed)
	)
	lookup := newStampLookup(current)
	for i := range n {
		var e Entry
		id := d.uvarint()
		if id > math.MaxInt64 {
			d.err = true
		}
		e.FlagID = int64(id)
		if f == format1 {
			e.Stamp = d.uint64()
		}
		bits := d.byte()
		rc := int(bits >> 4)
		if rc >= len(reasonCodes) {
			d.err = true
			break
		}
		e.Code = reasonCodes[rc]
		e.Enabled = bits&1 != 0
		ci := d.uvarint()
		if ci > math.MaxInt32 {
			d.err = true
		}
		e.ConditionIndex = int(ci) - 1
		if bits&2 != 0 {
			l := d.uvarint()
			e.Variant = string(d.bytes(l))
		}
		if bits&4 != 0 {
			e.ValidUntil = time.UnixMilli(d.varint())
		}
		if d.err {
			break
		}
		entries = append(entries, e)
		if f == format1 {
			continue
		}
		k := int(i % stampGroup)
		st, ok := lookup.stamp(e.FlagID)
		if !ok {
			unknown |= 1 << k
		}
		stamps[k], digest = st, fold(digest, e.FlagID, st)
		if k == stampGroup-1 || i == n-1 {
			stored := d.uint64()
			if d.err {
				break
			}
			setStamps(entries[len(entries)-k-1:], stamps[:k+1], unknown, lookup.known() && unknown == 0 && digest == stored)
			unknown, digest = 0, digestSeed
		}
	}
	if d.err || d.i != len(b) {
		return h, entries[:0], fmt.Errorf("%w: entries", ErrCorrupt)
	}
	return h, entries, nil
}

// setStamps sets the stamps of a group of entries: the current ones if
// the group's stored digest is theirs (match), else ones that differ from
// them (0 for flags without a current stamp, bits unknown).
func setStamps(group []Entry, current []uint64, unknown uint, match bool) {
	for j := range group {
		switch {
		case match:
			group[j].Stamp = current[j]
		case unknown&(1<<j) != 0:
			group[j].Stamp = 0
		default:
			group[j].Stamp = ^current[j]
		}
	}
}

// stampLookup finds the current stamps of a row's flags. With a Plan it
// first looks a few flags past the last one found: Compute writes entries
// in evaluation order, so most lookups need no map.
type stampLookup struct {
	current Stamper
	plan    *Plan
	next    int
}

func newStampLookup(current Stamper) stampLookup {
	p, ok := current.(*Plan)
	if ok && p == nil {
		current = nil
	}
	return stampLookup{current: current, plan: p}
}

func (l *stampLookup) known() bool { return l.current != nil }

func (l *stampLookup) stamp(id int64) (uint64, bool) {
	if p := l.plan; p != nil {
		for i := l.next; i < len(p.Flags) && i < l.next+stampGroup; i++ {
			if p.Flags[i].ID == id {
				l.next = i + 1
				return p.Flags[i].Stamp, true
			}
		}
		i, ok := p.idIndex[id]
		if !ok {
			return 0, false
		}
		l.next = i + 1
		return p.Flags[i].Stamp, true
	}
	if l.current == nil {
		return 0, false
	}
	return l.current.CurrentStamp(id)
}

type decoder struct {
	b   []byte
	i   int
	err bool
}

func (d *decoder) byte() byte {
	if d.i >= len(d.b) {
		d.err = true
		return 0
	}
	d.i++
	return d.b[d.i-1]
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[min(d.i, len(d.b)):])
	if n <= 0 {
		d.err = true
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[min(d.i, len(d.b)):])
	if n <= 0 {
		d.err = true
		return 0
	}
	d.i += n
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b)-d.i < 8 {
		d.err = true
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.i:])
	d.i += 8
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)-d.i) {
		d.err = true
		return nil
	}
	v := d.b[d.i : d.i+int(n)]
	d.i += int(n)
	return v
}
