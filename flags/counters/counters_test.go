package counters

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vexil-dev/vexil/flags"
)

const t0 = int64(1_795_000_000) // a Unix second in 2026

type event struct {
	uuid  string
	sec   int64
	pairs []uint64
}

func add(r *Row, evs []event) (counted int) {
	for i, e := range evs {
		if r.Add(e.uuid, e.sec, e.pairs, e.sec, nil) == Counted {
			counted++
		}
		if i%50 == 49 {
			r.Compact() // as a writer does once per batch
		}
	}
	r.Compact()
	return counted
}

func total(r *Row, pair uint64) (n int64) {
	for _, b := range r.EventBuckets(pair) {
		n += int64(b.Count)
	}
	return n
}

func TestDuplicatesCountOnce(t *testing.T) {
	var r Row
	if got := r.Add("u1", t0, []uint64{7}, t0, nil); got != Counted {
		t.Fatalf("first: %v", got)
	}
	if got := r.Add("u1", t0, []uint64{7}, t0, nil); got != Duplicate {
		t.Fatalf("redelivery: %v, want Duplicate", got)
	}
	if got := r.Add("u1", t0+5, []uint64{7}, t0+5, nil); got != Duplicate {
		t.Fatalf("same uuid, another time: %v, want Duplicate", got)
	}
	if got := r.Add("u2", t0-10, []uint64{7}, t0, nil); got != Counted {
		t.Fatalf("an earlier event after a later one: %v", got)
	}
	if got := r.Add("u3", t0+2*MaxFuture, []uint64{7}, t0, nil); got != TooEarly {
		t.Fatalf("far future: %v, want TooEarly", got)
	}
	if got := r.Add("u4", t0-DedupSpan-1, []uint64{7}, t0, nil); got != TooLate {
		t.Fatalf("older than the dedup span: %v, want TooLate", got)
	}
	if n := total(&r, 7); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	if f, ok := r.FirstEvent(7); !ok || f != t0-10 {
		t.Fatalf("first %d %v, want %d", f, ok, t0-10)
	}
	// Through an encoding, as the projector stores it between batches.
	r2, err := Decode(r.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.Add("u1", t0, []uint64{7}, t0, nil); got != Duplicate {
		t.Fatalf("redelivery after a store round trip: %v", got)
	}
}

// Any order of delivery, with duplicates, gives the same bytes when every
// event is within the dedup span of the newest.
func TestOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		var evs []event
		for i := range 300 {
			sec := t0 + rng.Int64N(DedupSpan-1)
			pairs := []uint64{1}
			if rng.IntN(3) == 0 {
				pairs = []uint64{1, 2}
			}
			evs = append(evs, event{uuid: fmt.Sprint("e", trial, "-", i), sec: sec, pairs: pairs})
		}
		with := append(evs, evs[:100]...) // duplicates
		var a, b Row
		na := add(&a, with)
		rng.Shuffle(len(with), func(i, j int) { with[i], with[j] = with[j], with[i] })
		nb := add(&b, with)
		if na != len(evs) || nb != len(evs) {
			t.Fatalf("counted %d and %d of %d distinct events", na, nb, len(evs))
		}
		ea, eb := a.Append(nil), b.Append(nil)
		if !bytes.Equal(ea, eb) {
			t.Fatalf("trial %d: encodings differ by order", trial)
		}
		if total(&a, 1) != int64(len(evs)) {
			t.Fatalf("pair 1 counts %d, want %d", total(&a, 1), len(evs))
		}
	}
}

// Beyond ExactSpan events are in hour buckets: a window count is off only
// by the events within an hour of the window's start, never more.
func TestTiersErrorBound(t *testing.T) {
	var r Row
	var secs []int64
	hw := t0 + 60*86400
	for s := t0; s <= hw; s += 317 { // one event every 317 s for 60 days
		secs = append(secs, s)
	}
	// Add in time order (the dedup span forbids older ones later).
	for i, s := range secs {
		if got := r.Add(fmt.Sprint(i), s, []uint64{9}, s, nil); got != Counted {
			t.Fatalf("event %d: %v", i, got)
		}
		if i%100 == 99 {
			r.Compact()
		}
	}
	r.Compact()
	now := secs[len(secs)-1]
	for _, w := range []int64{60, 300, 3600, 86400, 7 * 86400, 30 * 86400} {
		exact := int64(0)
		for _, s := range secs {
			if s > now-w && s <= now {
				exact++
			}
		}
		got := int64(0)
		for _, b := range r.EventBuckets(9) {
			if b.Start > now-w && b.Start <= now {
				got += int64(b.Count)
			}
		}
		if w <= ExactSpan {
			if got != exact {
				t.Fatalf("window %d s: %d, want exactly %d", w, got, exact)
			}
			continue
		}
		// Events in the hour before the window start may count or not.
		slack := int64(0)
		for _, s := range secs {
			if s > now-w-HourWidth && s <= now-w+HourWidth {
				slack++
			}
		}
		if d := got - exact; d < -slack || d > slack {
			t.Fatalf("window %d s: %d, exact %d, beyond the one-hour bound (%d events)", w, got, exact, slack)
		}
	}
	for _, b := range r.EventBuckets(9) {
		if b.Width != HourWidth && b.Start < hw-ExactSpan {
			t.Fatalf("bucket %+v older than ExactSpan is not an hour bucket", b)
		}
	}
}

