package usage

import (
	"math"
	"slices"
	"unsafe"

	"github.com/vexil-dev/vexil/flags"
)

// A request that evaluated every flag of its team carries the team's
// flags in the team's order, the same keys request after request until
// the definitions change. Such requests are counted in a table of slots
// indexed by the flag's position: one 64-byte slot per flag, side by
// side in one slice, so that counting 50 flags walks 50 consecutive slots
// (which the processor prefetches) instead of 50 scattered flagAccs of
// four cache lines each. A slot keeps only what differs between flags
// (stored, errors, its boolean answers and first variants); the
// evaluations are the table's request count, once per request, and so
// are the stored answers of the requests whose every answer was stored
// (Tally). The answers are the evaluation's results themselves (Answer),
// read in place, so the caller copies nothing per flag to have them
// counted. Which flag a slot counts is the table's Layout, checked once
// per request by pointer, not per flag. The table is folded into the
// flagAccs, exactly, at the flush, when the team's layout changes, and
// before a 32-bit counter could overflow.

// Layout is a team's flag keys in the order its all-flags requests
// answer them. The caller makes one per definitions (evalsvc: per cached
// team state) and passes it with every request (RecordAll): the recorder
// then knows every slot's key from one pointer.
type Layout struct {
	team int64
	keys []string
}

// NewLayout returns the layout of team's flags, keys in answer order.
func NewLayout(team int64, keys []string) *Layout {
	return &Layout{team: team, keys: slices.Clone(keys)}
}

// Len is the number of flags in the layout.
func (l *Layout) Len() int { return len(l.keys) }

// Answer is one flag's answer to a request that evaluated every flag of
// its team, at the flag's position in the team's Layout: the evaluation's
// own result, not a copy of what usage counts of it (Value, failed when
// Err is set), so that the caller writes nothing per flag but the pointer
// it keeps anyway.
type Answer struct {
	// Result is the flag's result; never nil.
	Result *flags.Result
	// Stored is set when precomputed results answered.
	Stored bool
}

// Tally is what the caller knows of an all-flags request's answers as a
// whole, so that RecordAll need not find it out flag by flag: when every
// answer was stored, or none, and none failed, it reads each result for
// its value alone. RecordAll trusts it; a wrong Tally miscounts.
type Tally struct {
	// Stored is how many answers have Stored set.
	Stored int
	// Failed is set when some answer's Result may have Err set (unset: no
	// result has).
	Failed bool
}

// Value is the value usage counts for a result: its variant, or "true" /
// "false".
func Value(r *flags.Result) string {
	switch {
	case r.Variant != "":
		return r.Variant
	case r.Enabled:
		return "true"
	}
	return "false"
}

// slot is one flag's counts of the all-flags requests since the last
// fold: one cache line's worth. A boolean answer (no variant) is counted
// by its bit, without a string; variants are kept as pointer and 16-bit
// length (a longer value never matches and goes to the flagAcc).
// slotVariants variants and the two booleans fit a multivariate flag of
// up to three variants that also answers false; more go to the flagAcc.
type slot struct {
	stored uint32
	errors uint32
	bools  [2]uint32            // false, true
	n      [slotVariants]uint32 // 0: the variant is unused
	vlen   [slotVariants]uint16
	val    [slotVariants]*byte
}

const slotVariants = 3 // record checks each by hand: change it with this

// slotTable is a team's table in one shard.
type slotTable struct {
	layout *Layout
	slots  []slot
	// accs are the flagAccs of layout's keys, by position: only the fold
	// and the values past a slot's read them.
	accs []*flagAcc
	// reqs counts the requests in the slots by endpoint; nreqs all of
	// them, against the 32-bit slot counters.
	reqs  [numEndpoints]uint64
	nreqs uint64
	// stored counts the requests whose every answer was stored, which
	// add to each slot's stored at the fold.
	stored uint64
	// off: a key of the team could not be tracked (MaxTracked); its
	// all-flags requests take the per-flag path until the flush.
	off bool
}

// init points the table at l, each slot with its flagAcc (created if
// new). It returns false, leaving the table off, when a key is past
// MaxTracked.
func (t *slotTable) init(r *Recorder, sh *shard, ta *teamAcc, l *Layout) bool {
	n := len(l.keys)
	if cap(t.slots) >= n {
		t.slots = t.slots[:n]
		clear(t.slots)
	} else {
		t.slots = make([]slot, n)
	}
	t.accs = slices.Grow(t.accs[:0], n)[:n]
	t.layout = l
	for i, key := range l.keys {
		f := ta.flags[key]
		if f == nil {
			if sh.flags >= r.perCap {
				t.slots, t.accs, t.layout, t.off = t.slots[:0], t.accs[:0], nil, true
				return false
			}
			f = &flagAcc{key: key}
			ta.flags[key] = f
			sh.flags++
		}
		t.accs[i] = f
	}
	return true
}

