package results

import (
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

func TestRowCheck(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	until := now.Add(time.Hour)
	fp := &FlagPlan{Key: "f", ID: 10, Stamp: 0xabc, Precomputable: true, Subject: Persons, Reads: []string{"distinct_id", "email"}}
	other := &FlagPlan{Key: "g", ID: 11, Stamp: 0xdef, Precomputable: true, Subject: Persons, Reads: []string{"age"}}
	entries := []Entry{
		{FlagID: 11, Stamp: 0xdef, Compact: flags.Compact{Code: flags.ReasonNoConditionMatch, ConditionIndex: -1}},
		{FlagID: 10, Stamp: 0xabc, Compact: flags.Compact{Enabled: true, Variant: "b", Code: flags.ReasonConditionMatch, ConditionIndex: 2, ValidUntil: until}},
	}
	hdr := Header{Version: 4, Revision: 99, KeyConsistent: true}
	enc := Append(nil, hdr, entries)
	// computedWith is the plan the entries were computed with; changed
	// has flag 10 changed since.
	computedWith := stampSet{10: 0xabc, 11: 0xdef}
	changed := stampSet{10: 0xabd, 11: 0xdef}
	v1 := appendFormat1(nil, hdr, entries)

	type row struct {
		b        []byte
		version  int64
		revision uint64
		key      string
	}
	cur := row{enc, 4, 99, "u1"}
	cases := []struct {
		name      string
		row       row
		fp        *FlagPlan
		now       time.Time
		overrides map[string]any
		current   Stamper // default computedWith
		want      Source
	}{
		{name: "stored", row: cur, fp: fp, now: now, want: Stored},
		{name: "stored, other flag", row: cur, fp: other, now: now.Add(48 * time.Hour), want: Stored},
		{name: "stored just before valid_until", row: cur, fp: fp, now: until.Add(-time.Nanosecond), want: Stored},
		{name: "not precomputable", row: cur, fp: &FlagPlan{ID: 10, Stamp: 0xabc, Why: WhyDevice}, now: now, want: NotPrecomputable},
		{name: "not precomputable without results", row: row{nil, 4, 99, "u1"}, fp: &FlagPlan{ID: 10, Why: WhyDevice}, now: now, want: NotPrecomputable},
		{name: "no results", row: row{nil, 4, 99, "u1"}, fp: fp, now: now, want: Absent},
		{name: "corrupt results", row: row{enc[:len(enc)-1], 4, 99, "u1"}, fp: fp, now: now, want: Absent},
		{name: "flag missing", row: cur, fp: &FlagPlan{Key: "h", ID: 12, Stamp: 1, Precomputable: true}, now: now, want: Absent},
		{name: "version differs", row: row{enc, 5, 99, "u1"}, fp: fp, now: now, want: StaleRow},
		{name: "revision differs", row: row{enc, 4, 98, "u1"}, fp: fp, now: now, want: StaleRow},
		{name: "stale row before a missing flag", row: row{enc, 5, 99, "u1"}, fp: &FlagPlan{ID: 12, Precomputable: true}, now: now, want: StaleRow},
		{name: "stamp differs", row: cur, fp: &FlagPlan{Key: "f", ID: 10, Stamp: 0xabd, Precomputable: true, Reads: fp.Reads}, now: now, want: StaleFlag},
		{name: "stamp group changed: the flag's stamp", row: cur, fp: &FlagPlan{Key: "f", ID: 10, Stamp: 0xabd, Precomputable: true}, now: now, current: changed, want: StaleFlag},
		{name: "stamp group changed: another flag's stamp", row: cur, fp: other, now: now, current: changed, want: StaleFlag},
		{name: "a flag of the stamp group deleted", row: cur, fp: other, now: now, current: stampSet{11: 0xdef}, want: StaleFlag},
		{name: "no stamps to check against", row: cur, fp: other, now: now, current: stampSet{}, want: StaleFlag},
		{name: "format 1 row", row: row{v1, 4, 99, "u1"}, fp: fp, now: now, want: Stored},
		{name: "format 1 row, other flag", row: row{v1, 4, 99, "u1"}, fp: other, now: now, current: changed, want: Stored},
		{name: "format 1 row, stamp differs", row: row{v1, 4, 99, "u1"}, fp: &FlagPlan{Key: "f", ID: 10, Stamp: 0xabd, Precomputable: true}, now: now, current: changed, want: StaleFlag},
		{name: "expired at valid_until", row: cur, fp: fp, now: until, want: Expired},
		{name: "expired after valid_until", row: cur, fp: fp, now: until.Add(time.Millisecond), want: Expired},
		{name: "override of a read property", row: cur, fp: fp, now: now, overrides: map[string]any{"email": "x@y.z"}, want: Overridden},
		{name: "override of an unread property", row: cur, fp: fp, now: now, overrides: map[string]any{"age": "3", "$current_url": "x"}, want: Stored},
		{name: "override of a read property, nil value", row: cur, fp: fp, now: now, overrides: map[string]any{"email": nil}, want: Overridden},
		{name: "implicit property equal to the key", row: cur, fp: fp, now: now, overrides: map[string]any{"distinct_id": "u1"}, want: Stored},
		{name: "implicit property equal to the key, other overridden", row: cur, fp: fp, now: now, overrides: map[string]any{"distinct_id": "u1", "email": "a"}, want: Overridden},
		{name: "implicit property differs from the key", row: cur, fp: fp, now: now, overrides: map[string]any{"distinct_id": "u2"}, want: Overridden},
		{name: "implicit property not a string", row: row{enc, 4, 99, "1"}, fp: fp, now: now, overrides: map[string]any{"distinct_id": 1}, want: Overridden},
		{name: "expired wins over overridden", row: cur, fp: fp, now: until, overrides: map[string]any{"email": "x"}, want: Expired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			current := tc.current
			if current == nil {
				current = computedWith
			}
			var r Row
			r.Load(tc.row.b, current, tc.row.version, tc.row.revision, tc.row.key, "distinct_id")
			e, src := r.Check(tc.fp, tc.now, tc.overrides)
			if src != tc.want {
				t.Fatalf("Check = %v, want %v", src, tc.want)
			}
			if (e != nil) != (src == Stored) {
				t.Fatalf("entry %v with source %v", e, src)
			}
			if src == Stored && (e.FlagID != tc.fp.ID || e.Stamp != tc.fp.Stamp) {
				t.Errorf("entry %+v for flag %d", e, tc.fp.ID)
			}
		})
	}

	// Not key-consistent: even the row's own key counts as an override.
	inconsistent := Append(nil, Header{Version: 4, Revision: 99}, entries)
	var r Row
	r.Load(inconsistent, computedWith, 4, 99, "u1", "distinct_id")
	if r.KeyConsistent || !r.Current {
		t.Fatalf("Load: KeyConsistent %v Current %v", r.KeyConsistent, r.Current)
	}
	if _, src := r.Check(fp, now, map[string]any{"distinct_id": "u1"}); src != Overridden {
		t.Errorf("distinct_id = key on a key-inconsistent row: %v, want %v", src, Overridden)
	}
	if e, src := r.Check(fp, now, nil); src != Stored || !e.Enabled || e.Variant != "b" || e.ConditionIndex != 2 || !e.ValidUntil.Equal(until) {
		t.Errorf("Check without overrides: %+v %v", e, src)
	}

	// A group row: the implicit property is $group_key.
	gfp := &FlagPlan{Key: "c", ID: 20, Stamp: 7, Precomputable: true, Subject: 0, Reads: []string{"$group_key", "plan"}}
	genc := Append(nil, Header{Version: 1, Revision: 2, KeyConsistent: true}, []Entry{{FlagID: 20, Stamp: 7, Compact: flags.Compact{Enabled: true, Code: flags.ReasonConditionMatch}}})
	r.Load(genc, stampSet{20: 7}, 1, 2, "acme", "$group_key")
	for _, tc := range []struct {
		ov   map[string]any
		want Source
	}{
		{map[string]any{"$group_key": "acme"}, Stored},
		{map[string]any{"$group_key": "other"}, Overridden},
		{map[string]any{"distinct_id": "other"}, Stored},
		{map[string]any{"plan": "pro"}, Overridden},
	} {
		if _, src := r.Check(gfp, now, tc.ov); src != tc.want {
			t.Errorf("group row, overrides %v: %v, want %v", tc.ov, src, tc.want)
		}
	}
}

