package usage

import (
	"math"
	"unsafe"
)

// A request that evaluated every flag of its team (Record's all) carries
// the team's flags in the team's order, the same keys request after
// request until the definitions change. Such requests are counted in a
// table of slots indexed by the flag's position: one small slot per flag,
// side by side in one slice, so that counting 50 flags walks 100
// consecutive 64-byte lines (which the processor prefetches) instead of
// 50 scattered flagAccs of four lines each. A slot keeps only what
// differs between flags (stored, errors, its first two values); the
// evaluations are the table's request count, once per request. The
// table is folded into the flagAccs, exactly, at the flush, when the
// team's keys change, and before a 32-bit counter could overflow.

// slot is one flag's counts of the all-flags requests since the last
// fold: two cache lines, the pointers in the first. Strings are kept as
// pointer and length (32-bit: keys and values are bounded far below).
// slotValues values fit a boolean flag (true, false) and a multivariate
// one of up to five variants and false; more go to the flagAcc.
type slot struct {
	key    *byte
	f      *flagAcc
	val    [slotValues]*byte
	klen   uint32
	stored uint32
	errors uint32
	vlen   [slotValues]uint32
	n      [slotValues]uint32 // 0: the value is unused
}

const slotValues = 6

// slotTable is a team's table in one shard.
type slotTable struct {
	slots []slot
	// reqs counts the requests in the slots by endpoint; nreqs all of
	// them, against the 32-bit slot counters.
	reqs  [numEndpoints]uint64
	nreqs uint64
	// off: a key of the team could not be tracked (MaxTracked); its
	// all-flags requests take the per-flag path until the flush.
	off bool
}

// sameBytes is same for a string kept as pointer and length.
func sameBytes(p *byte, n uint32, s string) bool {
	if int(n) != len(s) {
		return false
	}
	return p == unsafe.StringData(s) || unsafe.String(p, n) == s
}

// init points the table's slots at evals' keys, each with its flagAcc
// (created if new). It returns false, leaving the table off, when a key
// is past MaxTracked.
func (t *slotTable) init(r *Recorder, sh *shard, ta *teamAcc, evals []Eval) bool {
	if cap(t.slots) >= len(evals) {
		t.slots = t.slots[:len(evals)]
		clear(t.slots)
	} else {
		t.slots = make([]slot, len(evals))
	}
	for i := range evals {
		key := evals[i].Flag
		f := ta.flags[key]
		if f == nil {
			if sh.flags >= r.perCap {
				t.slots, t.off = t.slots[:0], true
				return false
			}
			f = &flagAcc{key: key}
			ta.flags[key] = f
			sh.flags++
		}
		t.slots[i] = slot{key: unsafe.StringData(key), klen: uint32(len(key)), f: f}
	}
	return true
}

// fold adds the slots' counts to their flagAccs and empties them. The
// current request (endpoint ep) was counted in reqs but only in the
// slots before position upto (len(slots): all of them; -1: none
// counted).
func (t *slotTable) fold(upto int, ep Endpoint) {
	var total uint64
	for _, n := range t.reqs {
		total += n
	}
	for i := range t.slots {
		s := &t.slots[i]
		f := s.f
		evals, byEp := total, t.reqs
		if upto >= 0 && i >= upto {
			evals--
			byEp[ep]--
		}
		f.evaluations += evals
		for e, n := range byEp {
			f.byEndpoint[e] += n
		}
		f.stored += uint64(s.stored)
		f.errors += uint64(s.errors)
		for k := range s.val {
			if s.n[k] > 0 {
				f.addValueN(unsafe.String(s.val[k], s.vlen[k]), uint64(s.n[k]))
			}
		}
		s.stored, s.errors, s.val, s.vlen, s.n = 0, 0, [slotValues]*byte{}, [slotValues]uint32{}, [slotValues]uint32{}
	}
	t.reqs, t.nreqs = [numEndpoints]uint64{}, 0
}

// record counts one all-flags request in the table; it returns the
// position from which evals are left for the per-flag path (len(evals):
// none left), after the team's keys changed or the table is off.
func (t *slotTable) record(r *Recorder, sh *shard, ta *teamAcc, ep Endpoint, evals []Eval) int {
	if t.off {
		return 0
	}
	if len(t.slots) != len(evals) {
		t.fold(-1, ep)
		if !t.init(r, sh, ta, evals) {
			return 0
		}
	}
	if t.nreqs == math.MaxUint32 {
		t.fold(-1, ep)
	}
	t.reqs[ep]++
	t.nreqs++
	slots := t.slots[:len(evals)]
	for i := range evals {
		e, s := &evals[i], &slots[i]
		// Pointers first: a team's requests carry the same key and value
		// strings; the rest is out of line (same content, new values).
		if s.key != unsafe.StringData(e.Flag) || int(s.klen) != len(e.Flag) {
			if !sameBytes(s.key, s.klen, e.Flag) {
				return t.rekey(r, sh, ta, ep, evals, i)
			}
		}
		s.stored += uint32(*(*uint8)(unsafe.Pointer(&e.Stored))) // a bool is 0 or 1
		if e.Failed {
			s.errors++
			continue
		}
		// An unused value is nil and 0 long: matched only by an empty
		// value without memory, which it then counts, rightly.
		v, n := unsafe.StringData(e.Value), uint32(len(e.Value))
		k := 0
		for k < slotValues && (s.val[k] != v || s.vlen[k] != n) {
			k++
		}
		if k < slotValues {
			s.n[k]++
		} else {
			s.addValue(e.Value)
		}
	}
	return len(evals)
}

// addValue counts a value whose memory is not one of the slot's: the
// same content as one, a first or second value, or one more for the
// flagAcc.
//
//go:noinline
func (s *slot) addValue(v string) {
	for k := range s.val {
		if s.n[k] > 0 && sameBytes(s.val[k], s.vlen[k], v) {
			s.n[k]++
			return
		}
	}
	for k := range s.val {
		if s.n[k] == 0 {
			s.val[k], s.vlen[k], s.n[k] = unsafe.StringData(v), uint32(len(v)), 1
			return
		}
	}
	s.f.addValue(v)
}

// rekey handles a key that differs from its slot's at position i: the
// definitions changed. This request's evaluations from i on are left to
// the per-flag path, the next requests go to a table of the new keys.
//
//go:noinline
func (t *slotTable) rekey(r *Recorder, sh *shard, ta *teamAcc, ep Endpoint, evals []Eval, i int) int {
	t.fold(i, ep)
	t.init(r, sh, ta, evals)
	return i
}
