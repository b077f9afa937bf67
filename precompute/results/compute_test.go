package results

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

var computeNow = time.Date(2026, 11, 25, 12, 30, 15, 123_456_789, time.UTC)

// computeTeam has person flags (properties, variants, payloads, a relative
// date, a dependency, a dynamic cohort, distinct-id overrides, a disabled
// flag), group flags of two types (one with group overrides) and a live
// flag.
func computeTeam(t testing.TB, edit func(map[string]string)) (flags.Definitions, *flags.Set, *Plan) {
	t.Helper()
	fl := map[string]string{
		"beta":   `{"id":1,"key":"beta","active":true,"filters":{"groups":[{"properties":[{"key":"email","type":"person","operator":"icontains","value":"@example.com"}],"rollout_percentage":100}],"payloads":{"true":"{\"a\":1}"}}}`,
		"mv":     `{"id":2,"key":"mv","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}],"multivariate":{"variants":[{"key":"a","rollout_percentage":50},{"key":"b","rollout_percentage":50}]},"payloads":{"a":"\"pa\""}}}`,
		"recent": `{"id":3,"key":"recent","active":true,"filters":{"groups":[{"properties":[{"key":"signup","type":"person","operator":"is_date_after","value":"-7d"}],"rollout_percentage":100}]}}`,
		"dep":    `{"id":4,"key":"dep","active":true,"filters":{"groups":[{"properties":[{"key":"age","type":"person","operator":"gt","value":30}]},{"properties":[{"key":"beta","type":"flag","operator":"flag_evaluates_to","value":true}],"rollout_percentage":100}]}}`,
		"coh":    `{"id":5,"key":"coh","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":5}],"rollout_percentage":100}]}}`,
		"ov":     `{"id":6,"key":"ov","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":0}]},"overrides":[{"distinct_ids":["u2","u5"],"value":true}]}`,
		"off":    `{"id":7,"key":"off","active":false,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}}`,
		"dev":    `{"id":8,"key":"dev","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`,
		"grp":    `{"id":9,"key":"grp","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"operator":"exact","value":["pro"]}],"rollout_percentage":100},{"properties":[],"rollout_percentage":30}]},"overrides":[{"group_type_index":0,"group_keys":["g3"],"value":true}]}`,
		"grpmv":  `{"id":10,"key":"grpmv","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"created","type":"group","group_type_index":0,"operator":"is_date_before","value":"-30d"}],"rollout_percentage":60}],"multivariate":{"variants":[{"key":"x","rollout_percentage":30},{"key":"y","rollout_percentage":70}]}}}`,
		"proj":   `{"id":11,"key":"proj","active":true,"filters":{"aggregation_group_type_index":1,"groups":[{"properties":[{"key":"$group_key","type":"group","group_type_index":1,"operator":"icontains","value":"p"}],"rollout_percentage":100}]}}`,
	}
	if edit != nil {
		edit(fl)
	}
	keys := make([]string, 0, len(fl))
	for k := range fl {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var js []string
	for _, k := range keys {
		js = append(js, fl[k])
	}
	d := testDefs(t, []flags.Cohort{{ID: 5, Kind: flags.CohortDynamic, Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{
		{Filter: &flags.PropertyFilter{Key: "country", Type: "person", Operator: "exact", Value: json.RawMessage(`["FR","BE"]`)}}}}}}, js...)
	set, err := flags.Compile(d)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return d, set, NewPlan(d, set, Options{})
}

func computePersons() []Subject {
	var out []Subject
	for i := range 24 {
		props := map[string]any{}
		if i%2 == 0 {
			props["email"] = fmt.Sprintf("u%d@example.com", i)
		}
		if i%3 == 0 {
			props["age"] = json.Number(fmt.Sprint(20 + i))
		}
		if i%4 != 3 {
			props["signup"] = computeNow.Add(-time.Duration(i) * 12 * time.Hour).Format(time.RFC3339Nano)
		}
		if i%5 == 0 {
			props["country"] = "FR"
		}
		out = append(out, Subject{Type: Persons, Key: fmt.Sprintf("u%d", i), Version: int64(i + 1), Revision: uint64(1000 + i), Props: props})
	}
	return out
}