func TestRowLoadResets(t *testing.T) {
	enc := Append(nil, Header{Version: 1, Revision: 1, KeyConsistent: true}, []Entry{{FlagID: 1, Stamp: 1, Compact: flags.Compact{Code: flags.ReasonConditionMatch}}})
	var r Row
	r.Load(enc, stampSet{1: 1}, 1, 1, "a", "distinct_id")
	if !r.Current || !r.KeyConsistent || len(r.Entries) != 1 || r.Key != "a" {
		t.Fatalf("Load: %+v", r)
	}
	r.Load(nil, stampSet{1: 1}, 1, 1, "b", "distinct_id")
	if r.Current || r.KeyConsistent || len(r.Entries) != 0 || r.Key != "b" {
		t.Errorf("Load(nil) kept state: %+v", r)
	}
	r.Load(enc, stampSet{1: 1}, 1, 1, "a", "distinct_id")
	r.Load([]byte{9}, stampSet{1: 1}, 1, 1, "c", "distinct_id")
	if r.Current || r.KeyConsistent || len(r.Entries) != 0 {
		t.Errorf("Load(corrupt) kept state: %+v", r)
	}
}

func TestRowFind(t *testing.T) {
	var r Row
	r.Entries = []Entry{{FlagID: 1}, {FlagID: 2}, {FlagID: 3}}
	for _, id := range []int64{1, 2, 3, 3, 1, 2, 2} {
		if e, ok := r.Find(id); !ok || e.FlagID != id {
			t.Errorf("Find(%d) = %v, %v", id, e, ok)
		}
	}
	if _, ok := r.Find(4); ok {
		t.Error("Find(4) found")
	}
	r.Entries = nil
	if _, ok := r.Find(1); ok {
		t.Error("Find on no entries found")
	}
}

