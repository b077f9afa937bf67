package usage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// minuteCounts reads the minute rows of every flag in keys, uniques left
// out.
func minuteCounts(t *testing.T, st store.UsageStore, now time.Time, keys []string) map[string]Counts {
	t.Helper()
	out := map[string]Counts{}
	b := now.Truncate(time.Minute).Unix()
	for _, k := range keys {
		err := st.ScanUsage(context.Background(), 1, k, store.UsageMinute, b, b+1, func(r store.UsageRow) error {
			var c Counts
			if err := c.UnmarshalBinary(r.Value); err != nil {
				return err
			}
			c.uniques, c.Last = nil, 0
			out[k] = c
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// resultOf is an evaluation result that usage counts as e: a boolean
// answer for "true" and "false", unless asVariant (a variant of that
// name, which counts the same), else a variant; failed with an error.
func resultOf(e Eval, asVariant bool) *flags.Result {
	r := &flags.Result{Key: e.Flag, Enabled: true, Variant: e.Value}
	switch {
	case e.Failed:
		r.Enabled, r.Variant, r.Err = false, "", errors.New("failed")
	case asVariant:
	case e.Value == "true":
		r.Variant = ""
	case e.Value == "false":
		r.Enabled, r.Variant = false, ""
	}
	return r
}

// TestValue: the value counted for a result.
func TestValue(t *testing.T) {
	for _, c := range []struct {
		r    flags.Result
		want string
	}{
		{flags.Result{Enabled: true}, "true"},
		{flags.Result{}, "false"},
		{flags.Result{Enabled: true, Variant: "control"}, "control"},
		{flags.Result{Variant: "false"}, "false"},
	} {
		if got := Value(&c.r); got != c.want {
			t.Errorf("Value(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

// TestSlotTableExact: all-flags requests, counted in the table of slots
// by position (RecordAll with a Layout, taking the results and a Tally
// of them, through both of its loops) or flag by
// flag into the team's sketch (Record with all), give exactly the counts
// of the per-flag path (the same requests recorded as subsets), through
// definitions that change a key in the middle of the list or the list's
// length, a new Layout of unchanged keys, more variants per flag than a
// slot holds, variants that are equal but not the same memory, variants
// named "true" and "false" beside boolean answers, a variant too long for
// a slot's 16-bit length, failed results, a flush in the middle, the
// 32-bit overflow fold and MaxTracked.
func TestSlotTableExact(t *testing.T) {
	for _, maxTracked := range []int{0, 8 * 12} {
		now := time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC)
		clock := func() time.Time { return now }
		stA, stB := memstore.New(), memstore.New()
		a, err := NewRecorder(RecorderConfig{Store: stA, Node: "n", Now: clock, MaxTracked: maxTracked})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewRecorder(RecorderConfig{Store: stB, Node: "n", Now: clock, MaxTracked: maxTracked})
		if err != nil {
			t.Fatal(err)
		}
		keys := func(n int, changed int) []string {
			ks := make([]string, n)
			for i := range ks {
				ks[i] = fmt.Sprintf("f%d", i)
			}
			if changed >= 0 {
				ks[changed] = "changed"
			}
			return ks
		}
		versions := [][]string{keys(10, -1), keys(10, 5), keys(12, -1), keys(3, 0), keys(10, -1)}
		all := []string{"changed"}
		all = append(all, keys(12, -1)...)
		values := []string{"true", "false", "a", "b", "c", "d", "e", "f", "g"}
		long := strings.Repeat("v", 70_000)
		layouts := make([]*Layout, len(versions))
		for i, ks := range versions {
			layouts[i] = NewLayout(1, ks)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for step := range 2000 {
			ks := versions[step/400]
			evals := make([]Eval, len(ks))
			// Most requests' answers are all stored or none, none failed
			// (RecordAll's usual loop); the rest mixed.
			kind := rng.IntN(3)
			for i, k := range ks {
				v := values[rng.IntN(1+i%len(values))]
				if rng.IntN(4) == 0 {
					v = strings.Clone(v)
				}
				if rng.IntN(500) == 0 {
					v = long
				}
				evals[i] = Eval{Flag: k, Value: v, Stored: kind == 1, Failed: false}
				if kind == 0 {
					evals[i].Stored, evals[i].Failed = rng.IntN(2) == 0, rng.IntN(20) == 0
				}
			}
			ep := Endpoint(rng.IntN(int(numEndpoints)))
			id := fmt.Sprintf("u%d", rng.IntN(300))
			switch step % 3 {
			case 0:
				a.Record(1, ep, id, true, evals)
			default:
				l := layouts[step/400]
				if step%50 == 1 {
					l = NewLayout(1, ks) // reloaded, unchanged
				}
				answers := make([]Answer, len(evals))
				var tally Tally
				for i, e := range evals {
					answers[i] = Answer{Result: resultOf(e, rng.IntN(4) == 0), Stored: e.Stored}
					if e.Stored {
						tally.Stored++
					}
					tally.Failed = tally.Failed || e.Failed
				}
				if rng.IntN(5) == 0 {
					tally.Failed = true // may have: a caller that cannot tell
				}
				a.RecordAll(l, ep, id, answers, tally)
			}
			b.Record(1, ep, id, false, evals)
			switch step {
			case 700:
				if err := a.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := b.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			case 900, 1300:
				for i := range a.shards {
					for _, ta := range a.shards[i].teams {
						if len(ta.tab.slots) > 0 {
							ta.tab.nreqs = math.MaxUint32
						}
					}
				}
			}
		}
		if err := a.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, want := minuteCounts(t, stA, now, all), minuteCounts(t, stB, now, all)
		if len(want) != len(all) && maxTracked == 0 {
			t.Fatalf("reference counted %d flags, want %d", len(want), len(all))
		}
		for _, k := range all {
			g, w := got[k], want[k]
			if g.Evaluations != w.Evaluations || g.ByEndpoint != w.ByEndpoint || g.Stored != w.Stored || g.Errors != w.Errors || !maps.Equal(g.Values, w.Values) {
				t.Errorf("MaxTracked %d: flag %s: table %+v, per flag %+v", maxTracked, k, g, w)
			}
		}
		if a.Dropped() != b.Dropped() {
			t.Errorf("MaxTracked %d: dropped %d, per flag %d", maxTracked, a.Dropped(), b.Dropped())
		}
		if maxTracked > 0 && a.Dropped() == 0 {
			t.Errorf("MaxTracked %d: nothing dropped: the bound was not reached", maxTracked)
		}
	}
}

// TestSlotSize: a slot is one 64-byte cache line, which the table's
// layout (one line a flag, walked in order) is made for.
func TestSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n != 64 {
		t.Errorf("slot is %d bytes, want 64", n)
	}
}
