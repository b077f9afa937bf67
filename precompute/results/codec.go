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
// a row of a 50-flag team carries 50 entries, so an entry is about 11 bytes
// for a boolean flag (no key, no payload, no description: the definitions
// hold those, and Set.Expand restores them).
//
//	header:  format byte (1)
//	         bits byte   (bit 0: KeyConsistent)
//	         varint      Version (the row's person version, the group's version)
//	         8 bytes LE  Revision (the properties' xxhash64)
//	         uvarint     entry count
//	entry:   uvarint     flag id
//	         8 bytes LE  flag stamp
//	         byte        bit 0 enabled, bit 1 variant, bit 2 valid_until,
//	                     bits 4-7 reason code (reasonCodes index)
//	         uvarint     condition index + 1
//	         [uvarint length, bytes]  variant key
//	         [varint]                 valid_until, Unix milliseconds rounded
//	                                  down (an earlier expiry is safe)
const format = 1

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
// code it cannot encode are left out (they are evaluated live).
func Append(dst []byte, h Header, entries []Entry) []byte {
	dst = append(dst, format)
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
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range entries {
		e := &entries[i]
		rc, ok := reasonIndex(e.Code)
		if !ok {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(e.FlagID))
		dst = binary.LittleEndian.AppendUint64(dst, e.Stamp)
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
	}
	return dst
}

// Decode decodes b into h and appends its entries to entries[:0]. Variant
// keys are copied out of b.
func Decode(b []byte, entries []Entry) (Header, []Entry, error) {
	var h Header
	entries = entries[:0]
	d := decoder{b: b}
	if d.byte() != format {
		return h, entries, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	h.KeyConsistent = d.byte()&1 != 0
	h.Version = d.varint()
	h.Revision = d.uint64()
	n := d.uvarint()
	if d.err || n > uint64(len(b)) {
		return h, entries, fmt.Errorf("%w: header", ErrCorrupt)
	}
	for range n {
		var e Entry
		id := d.uvarint()
		if id > math.MaxInt64 {
			d.err = true
		}
		e.FlagID = int64(id)
		e.Stamp = d.uint64()
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
	}
	if d.err || d.i != len(b) {
		return h, entries[:0], fmt.Errorf("%w: entries", ErrCorrupt)
	}
	return h, entries, nil
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
