package counters

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/flags"
)

// Tiers and bounds, in seconds unless said otherwise.
const (
	// ExactSpan: events within ExactSpan of the row's newest counted event
	// (HW) are kept to the second, the newest MaxExact seconds of each
	// pair; older seconds of that span in minute buckets.
	ExactSpan = 24 * 3600
	// MaxExact bounds the one-second buckets of a pair.
	MaxExact = 1024
	// Beyond ExactSpan events are kept in hour buckets (an event counts
	// as at the start of its hour: up to 3599 s less long), and dropped
	// once their bucket starts MaxWindow or more before HW.
	MinuteWidth = 60
	HourWidth   = 3600
	MaxWindow   = int64(flags.MaxWindow / 1e9)
	// DedupSpan: an event is checked against the ids of the events counted
	// in the DedupSpan before HW; an event older than that (or than the
	// oldest id kept, see MaxSeen) cannot be checked and is not counted.
	DedupSpan = 24 * 3600
	// MaxSeen bounds the event ids a row keeps.
	MaxSeen = 512
	// MaxPairs bounds the pairs of a row (a team tracks at most that many
	// pairs a person can match).
	MaxPairs = 256
	// MaxFuture: an event dated more than MaxFuture after the counting
	// clock is not counted (a wrong client clock would push HW ahead and
	// compact the history early).
	MaxFuture = 3600
)

// Encoding versions: version 2 is version 1 with the backfilled pairs
// after the pairs; a Row without any encodes as version 1.
const (
	version           = 1
	versionBackfilled = 2
)

// ErrCorrupt reports bytes that are not an encoding of counters.
var ErrCorrupt = errors.New("counters: corrupt")

// Row is a row's decoded counters. The zero Row is empty and ready.
type Row struct {
	// HW is the Unix second of the newest event counted (the high-water
	// mark the tiers are relative to); Floor the oldest second an event
	// may have to be counted.
	HW, Floor int64
	// Seen are the recent event ids, by (Sec, ID).
	Seen []Seen
	// Pairs by ID.
	Pairs []Pair
	// Backfilled lists, sorted, the pairs whose backfill (their counts
	// from the events before the projector tracked them) was merged: a
	// second merge of one is a no-op, which makes a repeated or resumed
	// backfill exact.
	Backfilled []uint64
}

// Seen is one counted event's id (xxhash64 of its uuid) and second.
type Seen struct {
	Sec int64
	ID  uint64
}

// Pair is one tracked pair's counted events.
type Pair struct {
	ID uint64
	// First is the Unix second of its first counted event.
	First int64
	// Buckets by (Start, Width); Width is 1, MinuteWidth or HourWidth.
	Buckets []flags.EventBucket
}

// EventBuckets implements flags.EventHistory.
func (r *Row) EventBuckets(pair uint64) []flags.EventBucket {
	if p := r.pair(pair); p != nil {
		return p.Buckets
	}
	return nil
}

// FirstEvent implements flags.EventHistory.
func (r *Row) FirstEvent(pair uint64) (int64, bool) {
	if p := r.pair(pair); p != nil {
		return p.First, true
	}
	return 0, false
}

func (r *Row) pair(id uint64) *Pair {
	i, ok := slices.BinarySearchFunc(r.Pairs, id, func(p Pair, id uint64) int { return cmpU64(p.ID, id) })
	if !ok {
		return nil
	}
	return &r.Pairs[i]
}

// Result says what Add did with an event.
type Result uint8

// Add results.
const (
	Counted   Result = iota
	Duplicate        // its uuid was counted before
	TooLate          // older than Floor: cannot be checked against the ids kept
	TooEarly         // more than MaxFuture after now
)