// fold adds the slots' counts to their flagAccs and empties them.
func (t *slotTable) fold() {
	var total uint64
	for _, n := range t.reqs {
		total += n
	}
	for i := range t.slots {
		s, f := &t.slots[i], t.accs[i]
		f.evaluations += total
		for e, n := range t.reqs {
			f.byEndpoint[e] += n
		}
		f.stored += t.stored + uint64(s.stored)
		f.errors += uint64(s.errors)
		if s.bools[0] > 0 {
			f.addValueN("false", uint64(s.bools[0]))
		}
		if s.bools[1] > 0 {
			f.addValueN("true", uint64(s.bools[1]))
		}
		for k := range s.val {
			if s.n[k] > 0 {
				f.addValueN(unsafe.String(s.val[k], s.vlen[k]), uint64(s.n[k]))
			}
		}
		*s = slot{}
	}
	t.reqs, t.nreqs, t.stored = [numEndpoints]uint64{}, 0, 0
}

// record counts one all-flags request of layout l in the table; it
// returns false, counting nothing, when the table is off.
func (t *slotTable) record(r *Recorder, sh *shard, ta *teamAcc, l *Layout, ep Endpoint, answers []Answer, tally Tally) bool {
	if t.off {
		return false
	}
	if t.layout != l {
		if t.layout == nil || !slices.Equal(t.layout.keys, l.keys) {
			t.fold()
			if !t.init(r, sh, ta, l) {
				return false
			}
		}
		// The same keys in a new layout (definitions reloaded unchanged)
		// keep the counts.
		t.layout = l
	}
	if t.nreqs == math.MaxUint32 {
		t.fold()
	}
	t.reqs[ep]++
	t.nreqs++
	slots := t.slots[:len(answers)]
	if tally.Failed || tally.Stored != 0 && tally.Stored != len(answers) {
		for i := range answers {
			a, s := &answers[i], &slots[i]
			s.stored += uint32(b2u(a.Stored))
			r := a.Result
			if r.Err != nil {
				s.errors++
				continue
			}
			if len(r.Variant) == 0 {
				s.bools[b2u(r.Enabled)&1]++ // &1: no bounds check
				continue
			}
			// Pointers first: a team's requests mostly carry the same
			// variant strings (its definitions'); addValue compares the
			// bytes, out of line. An unused variant is nil and 0 long,
			// which no variant is.
			v, n := unsafe.StringData(r.Variant), uint(len(r.Variant))
			switch {
			case s.val[0] == v && uint(s.vlen[0]) == n:
				s.n[0]++
			case s.val[1] == v && uint(s.vlen[1]) == n:
				s.n[1]++
			case s.val[2] == v && uint(s.vlen[2]) == n:
				s.n[2]++
			default:
				t.addValue(i, r.Variant)
			}
		}
		return true
	}
	// The usual request: every answer stored, or none, and none failed.
	// The answers differ only by value; the stored ones are counted once
	// for the table. This is the loop above without its first lines, by
	// hand: one loop that tests which kind of request it counts costs 4
	// instructions a flag more, and a function for the value part is past
	// the compiler's inlining budget (a call a flag costs more still).
	if tally.Stored != 0 {
		t.stored++
	}
	for i := range answers {
		r, s := answers[i].Result, &slots[i]
		if len(r.Variant) == 0 {
			s.bools[b2u(r.Enabled)&1]++
			continue
		}
		v, n := unsafe.StringData(r.Variant), uint(len(r.Variant))
		switch {
		case s.val[0] == v && uint(s.vlen[0]) == n:
			s.n[0]++
		case s.val[1] == v && uint(s.vlen[1]) == n:
			s.n[1]++
		case s.val[2] == v && uint(s.vlen[2]) == n:
			s.n[2]++
		default:
			t.addValue(i, r.Variant)
		}
	}
	return true
}

// b2u is 1 for true, 0 for false, without a branch.
func b2u(b bool) uint {
	return uint(*(*uint8)(unsafe.Pointer(&b)))
}

// addValue counts, at position i, a variant whose memory is not one of
// the slot's: the same content as one, a new variant, or one more for the
// flagAcc.
//
//go:noinline
func (t *slotTable) addValue(i int, v string) {
	s := &t.slots[i]
	for k := range s.val {
		if s.n[k] > 0 && int(s.vlen[k]) == len(v) && unsafe.String(s.val[k], s.vlen[k]) == v {
			s.n[k]++
			return
		}
	}
	if len(v) <= math.MaxUint16 {
		for k := range s.val {
			if s.n[k] == 0 {
				s.val[k], s.vlen[k], s.n[k] = unsafe.StringData(v), uint16(len(v)), 1
				return
			}
		}
	}
	t.accs[i].addValue(v)
}