// TestBytesPerPair measures the encoding: typical and worst cases are
// bounded (docs/cohorts.md records these numbers).
func TestBytesPerPair(t *testing.T) {
	cases := []struct {
		name  string
		every int64 // seconds between events
		span  int64
		max   int
	}{
		{"5 events in a day", 86400 / 5, 86400, 120},
		{"one event an hour for 90 days", 3600, 90 * 86400, 8 * 1024},
		{"one event a minute for 90 days", 60, 90 * 86400, 16 * 1024},
		{"one event a second for 2 days", 1, 2 * 86400, 32 * 1024},
	}
	for _, c := range cases {
		var r Row
		i := 0
		for s := t0; s < t0+c.span; s += c.every {
			r.Add(fmt.Sprint(i), s, []uint64{1}, s, nil)
			if i++; i%500 == 0 {
				r.Compact()
			}
		}
		r.Compact()
		one := len(r.Append(nil))
		// A second pair on the same events: the cost of one more pair.
		var r2 Row
		i = 0
		for s := t0; s < t0+c.span; s += c.every {
			r2.Add(fmt.Sprint(i), s, []uint64{1, 2}, s, nil)
			if i++; i%500 == 0 {
				r2.Compact()
			}
		}
		r2.Compact()
		per := len(r2.Append(nil)) - one
		t.Logf("%s: %d events, %d bytes for the row (ids included), %d bytes per pair, %d buckets", c.name, i, one, per, len(r.EventBuckets(1)))
		if per > c.max || one-per > 8+MaxSeen*12 {
			t.Fatalf("%s: %d bytes per pair (bound %d), %d for the ids", c.name, per, c.max, one-per)
		}
	}
}

func TestUntrackedPairsDropped(t *testing.T) {
	var r Row
	r.Add("a", t0, []uint64{1, 2}, t0, nil)
	r.Add("b", t0+1, []uint64{2}, t0+1, func(id uint64) bool { return id == 2 })
	if r.EventBuckets(1) != nil || total(&r, 2) != 2 {
		t.Fatalf("pairs %+v", r.Pairs)
	}
}

func TestDecodeRefuses(t *testing.T) {
	var r Row
	r.Add("a", t0, []uint64{1}, t0, nil)
	good := r.Append(nil)
	for name, b := range map[string][]byte{
		"version":  append([]byte{9}, good[1:]...),
		"trailing": append(append([]byte{}, good...), 0),
		"short":    good[:len(good)-1],
		"empty":    {1, 0, 0, 0, 0},
		"overlong": append([]byte{1, 0x80 | good[1], 0}, good[2:]...), // found by FuzzDecode
		"v2 none":  append(append([]byte{2}, good[1:]...), 0),         // version 1's encoding
	} {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if r, err := Decode(nil); err != nil || len(r.Pairs) != 0 {
		t.Fatalf("nil: %v %v", r, err)
	}
}

func FuzzDecode(f *testing.F) {
	var r Row
	r.Add("a", t0, []uint64{1, 3}, t0, nil)
	var m Row
	m.Merge(3, []int64{t0 - 7200, t0}, t0, nil)
	f.Add(m.Append(nil))
	r.Add("b", t0-3*86400, []uint64{1}, t0, nil)
	r.Add("c", t0+5, []uint64{3}, t0, nil)
	r.Compact()
	f.Add(r.Append(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := r.Append(nil); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, got)
		}
		// What decodes can be counted into.
		r.Add("x", r.HW, []uint64{1}, r.HW, nil)
		if _, err := Decode(r.Append(nil)); err != nil {
			t.Fatalf("after Add: %v", err)
		}
	})
}

var _ flags.EventHistory = (*Row)(nil)

// A backfill merges once: the pair's counts from before it was tracked
// join the live ones, a second merge (a resumed or repeated backfill) is a
// no-op, the mark survives an encoding, and an untracked pair loses it.
func TestMergeOnce(t *testing.T) {
	var r Row
	if got := r.Add("live1", t0, []uint64{7}, t0, nil); got != Counted {
		t.Fatal(got)
	}
	old := []int64{t0 - 3*86400, t0 - 86400 - 5, t0 - 30}
	if !r.Merge(7, old, t0, nil) {
		t.Fatal("first merge refused")
	}
	if r.Merge(7, old, t0, nil) {
		t.Fatal("second merge of the same pair accepted")
	}
	r.Compact()
	r2, err := Decode(r.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r2.Append(nil), r.Append(nil)) {
		t.Fatal("round trip changed the bytes")
	}
	if r2.Merge(7, old, t0, nil) {
		t.Fatal("merge accepted after a store round trip")
	}
	if n := total(r2, 7); n != 4 {
		t.Fatalf("count %d, want 4 (1 live, 3 backfilled)", n)
	}
	if f, _ := r2.FirstEvent(7); f != t0-3*86400 {
		t.Fatalf("first %d, want the oldest backfilled event", f)
	}
	if r2.HW != t0 {
		t.Fatalf("HW %d, want %d", r2.HW, t0)
	}
	// A row with nothing counted live takes HW from the backfill.
	var e Row
	if !e.Merge(9, []int64{t0 - 100, t0 - 10}, t0, nil) || e.HW != t0-10 {
		t.Fatalf("HW %d", e.HW)
	}
	// An empty backfill still marks the pair done.
	var z Row
	z.Merge(5, nil, t0, nil)
	z2, err := Decode(z.Append(nil))
	if err != nil || z2.Merge(5, []int64{t0}, t0, nil) {
		t.Fatalf("empty backfill mark lost: %v", err)
	}
	// Untracked, the pair and its mark go.
	r2.Add("live2", t0+1, nil, t0+1, func(id uint64) bool { return id != 7 })
	if len(r2.Backfilled) != 0 || total(r2, 7) != 0 {
		t.Fatalf("untracked pair kept: %+v", r2.Backfilled)
	}
}