// Add counts the event uuid at Unix second sec for pairs, once: an event
// whose uuid is among the ids kept is a Duplicate, and one too old to be
// checked is not counted. now is the counting clock (Unix seconds). Pairs
// for which tracked returns false are dropped (nil keeps every pair).
func (r *Row) Add(uuid string, sec int64, pairs []uint64, now int64, tracked func(uint64) bool) Result {
	if sec > now+MaxFuture {
		return TooEarly
	}
	if sec < r.Floor {
		return TooLate
	}
	h := xxhash.Sum64String(uuid)
	for _, s := range r.Seen {
		if s.ID == h {
			return Duplicate
		}
	}
	r.dropUntracked(tracked)
	i, _ := slices.BinarySearchFunc(r.Seen, Seen{sec, h}, cmpSeen)
	r.Seen = slices.Insert(r.Seen, i, Seen{sec, h})
	if sec > r.HW || len(r.Seen) == 1 && len(r.Pairs) == 0 {
		r.HW = sec
	}
	for _, id := range pairs {
		r.count(id, sec)
	}
	r.trimSeen()
	return Counted
}

// dropUntracked drops the pairs (and backfill marks) tracked refuses.
func (r *Row) dropUntracked(tracked func(uint64) bool) {
	if tracked == nil {
		return
	}
	r.Pairs = slices.DeleteFunc(r.Pairs, func(p Pair) bool { return !tracked(p.ID) })
	r.Backfilled = slices.DeleteFunc(r.Backfilled, func(id uint64) bool { return !tracked(id) })
}

// Merge adds a backfill's counts of pair: one event at each Unix second of
// secs (counted once each by the backfill, which dedupes by uuid). It
// returns false and changes nothing when pair's backfill was merged
// before, so merging a row again after a crash does not count twice.
// Events more than MaxFuture after now are skipped, as Add skips them;
// the writer compacts (Compact) as after Add. The merged events raise HW
// like counted ones but their ids are not kept: the backfill read them
// from before the pair was tracked, where the live path does not count
// that pair.
func (r *Row) Merge(pair uint64, secs []int64, now int64, tracked func(uint64) bool) bool {
	if _, ok := slices.BinarySearch(r.Backfilled, pair); ok {
		return false
	}
	r.dropUntracked(tracked)
	if tracked != nil && !tracked(pair) {
		return false
	}
	i, _ := slices.BinarySearch(r.Backfilled, pair)
	r.Backfilled = slices.Insert(r.Backfilled, i, pair)
	empty := len(r.Seen) == 0 && len(r.Pairs) == 0
	for _, sec := range secs {
		if sec > now+MaxFuture {
			continue
		}
		if empty || sec > r.HW {
			r.HW, empty = sec, false
		}
		r.count(pair, sec)
	}
	r.trimSeen()
	return true
}

func (r *Row) count(id uint64, sec int64) {
	i, ok := slices.BinarySearchFunc(r.Pairs, id, func(p Pair, id uint64) int { return cmpU64(p.ID, id) })
	if !ok {
		if len(r.Pairs) >= MaxPairs {
			return
		}
		r.Pairs = slices.Insert(r.Pairs, i, Pair{ID: id, First: sec})
	}
	p := &r.Pairs[i]
	p.First = min(p.First, sec)
	p.Buckets = addBucket(p.Buckets, flags.EventBucket{Start: sec, Width: 1, Count: 1})
}

// addBucket adds b to the sorted buckets, merging with an equal key.
func addBucket(bs []flags.EventBucket, b flags.EventBucket) []flags.EventBucket {
	i, ok := slices.BinarySearchFunc(bs, b, cmpBucket)
	if ok {
		bs[i].Count = satAdd(bs[i].Count, b.Count)
		return bs
	}
	return slices.Insert(bs, i, b)
}

func satAdd(a, b uint32) uint32 {
	if a+b < a {
		return ^uint32(0)
	}
	return a + b
}

// Compact compacts every pair: buckets starting MaxWindow or more before
// HW are dropped, seconds and minutes older than ExactSpan go to hour
// buckets, and one-second buckets beyond the newest MaxExact go to minute
// buckets. The result depends only on the events counted and HW, not on
// the order they came in. Add leaves it to the writer, once before it
// encodes (a batch of events costs one pass per row).
func (r *Row) Compact() {
	for i := range r.Pairs {
		r.Pairs[i].Buckets = compact(r.Pairs[i].Buckets, r.HW)
	}
}

// trimSeen moves Floor up to HW-DedupSpan and bounds the ids kept.
func (r *Row) trimSeen() {
	r.Floor = max(r.Floor, r.HW-DedupSpan)
	if n := len(r.Seen) - MaxSeen; n > 0 {
		r.Floor = max(r.Floor, r.Seen[n-1].Sec+1)
	}
	cut, _ := slices.BinarySearchFunc(r.Seen, Seen{r.Floor, 0}, cmpSeen)
	r.Seen = slices.Delete(r.Seen, 0, cut)
}