func computeGroups() []Subject {
	var out []Subject
	for i := range 12 {
		props := map[string]any{"created": computeNow.AddDate(0, 0, -10*i).Format("2006-01-02")}
		if i%2 == 1 {
			props["plan"] = "pro"
		}
		out = append(out, Subject{Type: 0, Key: fmt.Sprintf("g%d", i), Version: int64(i), Revision: uint64(i * 7), Props: props})
	}
	for _, k := range []string{"p1", "q2", "ap"} {
		out = append(out, Subject{Type: 1, Key: k, Version: 1, Revision: 1, Props: map[string]any{}})
	}
	return out
}

// liveContext is the context live evaluation gets for s.
func liveContext(s Subject) *flags.Context {
	c := &flags.Context{Now: computeNow}
	if s.Type == Persons {
		c.DistinctID, c.PersonProperties = s.Key, s.Props
		return c
	}
	c.Groups = make([]flags.Group, s.Type+1)
	c.Groups[s.Type] = flags.Group{Key: s.Key, Properties: s.Props}
	c.PersonProperties = map[string]any{}
	return c
}

func liveResults(set *flags.Set, s Subject) map[string]flags.Result {
	out := map[string]flags.Result{}
	for _, r := range set.Evaluate(liveContext(s)) {
		out[r.Key] = r
	}
	return out
}

// checkAgainstLive asserts that the entries of b decode, carry the plan's
// stamps and expand to what live evaluation gives (ValidUntil rounded down
// to the millisecond). It returns the entries' flag keys in stored order.
func checkAgainstLive(t *testing.T, set *flags.Set, plan *Plan, s Subject, b []byte) []string {
	t.Helper()
	h, entries, err := Decode(b, nil, plan)
	if err != nil {
		t.Fatalf("%s: Decode: %v", s.Key, err)
	}
	if h.Version != s.Version || h.Revision != s.Revision {
		t.Errorf("%s: header %+v, want version %d revision %d", s.Key, h, s.Version, s.Revision)
	}
	live := liveResults(set, s)
	var keys []string
	for _, e := range entries {
		fp, ok := plan.byID(e.FlagID)
		if !ok {
			t.Fatalf("%s: entry of unknown flag id %d", s.Key, e.FlagID)
		}
		keys = append(keys, fp.Key)
		if !fp.Precomputable || fp.Subject != s.Type {
			t.Errorf("%s: stored %s (precomputable %v, subject %d)", s.Key, fp.Key, fp.Precomputable, fp.Subject)
		}
		if e.Stamp != fp.Stamp {
			t.Errorf("%s/%s: stamp %x, want %x", s.Key, fp.Key, e.Stamp, fp.Stamp)
		}
		got, ok := set.Expand(fp.Key, e.Compact)
		if !ok {
			t.Errorf("%s/%s: Expand(%+v) failed", s.Key, fp.Key, e.Compact)
			continue
		}
		want := live[fp.Key]
		if !got.ValidUntil.Equal(msFloor(want.ValidUntil)) || got.ValidUntil.IsZero() != want.ValidUntil.IsZero() {
			t.Errorf("%s/%s: ValidUntil %v, want %v rounded down", s.Key, fp.Key, got.ValidUntil, want.ValidUntil)
		}
		got.ValidUntil, want.ValidUntil = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s/%s: stored %+v, live %+v", s.Key, fp.Key, got, want)
		}
	}
	return keys
}

