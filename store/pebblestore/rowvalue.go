package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/vexil-dev/vexil/store"
)

// The row value, read on every evaluation, is a compact binary record (the
// team and distinct id are in the key):
//
//	format   byte  (rowFormat)
//	flags    byte  (flagPresent: the person part has been written;
//	               flagStamp: a results stamp follows the results)
//	personID uvarint length, bytes
//	version  varint (PersonVersion)
//	revision 8 bytes big-endian
//	props    uvarint length, bytes (the JSON object, verbatim)
//	results  uvarint length, bytes
//	stamp    varint (ResultsStamp), only with flagStamp
//	counters uvarint length, bytes
//
// Rows written before results were versioned have no flagStamp: stamp 0.
const (
	rowFormat   = 1
	flagPresent = 1 << 0
	flagStamp   = 1 << 1
)

var errRowValue = errors.New("bad row value")

// rowValue is the decoded form of a stored row.
type rowValue struct {
	present bool
	row     store.Row // Team and DistinctID are not stored in the value
}

func appendRowValue(b []byte, v *rowValue) []byte {
	var flags byte
	if v.present {
		flags |= flagPresent
	}
	r := &v.row
	if r.ResultsStamp != 0 {
		flags |= flagStamp
	}
	b = append(b, rowFormat, flags)
	b = binary.AppendUvarint(b, uint64(len(r.PersonID)))
	b = append(b, r.PersonID...)
	b = binary.AppendVarint(b, r.PersonVersion)
	b = binary.BigEndian.AppendUint64(b, r.Revision)
	for _, f := range [...][]byte{r.Properties, r.Results} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	if r.ResultsStamp != 0 {
		b = binary.AppendVarint(b, r.ResultsStamp)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Counters)))
	return append(b, r.Counters...)
}

func rowValueSize(v *rowValue) int {
	r := &v.row
	return 2 + 3*binary.MaxVarintLen32 + 2*binary.MaxVarintLen64 + 8 + binary.MaxVarintLen32 +
		len(r.PersonID) + len(r.Properties) + len(r.Results) + len(r.Counters)
}

// decodeRowValue decodes buf into v without copying: v's byte fields and
// PersonID alias buf, which the caller must own and never modify. Empty
// Results and Counters decode as nil.
func decodeRowValue(buf []byte, v *rowValue) error {
	if len(buf) < 2 || buf[0] != rowFormat || buf[1]&^(flagPresent|flagStamp) != 0 {
		return fmt.Errorf("%w: %w: header", store.ErrCorrupt, errRowValue)
	}
	v.present = buf[1]&flagPresent != 0
	p := buf[2:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, false
		}
		f := p[k : k+int(n) : k+int(n)]
		p = p[k+int(n):]
		if n == 0 {
			return nil, true
		}
		return f, true
	}
	pid, ok := field()
	if !ok {
		return fmt.Errorf("%w: %w: person id", store.ErrCorrupt, errRowValue)
	}
	ver, k := binary.Varint(p)
	if k <= 0 || len(p)-k < 8 {
		return fmt.Errorf("%w: %w: version", store.ErrCorrupt, errRowValue)
	}
	p = p[k:]
	r := &v.row
	r.PersonID = unsafe.String(unsafe.SliceData(pid), len(pid))
	r.PersonVersion = ver
	r.Revision = binary.BigEndian.Uint64(p)
	p = p[8:]
	if r.Properties, ok = field(); !ok {
		return fmt.Errorf("%w: %w: properties", store.ErrCorrupt, errRowValue)
	}
	if r.Results, ok = field(); !ok {
		return fmt.Errorf("%w: %w: results", store.ErrCorrupt, errRowValue)
	}
	r.ResultsStamp = 0
	if buf[1]&flagStamp != 0 {
		if r.ResultsStamp, k = binary.Varint(p); k <= 0 {
			return fmt.Errorf("%w: %w: results stamp", store.ErrCorrupt, errRowValue)
		}
		p = p[k:]
	}
	if r.Counters, ok = field(); !ok {
		return fmt.Errorf("%w: %w: counters", store.ErrCorrupt, errRowValue)
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %w: trailing bytes", store.ErrCorrupt, errRowValue)
	}
	return nil
}
