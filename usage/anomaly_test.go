package usage

import (
	"testing"

	"github.com/cespare/xxhash/v2"
)

// hourOf builds one hour's counts: n evaluations split by values, errs
// failed.
func hourOf(n uint64, errs uint64, values map[string]uint64) *Counts {
	c := &Counts{Evaluations: n, Errors: errs}
	for k, v := range values {
		c.addValue(k, v)
	}
	return c
}

func flat(n int, mk func(i int) *Counts) []*Counts {
	out := make([]*Counts, n)
	for i := range out {
		out[i] = mk(i)
	}
	return out
}

// TestAnomalyRule: synthetic series against a flag's own 24-hour baseline.
func TestAnomalyRule(t *testing.T) {
	steady := flat(BaselineHours, func(i int) *Counts {
		n := uint64(1000 + 40*(i%3)) // 1000..1080 an hour
		return hourOf(n, n/100, map[string]uint64{"control": n / 2, "test": n - n/2 - n/100})
	})
	quiet := flat(BaselineHours, func(i int) *Counts { return hourOf(uint64(5+i%4), 0, map[string]uint64{"true": 5}) })
	for _, tc := range []struct {
		name  string
		cur   *Counts
		base  []*Counts
		kinds []string
	}{
		{"steady", hourOf(1040, 10, map[string]uint64{"control": 520, "test": 510}), steady, nil},
		{"rate x3.5", hourOf(3600, 36, map[string]uint64{"control": 1800, "test": 1764}), steady, []string{KindRateShift}},
		{"rate x2.5 is not sharp", hourOf(2600, 26, map[string]uint64{"control": 1300, "test": 1274}), steady, nil},
		{"rate drop to a quarter", hourOf(260, 2, map[string]uint64{"control": 130, "test": 128}), steady, []string{KindRateShift}},
		{"stopped", hourOf(0, 0, nil), steady, []string{KindRateShift}},
		{"quiet flag's noise", hourOf(40, 0, map[string]uint64{"true": 40}), quiet, nil},
		{"split 50/50 to 80/20", hourOf(1040, 10, map[string]uint64{"control": 830, "test": 200}), steady, []string{KindVariantShift}},
		{"split 50/50 to 60/40", hourOf(1040, 10, map[string]uint64{"control": 620, "test": 410}), steady, nil},
		{"new variant takes 30%", hourOf(1000, 10, map[string]uint64{"control": 350, "test": 340, "new": 300}), steady, []string{KindVariantShift}},
		{"errors 1% to 8%", hourOf(1040, 83, map[string]uint64{"control": 480, "test": 477}), steady, []string{KindErrorSpike}},
		{"errors 1% to 2.5%", hourOf(1040, 26, map[string]uint64{"control": 507, "test": 507}), steady, nil},
		{"9 errors are too few", hourOf(60, 9, map[string]uint64{"true": 51}), quiet, nil},
		{"no baseline", hourOf(5000, 0, map[string]uint64{"true": 5000}), flat(BaselineHours, func(int) *Counts { return &Counts{} }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AnomalyRule(tc.cur, tc.base)
			var kinds []string
			for _, f := range got {
				kinds = append(kinds, f.Kind)
				if f.Message == "" || len(f.Details) == 0 {
					t.Errorf("%s without message or details", f.Kind)
				}
			}
			if len(kinds) != len(tc.kinds) {
				t.Fatalf("findings %v, want %v (%+v)", kinds, tc.kinds, got)
			}
			for i := range kinds {
				if kinds[i] != tc.kinds[i] {
					t.Errorf("findings %v, want %v", kinds, tc.kinds)
				}
			}
		})
	}
}

// TestCountsEncoding: MarshalBinary and UnmarshalBinary round-trip, and
// Merge is commutative.
func TestCountsEncoding(t *testing.T) {
	a := hourOf(10, 1, map[string]uint64{"x": 4, "y": 5})
	a.Stored, a.Polls, a.Last, a.ByEndpoint[EndpointDecide] = 3, 2, 1234, 10
	a.insertHash(xxhash.Sum64String("a"))
	a.insertHash(xxhash.Sum64String("b"))
	b := hourOf(7, 0, map[string]uint64{"y": 2, "z": 5})
	b.Last = 99
	b.insertHash(xxhash.Sum64String("b"))
	b.insertHash(xxhash.Sum64String("c"))
	var ab, ba Counts
	ab.Merge(a)
	ab.Merge(b)
	ba.Merge(b)
	ba.Merge(a)
	x, err := ab.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if ab.Evaluations != ba.Evaluations || ab.Last != ba.Last || ab.Uniques() != ba.Uniques() || len(ab.Values) != len(ba.Values) || ab.Values["y"] != ba.Values["y"] {
		t.Errorf("merge order changes the counts: %+v vs %+v", ab, ba)
	}
	var d Counts
	if err := d.UnmarshalBinary(x); err != nil {
		t.Fatal(err)
	}
	if d.Evaluations != 17 || d.Errors != 1 || d.Stored != 3 || d.Polls != 2 || d.Last != 1234 || d.ByEndpoint[EndpointDecide] != 10 ||
		d.Values["y"] != 7 || d.Values["z"] != 5 || d.Uniques() != 3 {
		t.Errorf("decoded %+v, uniques %d", d, d.Uniques())
	}
	for _, bad := range [][]byte{nil, {9}, x[:len(x)/2]} {
		if err := new(Counts).UnmarshalBinary(bad); err == nil {
			t.Errorf("decoded %x", bad)
		}
	}
}