func TestComputeMatchesLive(t *testing.T) {
	_, set, plan := computeTeam(t, nil)
	if got, want := plan.Keys(Persons), []string{"beta", "coh", "dep", "mv", "off", "ov", "recent"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("Keys(Persons) = %v, want %v", got, want)
	}
	if got, want := plan.Keys(0), []string{"grp", "grpmv"}; !slices.Equal(sorted(got), want) {
		t.Fatalf("Keys(0) = %v, want %v", got, want)
	}
	var scratch Scratch
	seen := map[string]map[string]bool{} // flag -> distinct values seen
	withExpiry := 0
	for _, s := range append(computePersons(), computeGroups()...) {
		b, earliest, n := Compute([]byte("x"), set, plan, s, computeNow, nil, nil, &scratch)
		if string(b[:1]) != "x" {
			t.Fatal("Compute overwrote dst")
		}
		keys := checkAgainstLive(t, set, plan, s, b[1:])
		if n != len(keys) || !slices.Equal(keys, plan.Keys(s.Type)) {
			t.Errorf("%s: stored %v (n %d), want %v", s.Key, keys, n, plan.Keys(s.Type))
		}
		var want time.Time
		live := liveResults(set, s)
		for _, k := range plan.Keys(s.Type) {
			r := live[k]
			vs := fmt.Sprint(r.Enabled, r.Variant, r.Reason.Code)
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][vs] = true
			if !r.ValidUntil.IsZero() && (want.IsZero() || r.ValidUntil.Before(want)) {
				want = r.ValidUntil
			}
		}
		if !earliest.Equal(want) {
			t.Errorf("%s: earliest %v, want %v", s.Key, earliest, want)
		}
		if !earliest.IsZero() {
			withExpiry++
		}
	}
	// The team exercises what it means to: both values of each flag but
	// the constant ones, and some expiries.
	for k, vs := range seen {
		if k != "off" && len(vs) < 2 {
			t.Errorf("flag %s gives only %v across the subjects", k, vs)
		}
	}
	if withExpiry == 0 {
		t.Error("no subject has a result with a valid_until")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func editRollout(key, from, to string) func(map[string]string) {
	return func(fl map[string]string) {
		if !strings.Contains(fl[key], from) {
			panic(key + " lacks " + from)
		}
		fl[key] = strings.Replace(fl[key], from, to, 1)
	}
}

func TestComputeOnly(t *testing.T) {
	_, set1, plan1 := computeTeam(t, nil)
	_, set2, plan2 := computeTeam(t, editRollout("mv", `"rollout_percentage":50}],"multivariate"`, `"rollout_percentage":90}],"multivariate"`))
	_, set3, plan3 := computeTeam(t, func(fl map[string]string) {
		editRollout("mv", `"rollout_percentage":50}],"multivariate"`, `"rollout_percentage":90}],"multivariate"`)(fl)
		editRollout("beta", `"rollout_percentage":100`, `"rollout_percentage":40`)(fl)
	})
	if got := plan2.Changed(plan1); !slices.Equal(got, []string{"mv"}) {
		t.Fatalf("plan2.Changed = %v", got)
	}
	if got := sorted(plan3.Changed(plan1)); !slices.Equal(got, []string{"beta", "dep", "mv"}) {
		t.Fatalf("plan3.Changed = %v", got)
	}
	var scratch Scratch
	persons := computePersons()
	groups := computeGroups()
	for _, s := range append(persons, groups[0], groups[1]) {
		old, _, _ := Compute(nil, set1, plan1, s, computeNow, nil, nil, &scratch)
		_, oldEntries, err := Decode(old, nil, plan1)
		if err != nil {
			t.Fatal(err)
		}
		oldByKey := map[string]Entry{}
		for _, e := range oldEntries {
			fp, _ := plan1.byID(e.FlagID)
			oldByKey[fp.Key] = e
		}
		later := computeNow.Add(time.Minute) // recomputed flags see a later now

		type run struct {
			name    string
			set     *flags.Set
			plan    *Plan
			s       Subject
			only    []string
			old     []byte
			kept    []string // flags kept from old
			fresh   []string // flags computed
			mustNot []string // flags absent
		}
		other := s
		other.Version++
		otherRev := s
		otherRev.Revision++
		var runs []run
		if s.Type == Persons {
			all := plan1.Keys(Persons)
			without := func(drop ...string) []string {
				return slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(drop, k) })
			}
			// A changed flag makes its stamp group stale: Compute
			// evaluates the group again, whatever only says.
			stale2 := union([]string{"mv"}, staleGroups(oldEntries, plan1, plan2))
			stale3 := union([]string{"mv"}, staleGroups(oldEntries, plan1, plan3))
			runs = []run{
				{name: "one changed flag", set: set2, plan: plan2, s: s, only: []string{"mv"}, old: old, kept: without(stale2...), fresh: stale2},
				{name: "stale stamps computed again", set: set3, plan: plan3, s: s, only: []string{"mv"}, old: old, kept: without(stale3...), fresh: stale3},
				{name: "all changed", set: set3, plan: plan3, s: s, only: plan3.Changed(plan1), old: old, kept: without(stale3...), fresh: stale3},
				{name: "version differs", set: set2, plan: plan2, s: other, only: []string{"mv"}, old: old, fresh: plan2.Keys(Persons)},
				{name: "revision differs", set: set2, plan: plan2, s: otherRev, only: []string{"mv"}, old: old, fresh: plan2.Keys(Persons)},
				{name: "no old", set: set2, plan: plan2, s: s, only: []string{"mv"}, fresh: plan2.Keys(Persons)},
				{name: "corrupt old", set: set2, plan: plan2, s: s, only: []string{"mv"}, old: old[:len(old)-1], fresh: plan2.Keys(Persons)},
				{name: "empty only keeps current", set: set2, plan: plan2, s: s, only: []string{}, old: old, kept: without(stale2...), fresh: stale2},
				{name: "unknown and other-subject keys ignored", set: set1, plan: plan1, s: s, only: []string{"nope", "grp", "dev", "recent"}, old: old, kept: without("recent"), fresh: []string{"recent"}},
			}
		} else {
			runs = []run{
				{name: "group flag", set: set2, plan: plan2, s: s, only: []string{"grp", "mv"}, old: old, kept: []string{"grpmv"}, fresh: []string{"grp"}, mustNot: []string{"mv"}},
			}
		}
		for _, r := range runs {
			b, earliest, n := Compute(nil, r.set, r.plan, r.s, later, r.only, r.old, &scratch)
			h, entries, err := Decode(b, nil, r.plan)
			if err != nil {
				t.Fatalf("%s %s: %v", s.Key, r.name, err)
			}
			if h.Version != r.s.Version || h.Revision != r.s.Revision || n != len(entries) {
				t.Errorf("%s %s: header %+v n %d entries %d", s.Key, r.name, h, n, len(entries))
			}
			got := map[string]Entry{}
			var wantEarliest time.Time
			for _, e := range entries {
				fp, ok := r.plan.byID(e.FlagID)
				if !ok {
					t.Fatalf("unknown id %d", e.FlagID)
				}
				if _, dup := got[fp.Key]; dup {
					t.Errorf("%s %s: %s stored twice", s.Key, r.name, fp.Key)
				}
				got[fp.Key] = e
				if e.Stamp != fp.Stamp {
					t.Errorf("%s %s: %s stamp %x, want %x", s.Key, r.name, fp.Key, e.Stamp, fp.Stamp)
				}
				if !e.ValidUntil.IsZero() && (wantEarliest.IsZero() || e.ValidUntil.Before(wantEarliest)) {
					wantEarliest = e.ValidUntil
				}
			}
			if want := len(r.kept) + len(r.fresh); len(entries) != want {
				t.Errorf("%s %s: %d entries %v, want kept %v + fresh %v", s.Key, r.name, len(entries), slices.Sorted(mapsKeys(got)), r.kept, r.fresh)
			}
			for _, k := range r.kept {
				e, ok := got[k]
				if !ok {
					t.Errorf("%s %s: %s not kept", s.Key, r.name, k)
					continue
				}
				if o := oldByKey[k]; !reflect.DeepEqual(e, o) && !(e.ValidUntil.Equal(o.ValidUntil) && sameButTime(e, o)) {
					t.Errorf("%s %s: kept %s = %+v, old %+v", s.Key, r.name, k, e, o)
				}
			}
			lr := map[string]flags.Result{}
			c := liveContext(r.s)
			c.Now = later
			for _, res := range r.set.Evaluate(c) {
				lr[res.Key] = res
			}
			for _, k := range r.fresh {
				e, ok := got[k]
				if !ok {
					t.Errorf("%s %s: %s not computed", s.Key, r.name, k)
					continue
				}
				x, _ := r.set.Expand(k, e.Compact)
				want := lr[k]
				if !x.ValidUntil.Equal(msFloor(want.ValidUntil)) {
					t.Errorf("%s %s: %s ValidUntil %v, live %v", s.Key, r.name, k, x.ValidUntil, want.ValidUntil)
				}
				x.ValidUntil, want.ValidUntil = time.Time{}, time.Time{}
				if !reflect.DeepEqual(x, want) {
					t.Errorf("%s %s: %s = %+v, live %+v", s.Key, r.name, k, x, want)
				}
			}
			for _, k := range r.mustNot {
				if _, ok := got[k]; ok {
					t.Errorf("%s %s: %s stored", s.Key, r.name, k)
				}
			}
			// earliest is the minimum over stored entries (fresh ones
			// unrounded, so compare at millisecond precision).
			if msFloor(earliest).UnixMilli() != msFloor(wantEarliest).UnixMilli() || earliest.IsZero() != wantEarliest.IsZero() {
				t.Errorf("%s %s: earliest %v, want %v", s.Key, r.name, earliest, wantEarliest)
			}
		}
	}
}