func TestSources(t *testing.T) {
	want := map[Source]struct {
		name  string
		stale bool
	}{
		Stored:           {"stored", false},
		NotPrecomputable: {"live_not_precomputable", false},
		Absent:           {"live_absent", true},
		StaleRow:         {"live_stale_row", true},
		StaleFlag:        {"live_stale_flag", true},
		Expired:          {"live_expired", true},
		Overridden:       {"live_override", false},
		NoSubject:        {"live_no_subject", false},
		Forced:           {"live_forced", false},
	}
	all := Sources()
	if len(all) != len(want) {
		t.Fatalf("Sources() = %v, want %d sources", all, len(want))
	}
	for i, s := range all {
		if s != Source(i) {
			t.Errorf("Sources()[%d] = %d", i, s)
		}
		w, ok := want[s]
		if !ok {
			t.Errorf("unexpected source %d", s)
			continue
		}
		if s.String() != w.name || s.Stale() != w.stale {
			t.Errorf("%d: String %q Stale %v, want %q %v", s, s.String(), s.Stale(), w.name, w.stale)
		}
	}
	if got := Source(200).String(); got != "unknown" {
		t.Errorf("Source(200).String() = %q", got)
	}
}

// stampSet is a Stamper from a map of flag ids to stamps.
type stampSet map[int64]uint64

func (s stampSet) CurrentStamp(id int64) (uint64, bool) {
	v, ok := s[id]
	return v, ok
}

// stampsOf is the Stamper of the plan entries were computed with.
func stampsOf(entries []Entry) stampSet {
	s := stampSet{}
	for _, e := range entries {
		s[e.FlagID] = e.Stamp
	}
	return s
}