func compact(bs []flags.EventBucket, hw int64) []flags.EventBucket {
	exact, old := 0, false
	for _, b := range bs {
		switch {
		case b.Start <= hw-MaxWindow:
			old = true
		case b.Width < HourWidth && b.Start < hw-ExactSpan:
			old = true
		case b.Width == 1:
			exact++
		}
	}
	excess := exact - MaxExact
	if !old && excess <= 0 {
		return bs // the common case: nothing to compact
	}
	out := bs[:0:0]
	var moved []flags.EventBucket
	for _, b := range bs {
		switch {
		case b.Start <= hw-MaxWindow:
			continue
		case b.Width < HourWidth && b.Start < hw-ExactSpan:
			moved = append(moved, flags.EventBucket{Start: floorTo(b.Start, HourWidth), Width: HourWidth, Count: b.Count})
			continue
		case b.Width == 1 && excess > 0:
			excess--
			moved = append(moved, flags.EventBucket{Start: floorTo(b.Start, MinuteWidth), Width: MinuteWidth, Count: b.Count})
			continue
		}
		out = append(out, b)
	}
	for _, b := range moved {
		if b.Start <= hw-MaxWindow {
			continue
		}
		out = addBucket(out, b)
	}
	return out
}

func floorTo(sec, w int64) int64 {
	r := sec % w
	if r < 0 {
		r += w
	}
	return sec - r
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpSeen(a, b Seen) int {
	if a.Sec != b.Sec {
		if a.Sec < b.Sec {
			return -1
		}
		return 1
	}
	return cmpU64(a.ID, b.ID)
}

func cmpBucket(a, b flags.EventBucket) int {
	if a.Start != b.Start {
		if a.Start < b.Start {
			return -1
		}
		return 1
	}
	return int(a.Width) - int(b.Width)
}

// Encoding, version 1 (uvarint unless said otherwise):
//
//	1 byte   version
//	varint   HW (zigzag)
//	         HW - Floor
//	         number of ids; each: HW - Sec, then 8 bytes LE id
//	         number of pairs; each: 8 bytes LE id, HW - First (zigzag),
//	         number of buckets; each: (Start - previous Start) << 2 | width
//	         code (0: 1 s, 1: minute, 2: hour; the first Start is relative
//	         to HW - MaxWindow - HourWidth), count
//	version 2 only: number of backfilled pairs (at least 1); each 8
//	         bytes LE id, ascending
//
// Append of a decoded Row gives back the same bytes.

// Append appends r's encoding to dst (call Compact first to bound it). An
// empty Row encodes as nothing.
func (r *Row) Append(dst []byte) []byte {
	if len(r.Seen) == 0 && len(r.Pairs) == 0 && len(r.Backfilled) == 0 {
		return dst
	}
	if len(r.Backfilled) > 0 {
		dst = append(dst, versionBackfilled)
	} else {
		dst = append(dst, version)
	}
	dst = binary.AppendVarint(dst, r.HW)
	dst = binary.AppendUvarint(dst, uint64(r.HW-r.Floor))
	dst = binary.AppendUvarint(dst, uint64(len(r.Seen)))
	for _, s := range r.Seen {
		dst = binary.AppendUvarint(dst, uint64(r.HW-s.Sec))
		dst = binary.LittleEndian.AppendUint64(dst, s.ID)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Pairs)))
	base := r.HW - MaxWindow - HourWidth
	for _, p := range r.Pairs {
		dst = binary.LittleEndian.AppendUint64(dst, p.ID)
		dst = binary.AppendVarint(dst, r.HW-p.First)
		dst = binary.AppendUvarint(dst, uint64(len(p.Buckets)))
		prev := base
		for _, b := range p.Buckets {
			dst = binary.AppendUvarint(dst, uint64(b.Start-prev)<<2|uint64(widthCode(b.Width)))
			dst = binary.AppendUvarint(dst, uint64(b.Count))
			prev = b.Start
		}
	}
	if len(r.Backfilled) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(r.Backfilled)))
		for _, id := range r.Backfilled {
			dst = binary.LittleEndian.AppendUint64(dst, id)
		}
	}
	return dst
}