// staleGroups returns the flags of old's stamp groups (computed with
// oldPlan) in which some flag's stamp differs in plan.
func staleGroups(old []Entry, oldPlan, plan *Plan) []string {
	var out []string
	for g := 0; g < len(old); g += stampGroup {
		group := old[g:min(g+stampGroup, len(old))]
		changed := false
		for _, e := range group {
			was, _ := oldPlan.CurrentStamp(e.FlagID)
			now, ok := plan.CurrentStamp(e.FlagID)
			changed = changed || !ok || now != was
		}
		if changed {
			for _, e := range group {
				fp, _ := oldPlan.byID(e.FlagID)
				out = append(out, fp.Key)
			}
		}
	}
	return out
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, k := range b {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func sameButTime(a, b Entry) bool {
	a.ValidUntil, b.ValidUntil = time.Time{}, time.Time{}
	return a == b
}

func mapsKeys(m map[string]Entry) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestComputeKeyConsistent(t *testing.T) {
	_, set, plan := computeTeam(t, nil)
	cases := []struct {
		name string
		s    Subject
		want bool
	}{
		{"person without distinct_id", Subject{Type: Persons, Key: "u1", Props: map[string]any{"email": "a"}}, true},
		{"person with its own distinct_id", Subject{Type: Persons, Key: "u1", Props: map[string]any{"distinct_id": "u1"}}, true},
		{"person with another distinct_id", Subject{Type: Persons, Key: "u1", Props: map[string]any{"distinct_id": "u2"}}, false},
		{"person with a numeric distinct_id", Subject{Type: Persons, Key: "1", Props: map[string]any{"distinct_id": json.Number("1")}}, false},
		{"person with a null distinct_id", Subject{Type: Persons, Key: "u1", Props: map[string]any{"distinct_id": nil}}, false},
		{"person with nil props", Subject{Type: Persons, Key: "u1"}, true},
		{"group without $group_key", Subject{Type: 0, Key: "g1", Props: map[string]any{"plan": "pro"}}, true},
		{"group with its own $group_key", Subject{Type: 0, Key: "g1", Props: map[string]any{"$group_key": "g1"}}, true},
		{"group with another $group_key", Subject{Type: 0, Key: "g1", Props: map[string]any{"$group_key": "g2"}}, false},
		{"group with distinct_id", Subject{Type: 0, Key: "g1", Props: map[string]any{"distinct_id": "x"}}, true},
	}
	var scratch Scratch
	for _, tc := range cases {
		b, _, _ := Compute(nil, set, plan, tc.s, computeNow, nil, nil, &scratch)
		h, _, err := Decode(b, nil, plan)
		if err != nil {
			t.Fatal(err)
		}
		if h.KeyConsistent != tc.want {
			t.Errorf("%s: KeyConsistent %v, want %v", tc.name, h.KeyConsistent, tc.want)
		}
		if got := ImplicitProp(tc.s.Type); (tc.s.Type == Persons) != (got == "distinct_id") || (tc.s.Type >= 0) != (got == "$group_key") {
			t.Errorf("ImplicitProp(%d) = %q", tc.s.Type, got)
		}
	}
}

// A row whose results were computed, then checked the way the evaluation
// service does: every stored flag answers Stored with the live value until
// its valid_until.
func TestComputeThenCheck(t *testing.T) {
	_, set, plan := computeTeam(t, nil)
	var scratch Scratch
	for _, s := range computePersons() {
		b, _, _ := Compute(nil, set, plan, s, computeNow, nil, nil, &scratch)
		var r Row
		r.Load(b, plan, s.Version, s.Revision, s.Key, ImplicitProp(s.Type))
		for _, fp := range plan.Flags {
			e, src := r.Check(&fp, computeNow, map[string]any{"distinct_id": s.Key})
			switch {
			case !fp.Precomputable:
				if src != NotPrecomputable {
					t.Errorf("%s/%s: %v", s.Key, fp.Key, src)
				}
			case fp.Subject != Persons:
				if src != Absent {
					t.Errorf("%s/%s (group flag on a person row): %v", s.Key, fp.Key, src)
				}
			case src != Stored:
				t.Errorf("%s/%s: %v, want stored", s.Key, fp.Key, src)
			case e.FlagID != fp.ID:
				t.Errorf("%s/%s: entry of flag %d", s.Key, fp.Key, e.FlagID)
			}
		}
	}
}
