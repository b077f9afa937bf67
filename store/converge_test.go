package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// msg is one ingest message as the convergence logic sees it.
type msg struct {
	update *PersonUpdate
	delete int64 // version, when update is nil
}

func (m msg) String() string {
	if m.update == nil {
		return fmt.Sprintf("delete@%d", m.delete)
	}
	u := m.update
	var parts []string
	for _, k := range sortedKeys(u.Set) {
		parts = append(parts, fmt.Sprintf("set %s=%s", k, u.Set[k]))
	}
	for _, k := range sortedKeys(u.SetOnce) {
		parts = append(parts, fmt.Sprintf("set_once %s=%s", k, u.SetOnce[k]))
	}
	for _, k := range u.Unset {
		parts = append(parts, "unset "+k)
	}
	return fmt.Sprintf("@%d{%s}", u.Version, strings.Join(parts, ", "))
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func set(v int64, kv ...string) msg {
	u := &PersonUpdate{Version: v, Set: map[string][]byte{}}
	for i := 0; i < len(kv); i += 2 {
		u.Set[kv[i]] = []byte(kv[i+1])
	}
	return msg{update: u}
}

func setOnce(v int64, kv ...string) msg {
	u := &PersonUpdate{Version: v, SetOnce: map[string][]byte{}}
	for i := 0; i < len(kv); i += 2 {
		u.SetOnce[kv[i]] = []byte(kv[i+1])
	}
	return msg{update: u}
}

func unset(v int64, keys ...string) msg { return msg{update: &PersonUpdate{Version: v, Unset: keys}} }

func del(v int64) msg { return msg{delete: v} }

func apply(t testing.TB, p *Person, ms []msg) {
	t.Helper()
	for _, m := range ms {
		if m.update == nil {
			p.ApplyDelete(m.delete)
			continue
		}
		if _, err := p.ApplyUpdate(*m.update); err != nil {
			t.Fatalf("ApplyUpdate(%v): %v", m, err)
		}
	}
}

func state(t testing.TB, ms []msg) (*Person, string) {
	t.Helper()
	p := NewPerson(1, "p")
	apply(t, p, ms)
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p, string(b)
}

func TestPersonRules(t *testing.T) {
	tests := []struct {
		name string
		msgs []msg
		want string // effective properties
	}{
		{"set", []msg{set(1, "a", "1")}, `{"a":1}`},
		{"newer set wins", []msg{set(2, "a", `"new"`), set(1, "a", `"old"`)}, `{"a":"new"}`},
		{"set_once keeps the oldest", []msg{setOnce(2, "a", `"late"`), setOnce(1, "a", `"early"`)}, `{"a":"early"}`},
		{"set beats set_once", []msg{setOnce(5, "a", "1"), set(1, "a", "2")}, `{"a":2}`},
		{"unset removes", []msg{set(1, "a", "1", "b", "2"), unset(2, "a")}, `{"b":2}`},
		{"older unset does nothing", []msg{set(3, "a", "1"), unset(2, "a")}, `{"a":1}`},
		{"set after unset", []msg{unset(2, "a"), set(3, "a", "1")}, `{"a":1}`},
		{"set_once after unset applies", []msg{set(1, "a", "1"), unset(2, "a"), setOnce(3, "a", "9")}, `{"a":9}`},
		{"set_once before unset is gone", []msg{setOnce(1, "a", "1"), unset(2, "a")}, `{}`},
		{"deviation: older set_once blocks a newer one after unset",
			[]msg{setOnce(1, "a", `"a"`), unset(2, "a"), setOnce(3, "a", `"b"`)}, `{}`},
		{"tie: set beats unset", []msg{unset(4, "a"), set(4, "a", "1")}, `{"a":1}`},
		{"tie: set and unset in one message", []msg{{update: &PersonUpdate{Version: 4, Set: map[string][]byte{"a": []byte("1")}, Unset: []string{"a"}}}}, `{"a":1}`},
		{"tie: larger value wins a set", []msg{set(4, "a", `"x"`), set(4, "a", `"y"`)}, `{"a":"y"}`},
		{"tie: smaller value wins a set_once", []msg{setOnce(4, "a", `"y"`), setOnce(4, "a", `"x"`)}, `{"a":"x"}`},
		{"numbers keep their text", []msg{set(1, "i", "5", "f", "5.0", "e", "1e3", "big", "123456789012345678901234567890")},
			`{"big":123456789012345678901234567890,"e":1e3,"f":5.0,"i":5}`},
		{"values are compacted", []msg{set(1, "o", ` { "x" : [ 1 , 2.50 ] } `)}, `{"o":{"x":[1,2.50]}}`},
		{"keys are escaped and sorted bytewise", []msg{set(1, "b", "1", "a\"q", "2", "é", "3", "<", "4")}, `{"\u003c":4,"a\"q":2,"b":1,"é":3}`},
		{"delete drops older state", []msg{set(1, "a", "1"), setOnce(2, "b", "2"), del(3)}, `{}`},
		{"delete keeps newer state", []msg{set(1, "a", "1"), del(3), set(4, "c", "3"), setOnce(5, "d", "4")}, `{"c":3,"d":4}`},
		{"writes older than a delete are dropped", []msg{del(3), set(2, "a", "1"), setOnce(1, "b", "2"), unset(2, "x")}, `{}`},
		{"deviation: a set_once before a delete blocks one after it",
			[]msg{setOnce(1, "a", "1"), del(2), setOnce(3, "a", "3")}, `{}`},
		{"set after delete", []msg{setOnce(1, "a", "1"), del(2), set(3, "a", "3")}, `{"a":3}`},
		{"a later delete wins", []msg{del(2), set(3, "a", "1"), del(5)}, `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ref := state(t, tc.msgs)
			if got := string(p.EffectiveProperties()); got != tc.want {
				t.Fatalf("effective properties %s, want %s", got, tc.want)
			}
			// The same result in every order, with every message twice.
			forEachPermutation(append(slices.Clone(tc.msgs), tc.msgs...), func(perm []msg) {
				if _, got := state(t, perm); got != ref {
					t.Fatalf("order %v gives another state", perm)
				}
			})
		})
	}
}

func TestPersonVersionAndDelete(t *testing.T) {
	p, _ := state(t, []msg{set(7, "a", "1"), del(3), set(2, "b", "1")})
	if p.Version != 7 || !p.Deleted || p.DeleteVersion != 3 {
		t.Fatalf("person %+v", p)
	}
	if !p.Alive(4) || p.Alive(3) || p.Alive(1) {
		t.Fatal("Alive must be true exactly above the delete version")
	}
	if !(*Person)(nil).Alive(0) {
		t.Fatal("a person without state is alive")
	}
	if _, ok := p.Set["b"]; ok {
		t.Fatal("a set older than the delete was kept")
	}
	if changed := p.ApplyDelete(2); changed {
		t.Fatal("an older delete changed the state")
	}
	q := NewPerson(1, "q")
	if changed, _ := q.ApplyUpdate(PersonUpdate{Version: 1, Set: map[string][]byte{"a": []byte("1")}}); !changed {
		t.Fatal("first update reported no change")
	}
	if changed, _ := q.ApplyUpdate(PersonUpdate{Version: 1, Set: map[string][]byte{"a": []byte("1")}}); changed {
		t.Fatal("a duplicate update reported a change")
	}
}

func TestApplyUpdateRejectsInvalidJSON(t *testing.T) {
	p := NewPerson(1, "p")
	for _, u := range []PersonUpdate{
		{Version: 1, Set: map[string][]byte{"a": []byte("{")}},
		{Version: 1, SetOnce: map[string][]byte{"a": []byte("")}},
		{Version: 1, Set: map[string][]byte{"a": []byte("1 2")}},
	} {
		if _, err := p.ApplyUpdate(u); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ApplyUpdate(%v) = %v, want ErrInvalid", u, err)
		}
	}
	if p.Version != 0 || len(p.Set)+len(p.SetOnce) != 0 {
		t.Fatalf("a refused update changed the person: %+v", p)
	}
	g := NewGroup(1, 0, "g")
	if _, err := g.ApplyUpdate(GroupUpdate{Version: 1, Set: map[string][]byte{"a": []byte("nope")}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("group ApplyUpdate invalid: %v", err)
	}
}

// forEachPermutation calls fn with every permutation of ms (Heap's
// algorithm) when there are at most 8, else with 3000 random ones.
func forEachPermutation(ms []msg, fn func([]msg)) {
	if len(ms) > 8 {
		r := rand.New(rand.NewPCG(1, uint64(len(ms))))
		for range 3000 {
			perm := slices.Clone(ms)
			r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			fn(perm)
		}
		return
	}
	a := slices.Clone(ms)
	c := make([]int, len(a))
	fn(a)
	for i := 0; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			fn(a)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

func TestForEachPermutationCount(t *testing.T) {
	n := 0
	seen := map[string]bool{}
	ms := []msg{del(1), del(2), del(3), del(4), del(5)}
	forEachPermutation(ms, func(p []msg) { n++; seen[fmt.Sprint(p)] = true })
	if n != 120 || len(seen) != 120 {
		t.Fatalf("%d permutations, %d distinct; want 120", n, len(seen))
	}
}

// randomMsgs returns n messages over few keys, versions and values so that
// ties and collisions are frequent.
func randomMsgs(r *rand.Rand, n int, withDeletes bool) []msg {
	keys := []string{"a", "b", "c", "ü"}
	vals := []string{"5", "5.0", `"x"`, `"y"`, "null", `{"n":[1]}`, "true"}
	var out []msg
	for range n {
		v := int64(r.IntN(12))
		switch k := r.IntN(10); {
		case withDeletes && k == 0:
			out = append(out, del(v))
		default:
			u := &PersonUpdate{Version: v}
			for range 1 + r.IntN(3) {
				key := keys[r.IntN(len(keys))]
				switch r.IntN(3) {
				case 0:
					if u.Set == nil {
						u.Set = map[string][]byte{}
					}
					u.Set[key] = []byte(vals[r.IntN(len(vals))])
				case 1:
					if u.SetOnce == nil {
						u.SetOnce = map[string][]byte{}
					}
					u.SetOnce[key] = []byte(vals[r.IntN(len(vals))])
				default:
					u.Unset = append(u.Unset, key)
				}
			}
			out = append(out, msg{update: u})
		}
	}
	return out
}

func TestPersonConvergesUnderPermutationsAndDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for round := range 300 {
		ms := randomMsgs(r, 3+r.IntN(20), true)
		p, ref := state(t, ms)
		for range 20 {
			// Shuffle with ~30% duplicates.
			perm := slices.Clone(ms)
			for _, m := range ms {
				if r.IntN(10) < 3 {
					perm = append(perm, m)
				}
			}
			r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			q, got := state(t, perm)
			if got != ref {
				t.Fatalf("round %d: %v\nand %v\ndiffer:\n%+v\n%+v", round, ms, perm, p, q)
			}
			// Applying the same messages on top again changes nothing.
			before := got
			apply(t, q, perm)
			if b, _ := q.MarshalBinary(); string(b) != before {
				t.Fatalf("round %d: re-applying changed the state", round)
			}
		}
	}
}

// sequential is the reference semantics: messages applied one by one in
// version order, as PostHog would.
func sequential(ms []msg) string {
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b msg) int {
		va, vb := a.delete, b.delete
		if a.update != nil {
			va = a.update.Version
		}
		if b.update != nil {
			vb = b.update.Version
		}
		return int(va - vb)
	})
	props := map[string][]byte{}
	for _, m := range ms {
		if m.update == nil {
			clear(props)
			continue
		}
		for _, k := range m.update.Unset {
			delete(props, k)
		}
		for k, v := range m.update.Set {
			props[k] = v
		}
		for k, v := range m.update.SetOnce {
			if _, ok := props[k]; !ok {
				props[k] = v
			}
		}
	}
	return string(CanonicalObject(props))
}

// TestPersonMatchesSequentialSemantics checks the CRDT against in-order
// application where the documented deviations cannot arise: distinct
// versions, and no $set_once after an $unset or a delete of its key.
func TestPersonMatchesSequentialSemantics(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	checked := 0
	for range 3000 {
		ms := randomMsgs(r, 2+r.IntN(10), true)
		// Distinct versions in random order.
		vs := r.Perm(len(ms))
		for i := range ms {
			if ms[i].update == nil {
				ms[i] = del(int64(vs[i]))
			} else {
				u := *ms[i].update
				u.Version = int64(vs[i])
				// The sequential model applies unset before set within a
				// message, like ApplyUpdate's tie rule.
				ms[i] = msg{update: &u}
			}
		}
		if hasDeviation(ms) {
			continue
		}
		checked++
		p, _ := state(t, ms)
		if got, want := string(p.EffectiveProperties()), sequential(ms); got != want {
			t.Fatalf("%v: CRDT gives %s, sequential %s", ms, got, want)
		}
	}
	if checked < 500 {
		t.Fatalf("only %d cases without deviation checked", checked)
	}
}

// hasDeviation reports whether ms contains a documented deviation: for
// some key, $set_once versions a < b with an $unset of the key or a delete
// at r, a <= r < b; or an $unset and a $set_once of one key in one message
// (equal versions, decided by the tie rule).
func hasDeviation(ms []msg) bool {
	once := map[string][]int64{}
	resets := map[string][]int64{}
	var deletes []int64
	for _, m := range ms {
		if m.update == nil {
			deletes = append(deletes, m.delete)
			continue
		}
		for k := range m.update.SetOnce {
			once[k] = append(once[k], m.update.Version)
			if slices.Contains(m.update.Unset, k) {
				return true
			}
		}
		for _, k := range m.update.Unset {
			resets[k] = append(resets[k], m.update.Version)
		}
	}
	for k, vs := range once {
		for _, a := range vs {
			for _, b := range vs {
				for _, r := range append(slices.Clone(resets[k]), deletes...) {
					if a <= r && r < b {
						return true
					}
				}
			}
		}
	}
	return false
}

func TestMappingLWW(t *testing.T) {
	as := []Mapping{
		{Team: 1, DistinctID: "d", PersonID: "p1", Version: 3},
		{Team: 1, DistinctID: "d", PersonID: "p2", Version: 5},
		{Team: 1, DistinctID: "d", PersonID: "p3", Version: 5}, // tie: larger id wins
		{Team: 1, DistinctID: "d", PersonID: "p9", Version: 4},
	}
	want := as[2]
	var ms []msg // only for the permutation helper's indexes
	for i := range as {
		ms = append(ms, del(int64(i)))
	}
	forEachPermutation(append(ms, ms...), func(perm []msg) {
		var m Mapping
		for _, i := range perm {
			m.Merge(as[i.delete])
		}
		if m != want {
			t.Fatalf("order %v: mapping %+v, want %+v", perm, m, want)
		}
	})
	m := want
	if m.Merge(as[0]) || m.Merge(want) {
		t.Fatal("Merge of an older or equal assertion reported a change")
	}
	if !m.Merge(Mapping{Team: 1, DistinctID: "d", PersonID: "a", Version: 6}) || m.PersonID != "a" {
		t.Fatal("a newer assertion did not win")
	}
}

func TestDeriveRow(t *testing.T) {
	m := Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: 4}
	r, ok := DeriveRow(m, nil)
	if !ok || string(r.Properties) != "{}" || r.Revision != Revision([]byte("{}")) || r.PersonID != "p" || r.Team != 1 || r.DistinctID != "d" {
		t.Fatalf("row of a person without state: %+v, %v", r, ok)
	}
	p, _ := state(t, []msg{set(2, "a", "1"), set(7, "b", `"x"`)})
	r, ok = DeriveRow(m, p)
	if !ok || string(r.Properties) != `{"a":1,"b":"x"}` || r.PersonVersion != 7 || r.Revision != Revision(r.Properties) {
		t.Fatalf("row %+v, %v", r, ok)
	}
	p.ApplyDelete(4)
	if _, ok := DeriveRow(m, p); ok {
		t.Fatal("a mapping at the delete version is dead")
	}
	m.Version = 5
	r, ok = DeriveRow(m, p)
	if !ok || string(r.Properties) != `{"b":"x"}` {
		t.Fatalf("mapping newer than the delete: %+v, %v", r, ok)
	}
	// The revision changes exactly when the effective properties do.
	q, _ := state(t, []msg{set(1, "b", `"x"`), setOnce(9, "b", `"z"`)})
	if r2, _ := DeriveRow(m, q); r2.Revision != r.Revision {
		t.Fatal("equal effective properties, different revisions")
	}
	q.ApplyUpdate(PersonUpdate{Version: 10, Set: map[string][]byte{"b": []byte(`"y"`)}})
	if r2, _ := DeriveRow(m, q); r2.Revision == r.Revision {
		t.Fatal("different effective properties, equal revisions")
	}
}

func TestGroupConverges(t *testing.T) {
	us := []GroupUpdate{
		{Version: 1, Set: map[string][]byte{"name": []byte(`"Acme"`), "size": []byte("10")}},
		{Version: 3, Set: map[string][]byte{"size": []byte("12.0")}},
		{Version: 2, Set: map[string][]byte{"size": []byte("11")}, Unset: []string{"name"}},
		{Version: 3, Set: map[string][]byte{"size": []byte("11.5")}},
		{Version: 4, Unset: []string{"gone"}},
	}
	var ref string
	var ms []msg
	for i := range us {
		ms = append(ms, del(int64(i)))
	}
	forEachPermutation(append(ms, ms[1], ms[3]), func(perm []msg) {
		g := NewGroup(1, 2, "acme")
		for _, i := range perm {
			if _, err := g.ApplyUpdate(us[i.delete]); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := g.MarshalBinary()
		if ref == "" {
			ref = string(b)
			if string(g.Properties) != `{"size":12.0}` || g.Version != 4 || g.Revision != Revision(g.Properties) {
				t.Fatalf("group %+v properties %s", g, g.Properties)
			}
		} else if string(b) != ref {
			t.Fatalf("order %v gives another group state", perm)
		}
	})
}

func TestMergeGroupTypeName(t *testing.T) {
	names := []string{"company", "", "org", "company"}
	for _, perm := range [][]int{{0, 1, 2, 3}, {2, 1, 3, 0}, {1, 2, 0, 3}, {3, 2, 1, 0}} {
		got := ""
		for _, i := range perm {
			got = MergeGroupTypeName(got, names[i])
		}
		if got != "company" {
			t.Fatalf("order %v: %q", perm, got)
		}
	}
}

func TestCheckTypeIndex(t *testing.T) {
	for _, tc := range []struct {
		i  int
		ok bool
	}{{0, true}, {4, true}, {255, true}, {-1, false}, {256, false}} {
		if err := CheckTypeIndex(tc.i); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckTypeIndex(%d) = %v", tc.i, err)
		}
	}
}