func widthCode(w int32) int {
	switch w {
	case MinuteWidth:
		return 1
	case HourWidth:
		return 2
	}
	return 0
}

var widths = [...]int32{1, MinuteWidth, HourWidth}

// maxBuckets bounds a pair's buckets: MaxExact seconds, a day of minutes
// and MaxWindow of hours, with one more of each at the tier boundaries.
const maxBuckets = MaxExact + ExactSpan/MinuteWidth + int(MaxWindow/HourWidth) + 3

// Decode decodes counters; empty bytes are an empty Row. It checks every
// bound and order Append keeps, so what decodes re-encodes to the same
// bytes.
func Decode(b []byte) (*Row, error) {
	r := &Row{}
	if len(b) == 0 {
		return r, nil
	}
	d := decoder{b: b}
	v := d.byte()
	if v != version && v != versionBackfilled {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	r.HW = d.varint()
	if r.HW < -1<<50 || r.HW > 1<<50 {
		d.fail("hw")
	}
	r.Floor = r.HW - d.bounded(DedupSpan, "floor")
	n := d.bounded(MaxSeen, "ids")
	if d.err == nil {
		r.Seen = make([]Seen, 0, n)
	}
	for i := int64(0); i < n && d.err == nil; i++ {
		s := Seen{Sec: r.HW - d.bounded(DedupSpan, "id second"), ID: d.u64()}
		if s.Sec < r.Floor || len(r.Seen) > 0 && cmpSeen(r.Seen[len(r.Seen)-1], s) >= 0 {
			d.fail("id order")
		}
		r.Seen = append(r.Seen, s)
	}
	np := d.bounded(MaxPairs, "pairs")
	base := r.HW - MaxWindow - HourWidth
	for i := int64(0); i < np && d.err == nil; i++ {
		p := Pair{ID: d.u64()}
		p.First = r.HW - d.varint()
		if len(r.Pairs) > 0 && r.Pairs[len(r.Pairs)-1].ID >= p.ID {
			d.fail("pair order")
		}
		nb := d.bounded(int64(maxBuckets), "buckets")
		prev := base
		for j := int64(0); j < nb && d.err == nil; j++ {
			x := d.uvarint()
			code := x & 3
			delta := x >> 2
			if code > 2 || delta > uint64(MaxWindow+2*HourWidth) {
				d.fail("bucket")
				break
			}
			bk := flags.EventBucket{Start: prev + int64(delta), Width: widths[code]}
			c := d.uvarint()
			if c == 0 || c > 1<<32-1 || bk.Start > r.HW || bk.Start <= r.HW-MaxWindow {
				d.fail("bucket")
				break
			}
			bk.Count = uint32(c)
			if len(p.Buckets) > 0 && cmpBucket(p.Buckets[len(p.Buckets)-1], bk) >= 0 {
				d.fail("bucket order")
			}
			p.Buckets = append(p.Buckets, bk)
			prev = bk.Start
		}
		r.Pairs = append(r.Pairs, p)
	}
	if v == versionBackfilled && d.err == nil {
		n := d.bounded(MaxPairs, "backfilled")
		if n == 0 {
			d.fail("backfilled") // version 1 has none: one encoding per Row
		}
		for i := int64(0); i < n && d.err == nil; i++ {
			id := d.u64()
			if len(r.Backfilled) > 0 && r.Backfilled[len(r.Backfilled)-1] >= id {
				d.fail("backfilled order")
			}
			r.Backfilled = append(r.Backfilled, id)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err == nil && len(r.Seen) == 0 && len(r.Pairs) == 0 && len(r.Backfilled) == 0 {
		d.fail("empty") // Append writes nothing for an empty Row
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("short")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail("varint") // overlong forms too: one encoding per Row
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != uvarintLen(uint64(v)<<1^uint64(v>>63)) {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func (d *decoder) bounded(limit int64, what string) int64 {
	v := d.uvarint()
	if v > uint64(limit) {
		d.fail(what)
		return 0
	}
	return int64(v)
}
