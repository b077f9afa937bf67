package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
)

// NewStore returns an empty store for one test. It registers its own
// cleanup (t.Cleanup); the suite closes stores only in the Close test.
type NewStore func(t *testing.T) store.Store

// Run runs the contract suite against the stores newStore returns. Each
// top-level subtest takes a fresh store; within one, teams keep cases apart.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RowRoundTrip", testRowRoundTrip},
		{"RowKeys", testRowKeys},
		{"RowReservedFields", testRowReservedFields},
		{"RowCounters", testRowCounters},
		{"RowOpsMergeInBatch", testRowOpsMergeInBatch},
		{"NumbersKeepText", testNumbersKeepText},
		{"Persons", testPersons},
		{"Mappings", testMappings},
		{"Index", testIndex},
		{"Groups", testGroups},
		{"GroupTypes", testGroupTypes},
		{"ScanRows", testScanRows},
		{"ScanRowsLarge", testScanRowsLarge},
		{"ResultsVersioned", testResultsVersioned},
		{"GroupResults", testGroupResults},
		{"GroupCounters", testGroupCounters},
		{"ResultsRace", testResultsRace},
		{"Expiries", testExpiries},
		{"ScanGroups", testScanGroups},
		{"InvalidResultsAndExpiries", testInvalidResultsAndExpiries},
		{"InvalidBatchWritesNothing", testInvalidBatch},
		{"EmptyBatch", testEmptyBatch},
		{"CanceledContext", testCanceledContext},
		{"ReadsDoNotAlias", testReadsDoNotAlias},
		{"DumpAndDigest", testDumpAndDigest},
		{"DigestDetectsChange", testDigestDetectsChange},
		{"ConcurrentReadsAndWrites", testConcurrent},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// RunDurable checks that what Apply wrote survives closing and reopening.
// open returns a fresh, empty store and a function that closes it and
// opens it again over the same durable location.
func RunDurable(t *testing.T, open func(t *testing.T) (s store.Store, reopen func(t *testing.T) store.Store)) {
	ctx := context.Background()
	s, reopen := open(t)
	b := fixtureBatch(71)
	mustApply(t, s, b)
	var b2 store.Batch
	b2.SetResults(71, "d-0", []byte("R"), nowStamp())
	b2.DeleteRow(71, "d-2")
	mustApply(t, s, &b2)
	want, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t)
	got, err := Digest(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("digest after reopen %x, want %x", got, want)
	}
	r, err := s2.GetRow(ctx, 71, "d-0")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Results) != "R" || string(r.Properties) != `{"n":0}` {
		t.Fatalf("row after reopen = %+v", r)
	}
	if _, err := s2.GetRow(ctx, 71, "d-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted row after reopen: err = %v, want ErrNotFound", err)
	}
	n, err := Counts(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	wantN := map[string]int{"person": 4, "mapping": 4, "index": 4, "row": 3, "group": 1, "grouptype": 1}
	if fmt.Sprint(n) != fmt.Sprint(wantN) {
		t.Fatalf("counts after reopen %v, want %v", n, wantN)
	}
}

// fixtureBatch writes 4 persons with one distinct id each, their rows, a
// group and a group type, all in team.
func fixtureBatch(team int64) *store.Batch {
	var b store.Batch
	for i := range 4 {
		pid := fmt.Sprintf("p-%d", i)
		did := fmt.Sprintf("d-%d", i)
		p := store.NewPerson(team, pid)
		if _, err := p.ApplyUpdate(store.PersonUpdate{Version: int64(i + 1), Set: map[string][]byte{"n": fmt.Appendf(nil, "%d", i)}}); err != nil {
			panic(err)
		}
		m := store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: int64(i + 1)}
		b.PutPerson(p)
		b.PutMapping(m)
		b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
		r, _ := store.DeriveRow(m, p)
		b.PutRow(r)
	}
	g := store.NewGroup(team, 1, "acme")
	if _, err := g.ApplyUpdate(store.GroupUpdate{Version: 3, Set: map[string][]byte{"plan": []byte(`"pro"`)}}); err != nil {
		panic(err)
	}
	b.PutGroup(g)
	b.PutGroupType(store.GroupType{Team: team, Index: 1, Name: "company"})
	return &b
}

// fixedStamp is a results stamp in the past (2025-11-14), for content
// that must be equal across stores and runs.
const fixedStamp int64 = 1_763_100_000_000_000

// nowStamp returns a results stamp as the precompute worker's clock gives
// it: now, in microseconds since the Unix epoch.
func nowStamp() int64 { return time.Now().UnixMicro() }

// applyWith applies the batch that fill builds.
func applyWith(t *testing.T, s store.Store, fill func(b *store.Batch)) {
	t.Helper()
	var b store.Batch
	fill(&b)
	mustApply(t, s, &b)
}

func mustApply(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func row(team int64, did, pid string, version int64, props string) *store.Row {
	return &store.Row{
		Team: team, DistinctID: did, PersonID: pid, PersonVersion: version,
		Properties: []byte(props), Revision: store.Revision([]byte(props)),
	}
}

// enc is the canonical encoding, the comparison that ignores nil vs empty
// reserved fields.
func enc(t *testing.T, v interface{ MarshalBinary() ([]byte, error) }) string {
	t.Helper()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantRow(t *testing.T, s store.Store, want *store.Row) {
	t.Helper()
	got, err := s.GetRow(context.Background(), want.Team, want.DistinctID)
	if err != nil {
		t.Fatalf("GetRow(%d, %q): %v", want.Team, want.DistinctID, err)
	}
	if enc(t, got) != enc(t, want) {
		t.Fatalf("GetRow(%d, %q)\n got %+v\nwant %+v", want.Team, want.DistinctID, got, want)
	}
	rb, ok := s.(store.RowBufferReader)
	if !ok {
		return
	}
	for _, buf := range rowBuffers() {
		var r store.Row
		out, err := rb.GetRowBuffer(context.Background(), want.Team, want.DistinctID, &r, buf)
		if err != nil {
			t.Fatalf("GetRowBuffer(%d, %q) into %d of %d bytes: %v", want.Team, want.DistinctID, len(buf), cap(buf), err)
		}
		if enc(t, &r) != enc(t, want) {
			t.Fatalf("GetRowBuffer(%d, %q) into %d of %d bytes\n got %+v\nwant %+v", want.Team, want.DistinctID, len(buf), cap(buf), &r, want)
		}
		if len(out) <= cap(buf) && cap(buf) > 0 && &out[:1][0] != &buf[:1][0] {
			t.Fatalf("GetRowBuffer(%d, %q): a buffer of %d bytes for a row of %d was not used", want.Team, want.DistinctID, cap(buf), len(out))
		}
	}
}

// rowBuffers are the buffers a RowBufferReader is handed: none, one too
// small, and one large enough that holds another row's bytes.
func rowBuffers() [][]byte {
	dirty := bytes.Repeat([]byte{0xaa}, 100)
	return [][]byte{nil, make([]byte, 3, 8), slices.Grow(dirty, 64<<10)}
}

func wantNoRow(t *testing.T, s store.Store, team int64, did string) {
	t.Helper()
	r, err := s.GetRow(context.Background(), team, did)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRow(%d, %q) = %+v, %v; want ErrNotFound", team, did, r, err)
	}
	if rb, ok := s.(store.RowBufferReader); ok {
		for _, buf := range rowBuffers() {
			var got store.Row
			if _, err := rb.GetRowBuffer(context.Background(), team, did, &got, buf); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("GetRowBuffer(%d, %q) = %+v, %v; want ErrNotFound", team, did, got, err)
			}
		}
	}
}

func testRowRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	wantNoRow(t, s, 1, "nobody")
	r1 := row(1, "alice", "p1", 7, `{"email":"a@x.io","n":5}`)
	r2 := row(2, "alice", "p9", 1, `{}`) // same distinct id, other team
	r3 := row(-5, "bob", "p2", -3, `{"neg":true}`)
	var b store.Batch
	b.PutRow(r1)
	b.PutRow(r2)
	b.PutRow(r3)
	mustApply(t, s, &b)
	wantRow(t, s, r1)
	wantRow(t, s, r2)
	wantRow(t, s, r3)
	wantNoRow(t, s, 3, "alice")
	wantNoRow(t, s, 1, "alic")
	wantNoRow(t, s, 1, "alice2")

	// Overwrite, then delete.
	r1b := row(1, "alice", "p1", 8, `{"email":"b@x.io"}`)
	b.Reset()
	b.PutRow(r1b)
	mustApply(t, s, &b)
	wantRow(t, s, r1b)
	b.Reset()
	b.DeleteRow(1, "alice")
	mustApply(t, s, &b)
	wantNoRow(t, s, 1, "alice")
	wantRow(t, s, r2)
	// Deleting a missing row is fine.
	b.Reset()
	b.DeleteRow(1, "never-there")
	mustApply(t, s, &b)
	_ = ctx
}

func testRowKeys(t *testing.T, s store.Store) {
	keys := []string{
		"ünïcødé-ß-日本語-🚩",
		strings.Repeat("long-", 200), // 1000 bytes, near the ingest limit
		"a\x00b", "a", "a\x00", "a\x01", "a\u00ff", "a\U0010FFFF", "with space", `quote"and\slash`,
		"0", "00",
	}
	var b store.Batch
	for i, k := range keys {
		b.PutRow(row(9, k, fmt.Sprintf("person-%d-%s", i, k), int64(i), fmt.Sprintf(`{"i":%d}`, i)))
	}
	mustApply(t, s, &b)
	for i, k := range keys {
		wantRow(t, s, row(9, k, fmt.Sprintf("person-%d-%s", i, k), int64(i), fmt.Sprintf(`{"i":%d}`, i)))
	}
	wantNoRow(t, s, 9, "a\x00b\x00")
	wantNoRow(t, s, 9, "b")
	// Every key is scanned exactly once.
	got := scanAll(t, s, 9, 5)
	if len(got) != len(keys) {
		t.Fatalf("scan returned %d rows, want %d", len(got), len(keys))
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	ids := rowIDs(got)
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Fatalf("scanned ids %q, want %q", ids, want)
	}
}

func testRowReservedFields(t *testing.T, s store.Store) {
	r := row(4, "d1", "p1", 1, `{"a":1}`)
	var b store.Batch
	b.PutRow(r)
	mustApply(t, s, &b)

	// Stamps as the precompute worker's clock gives them: now, in µs, so
	// that the delete below (at the backend's now) is later.
	st := nowStamp()
	b.Reset()
	b.SetResults(4, "d1", []byte("results-v1"), st)
	b.SetCounters(4, "d1", []byte{0, 1, 2, 0xff})
	mustApply(t, s, &b)
	want := r.Clone()
	want.Results, want.Counters, want.ResultsStamp = []byte("results-v1"), []byte{0, 1, 2, 0xff}, st
	wantRow(t, s, want)

	// A person rewrite keeps both reserved fields.
	r2 := row(4, "d1", "p1", 2, `{"a":2}`)
	r2.Results, r2.Counters = []byte("ignored"), []byte("ignored") // PutRow ignores them
	b.Reset()
	b.PutRow(r2)
	mustApply(t, s, &b)
	want = row(4, "d1", "p1", 2, `{"a":2}`)
	want.Results, want.Counters, want.ResultsStamp = []byte("results-v1"), []byte{0, 1, 2, 0xff}, st
	wantRow(t, s, want)

	// Replacing one keeps the other; rewriting with a put in the same batch too.
	b.Reset()
	b.SetResults(4, "d1", []byte("results-v2"), st+1)
	b.PutRow(row(4, "d1", "p2", 3, `{"a":3}`))
	mustApply(t, s, &b)
	want = row(4, "d1", "p2", 3, `{"a":3}`)
	want.Results, want.Counters, want.ResultsStamp = []byte("results-v2"), []byte{0, 1, 2, 0xff}, st+1
	wantRow(t, s, want)

	// Clearing results.
	b.Reset()
	b.SetResults(4, "d1", nil, st+2)
	mustApply(t, s, &b)
	want.Results, want.ResultsStamp = nil, st+2
	wantRow(t, s, want)

	// Delete removes everything: a later put starts clean.
	b.Reset()
	b.DeleteRow(4, "d1")
	mustApply(t, s, &b)
	wantNoRow(t, s, 4, "d1")
	b.Reset()
	b.PutRow(row(4, "d1", "p3", 4, `{}`))
	mustApply(t, s, &b)
	wantRow(t, s, row(4, "d1", "p3", 4, `{}`))

	// Reserved fields on a row without a person part stay invisible until
	// a put, then appear with it.
	b.Reset()
	b.SetCounters(4, "early", []byte("c"))
	mustApply(t, s, &b)
	wantNoRow(t, s, 4, "early")
	if page := scanAll(t, s, 4, 10); len(page) != 1 {
		t.Fatalf("scan of team 4 returned %d rows, want 1 (invisible row skipped)", len(page))
	}
	b.Reset()
	b.PutRow(row(4, "early", "p4", 1, `{"x":"y"}`))
	mustApply(t, s, &b)
	want = row(4, "early", "p4", 1, `{"x":"y"}`)
	want.Counters = []byte("c")
	wantRow(t, s, want)
}

// testRowCounters: behavioural counters (package flags/counters: up to
// some 32 KiB for a row, binary) round trip exactly through GetRow and
// ScanRows, are replaced whole, survive person rewrites and mapping moves,
// and go with the row.
func testRowCounters(t *testing.T, s store.Store) {
	big := make([]byte, 32<<10)
	for i := range big {
		big[i] = byte(i*7 + i>>8) // zeros and 0xff included
	}
	var b store.Batch
	b.PutRow(row(5, "d1", "p1", 1, `{"a":1}`))
	b.SetCounters(5, "d1", big)
	mustApply(t, s, &b)
	want := row(5, "d1", "p1", 1, `{"a":1}`)
	want.Counters = big
	wantRow(t, s, want)
	if rows := scanAll(t, s, 5, 10); len(rows) != 1 || !bytes.Equal(rows[0].Counters, big) {
		t.Fatalf("scan: %d rows, counters equal %v", len(rows), len(rows) == 1 && bytes.Equal(rows[0].Counters, big))
	}
	// A smaller encoding replaces the whole value; a move to another
	// person (a merge) keeps it.
	b.Reset()
	b.SetCounters(5, "d1", big[:10])
	b.PutRow(row(5, "d1", "p2", 2, `{"a":2}`))
	mustApply(t, s, &b)
	want = row(5, "d1", "p2", 2, `{"a":2}`)
	want.Counters = big[:10]
	wantRow(t, s, want)
	b.Reset()
	b.DeleteRow(5, "d1")
	mustApply(t, s, &b)
	b.Reset()
	b.PutRow(row(5, "d1", "p2", 3, `{}`))
	mustApply(t, s, &b)
	wantRow(t, s, row(5, "d1", "p2", 3, `{}`))
}

func testRowOpsMergeInBatch(t *testing.T, s store.Store) {
	var b store.Batch
	b.PutRow(row(5, "keep", "p", 1, `{"v":1}`))
	b.SetResults(5, "keep", []byte("r"), nowStamp())
	b.PutRow(row(5, "gone", "p", 1, `{}`))
	mustApply(t, s, &b)

	b.Reset()
	b.PutRow(row(5, "gone", "p", 2, `{"v":2}`))
	b.DeleteRow(5, "gone") // the later delete wins
	b.DeleteRow(5, "keep")
	b.PutRow(row(5, "keep", "q", 2, `{"v":2}`)) // delete then put: fresh row
	b.PutRow(row(5, "twice", "p", 1, `{"v":1}`))
	b.PutRow(row(5, "twice", "p", 2, `{"v":2}`)) // the later put wins
	if b.Len() != 3 {
		t.Fatalf("batch Len = %d, want 3 merged row ops", b.Len())
	}
	mustApply(t, s, &b)
	wantNoRow(t, s, 5, "gone")
	wantRow(t, s, row(5, "keep", "q", 2, `{"v":2}`))
	wantRow(t, s, row(5, "twice", "p", 2, `{"v":2}`))
}

func testNumbersKeepText(t *testing.T, s store.Store) {
	ctx := context.Background()
	props := `{"a":5,"b":5.0,"c":1e3,"d":-0,"e":12345678901234567890123,"f":"5","g":[1.10,{"h":2.50}]}`
	var b store.Batch
	b.PutRow(row(6, "n", "p", 1, props))
	p := store.NewPerson(6, "p")
	if _, err := p.ApplyUpdate(store.PersonUpdate{Version: 1, Set: map[string][]byte{
		"a": []byte("5"), "b": []byte("5.0"), "c": []byte(" 1E3 "),
	}}); err != nil {
		t.Fatal(err)
	}
	b.PutPerson(p)
	g := store.NewGroup(6, 0, "g")
	if _, err := g.ApplyUpdate(store.GroupUpdate{Version: 1, Set: map[string][]byte{"x": []byte("5.00")}}); err != nil {
		t.Fatal(err)
	}
	b.PutGroup(g)
	mustApply(t, s, &b)
	wantRow(t, s, row(6, "n", "p", 1, props))
	gotP, err := s.GetPerson(ctx, 6, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(gotP.EffectiveProperties()); got != `{"a":5,"b":5.0,"c":1E3}` {
		t.Fatalf("person properties %s", got)
	}
	gotG, err := s.GetGroup(ctx, 6, 0, "g")
	if err != nil {
		t.Fatal(err)
	}
	if string(gotG.Properties) != `{"x":5.00}` || string(gotG.Set["x"].Value) != "5.00" {
		t.Fatalf("group properties %s, register %s", gotG.Properties, gotG.Set["x"].Value)
	}
}

func testPersons(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetPerson(ctx, 1, "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPerson on empty store: %v, want ErrNotFound", err)
	}
	p := store.NewPerson(1, "p")
	for _, u := range []store.PersonUpdate{
		{Version: 3, Set: map[string][]byte{"email": []byte(`"a@x.io"`), "ü": []byte(`{"nested":[1,2]}`)}},
		{Version: 4, SetOnce: map[string][]byte{"first": []byte(`"yes"`)}, Unset: []string{"gone"}},
	} {
		if _, err := p.ApplyUpdate(u); err != nil {
			t.Fatal(err)
		}
	}
	dead := store.NewPerson(1, "dead")
	dead.ApplyUpdate(store.PersonUpdate{Version: 1, SetOnce: map[string][]byte{"k": []byte("1")}})
	dead.ApplyDelete(9)
	other := store.NewPerson(2, "p") // same id, other team
	var b store.Batch
	b.PutPerson(p)
	b.PutPerson(dead)
	b.PutPerson(other)
	mustApply(t, s, &b)

	for _, want := range []*store.Person{p, dead, other} {
		got, err := s.GetPerson(ctx, want.Team, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if enc(t, got) != enc(t, want) {
			t.Fatalf("GetPerson(%d,%q)\n got %+v\nwant %+v", want.Team, want.ID, got, want)
		}
	}
	got, err := s.GetPersons(ctx, []store.PersonKey{{Team: 1, ID: "p"}, {Team: 1, ID: "missing"}, {Team: 1, ID: "dead"}, {Team: 3, ID: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[store.PersonKey{Team: 1, ID: "p"}] == nil || !got[store.PersonKey{Team: 1, ID: "dead"}].Deleted {
		t.Fatalf("GetPersons = %v", got)
	}
	if g := got[store.PersonKey{Team: 1, ID: "dead"}]; g.DeleteVersion != 9 || g.Version != 9 || g.SetOnce["k"].Value != nil || g.SetOnce["k"].Version != 1 {
		t.Fatalf("tombstoned person = %+v", g)
	}
	if got, err := s.GetPersons(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("GetPersons(nil) = %v, %v", got, err)
	}
	// Overwrite.
	p2 := p.Clone()
	p2.ApplyUpdate(store.PersonUpdate{Version: 10, Unset: []string{"email"}})
	b.Reset()
	b.PutPerson(p2)
	mustApply(t, s, &b)
	gp, err := s.GetPerson(ctx, 1, "p")
	if err != nil {
		t.Fatal(err)
	}
	if enc(t, gp) != enc(t, p2) || gp.Set["email"].Value != nil || gp.Set["email"].Version != 10 {
		t.Fatalf("rewritten person = %+v", gp)
	}
}

func testMappings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetMapping(ctx, 1, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMapping on empty store: %v, want ErrNotFound", err)
	}
	ms := []store.Mapping{
		{Team: 1, DistinctID: "d1", PersonID: "p1", Version: 5},
		{Team: 1, DistinctID: "d2", PersonID: "p1", Version: -2},
		{Team: 2, DistinctID: "d1", PersonID: "p9", Version: 0},
		{Team: 1, DistinctID: "日本", PersonID: "ünï", Version: 1 << 60},
	}
	var b store.Batch
	for _, m := range ms {
		b.PutMapping(m)
	}
	mustApply(t, s, &b)
	for _, m := range ms {
		got, err := s.GetMapping(ctx, m.Team, m.DistinctID)
		if err != nil || got != m {
			t.Fatalf("GetMapping(%d,%q) = %+v, %v; want %+v", m.Team, m.DistinctID, got, err, m)
		}
	}
	keys := []store.DistinctKey{{Team: 1, DistinctID: "d1"}, {Team: 1, DistinctID: "nope"}, {Team: 2, DistinctID: "d1"}}
	got, err := s.GetMappings(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[keys[0]] != ms[0] || got[keys[2]] != ms[2] {
		t.Fatalf("GetMappings = %v", got)
	}
	// Overwrite moves the id.
	moved := store.Mapping{Team: 1, DistinctID: "d1", PersonID: "p2", Version: 6}
	b.Reset()
	b.PutMapping(moved)
	mustApply(t, s, &b)
	if got, err := s.GetMapping(ctx, 1, "d1"); err != nil || got != moved {
		t.Fatalf("after move GetMapping = %+v, %v", got, err)
	}
}

func testIndex(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ids, err := s.DistinctIDs(ctx, 1, "p"); err != nil || len(ids) != 0 {
		t.Fatalf("DistinctIDs on empty store = %q, %v", ids, err)
	}
	var b store.Batch
	put := func(team int64, pid string, dids ...string) {
		for _, d := range dids {
			b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: d})
		}
	}
	put(1, "p", "z", "a", "m", "a\x00", "ü")
	put(1, "p2", "x")    // p is a prefix of p2
	put(1, "p\x00", "y") // and of p\x00 in raw bytes
	put(2, "p", "other-team")
	mustApply(t, s, &b)
	check := func(team int64, pid string, want ...string) {
		t.Helper()
		got, err := s.DistinctIDs(ctx, team, pid)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("DistinctIDs(%d,%q) = %q, want %q", team, pid, got, want)
		}
	}
	check(1, "p", "a", "a\x00", "m", "z", "ü")
	check(1, "p2", "x")
	check(1, "p\x00", "y")
	check(2, "p", "other-team")
	check(3, "p")

	b.Reset()
	b.DeleteIndex(store.IndexEntry{Team: 1, PersonID: "p", DistinctID: "m"})
	b.DeleteIndex(store.IndexEntry{Team: 1, PersonID: "p", DistinctID: "never"})
	b.PutIndex(store.IndexEntry{Team: 1, PersonID: "p", DistinctID: "z"}) // idempotent
	mustApply(t, s, &b)
	check(1, "p", "a", "a\x00", "z", "ü")
}

func testGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetGroup(ctx, 1, 0, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetGroup on empty store: %v, want ErrNotFound", err)
	}
	for _, idx := range []int{-1, store.MaxGroupTypeIndex + 1} {
		if _, err := s.GetGroup(ctx, 1, idx, "acme"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("GetGroup type index %d: %v, want ErrInvalid", idx, err)
		}
	}
	var gs []*store.Group
	for _, k := range []store.GroupKey{{Team: 1, TypeIndex: 0, Key: "acme"}, {Team: 1, TypeIndex: 1, Key: "acme"}, {Team: 1, TypeIndex: 255, Key: "ß"}, {Team: 2, TypeIndex: 0, Key: "acme"}} {
		g := store.NewGroup(k.Team, k.TypeIndex, k.Key)
		g.ApplyUpdate(store.GroupUpdate{Version: 2, Set: map[string][]byte{"name": fmt.Appendf(nil, "%q", k.Key), "idx": fmt.Appendf(nil, "%d", k.TypeIndex)}})
		g.ApplyUpdate(store.GroupUpdate{Version: 3, Unset: []string{"idx"}})
		gs = append(gs, g)
	}
	var b store.Batch
	for _, g := range gs {
		b.PutGroup(g)
	}
	mustApply(t, s, &b)
	for _, want := range gs {
		got, err := s.GetGroup(ctx, want.Team, want.TypeIndex, want.Key)
		if err != nil {
			t.Fatal(err)
		}
		if enc(t, got) != enc(t, want) {
			t.Fatalf("GetGroup(%d,%d,%q)\n got %+v\nwant %+v", want.Team, want.TypeIndex, want.Key, got, want)
		}
		if wantProps := fmt.Sprintf(`{"name":%q}`, want.Key); string(got.Properties) != wantProps || got.Version != 3 || got.Revision != store.Revision(got.Properties) {
			t.Fatalf("group %+v: properties %s, want %s", got, got.Properties, wantProps)
		}
	}
	if _, err := s.GetGroup(ctx, 1, 2, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetGroup other type index: %v, want ErrNotFound", err)
	}
}

func testGroupTypes(t *testing.T, s store.Store) {
	ctx := context.Background()
	if gts, err := s.GetGroupTypes(ctx, 1); err != nil || len(gts) != 0 {
		t.Fatalf("GetGroupTypes on empty store = %v, %v", gts, err)
	}
	var b store.Batch
	b.PutGroupType(store.GroupType{Team: 1, Index: 4, Name: "project"})
	b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "company"})
	b.PutGroupType(store.GroupType{Team: 1, Index: 255, Name: "ünïcode"})
	b.PutGroupType(store.GroupType{Team: 2, Index: 0, Name: "org"})
	mustApply(t, s, &b)
	// Idempotent re-put.
	b.Reset()
	b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "company"})
	mustApply(t, s, &b)
	got, err := s.GetGroupTypes(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.GroupType{{Team: 1, Index: 0, Name: "company"}, {Team: 1, Index: 4, Name: "project"}, {Team: 1, Index: 255, Name: "ünïcode"}}
	if !slices.Equal(got, want) {
		t.Fatalf("GetGroupTypes = %v, want %v", got, want)
	}
	b.Reset()
	b.PutGroupType(store.GroupType{Team: 1, Index: 256, Name: "x"})
	if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply group type index 256: %v, want ErrInvalid", err)
	}
}

func scanAll(t *testing.T, s store.Store, team int64, limit int) []*store.Row {
	t.Helper()
	return scanPages(t, limit, func(cursor string) ([]*store.Row, string, error) {
		page, err := s.ScanRows(context.Background(), team, cursor, limit)
		return page.Rows, page.Next, err
	})
}

// scanPages reads every page of a scan from the start, checking the page
// contract: at most limit items a page, no empty page before the end.
func scanPages[T any](t *testing.T, limit int, scan func(cursor string) ([]T, string, error)) []T {
	t.Helper()
	var out []T
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("scan does not end")
		}
		items, next, err := scan(cursor)
		if err != nil {
			t.Fatalf("scan from %q, limit %d: %v", cursor, limit, err)
		}
		if limit > 0 && len(items) > limit {
			t.Fatalf("page of %d items exceeds limit %d", len(items), limit)
		}
		out = append(out, items...)
		if next == "" {
			return out
		}
		if len(items) == 0 {
			t.Fatalf("empty page with a next cursor %q", next)
		}
		cursor = next
	}
}

func rowIDs(rows []*store.Row) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.DistinctID
	}
	return ids
}

func testScanRows(t *testing.T, s store.Store) {
	ctx := context.Background()
	if rows := scanAll(t, s, 7, 3); len(rows) != 0 {
		t.Fatalf("scan of an empty team returned %d rows", len(rows))
	}
	var b store.Batch
	var want []string
	for i := range 23 {
		did := fmt.Sprintf("u%02d", i)
		r := row(7, did, "p"+did, int64(i), fmt.Sprintf(`{"i":%d}`, i))
		b.PutRow(r)
		b.SetResults(7, did, []byte(did), fixedStamp+int64(i))
		want = append(want, did)
	}
	b.SetCounters(7, "invisible", []byte("c")) // no person part
	b.PutRow(row(8, "u00", "x", 1, `{}`))      // other teams stay out
	b.PutRow(row(6, "u99", "x", 1, `{}`))
	mustApply(t, s, &b)

	for _, limit := range []int{1, 2, 5, 7, 22, 23, 24, 1000, 0} {
		got := scanAll(t, s, 7, limit)
		ids := rowIDs(got)
		sorted := slices.Clone(ids)
		slices.Sort(sorted)
		if !slices.Equal(sorted, want) {
			t.Fatalf("limit %d: scanned %q, want each of %q once", limit, ids, want)
		}
		// Deterministic order: same as with another page size.
		if ref := rowIDs(scanAll(t, s, 7, 4)); !slices.Equal(ids, ref) {
			t.Fatalf("limit %d order %q differs from limit 4 order %q", limit, ids, ref)
		}
		for _, r := range got {
			i := slices.Index(want, r.DistinctID)
			w := row(7, r.DistinctID, "p"+r.DistinctID, int64(i), fmt.Sprintf(`{"i":%d}`, i))
			w.Results, w.ResultsStamp = []byte(r.DistinctID), fixedStamp+int64(i)
			if enc(t, r) != enc(t, w) {
				t.Fatalf("scanned row %+v, want %+v", r, w)
			}
		}
	}
	// An exact page boundary: the page that fills the limit either has a
	// cursor to an empty last page, or none; both end the scan.
	page, err := s.ScanRows(ctx, 7, "", 23)
	if err != nil || len(page.Rows) != 23 {
		t.Fatalf("ScanRows limit 23: %d rows, %v", len(page.Rows), err)
	}
	if page.Next != "" {
		last, err := s.ScanRows(ctx, 7, page.Next, 23)
		if err != nil || len(last.Rows) != 0 || last.Next != "" {
			t.Fatalf("page after the last: %d rows, next %q, %v", len(last.Rows), last.Next, err)
		}
	}
	// A row deleted between pages is not returned; the rest still are once.
	page, err = s.ScanRows(ctx, 7, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := rowIDs(page.Rows)
	rest := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return slices.Contains(seen, id) })
	b.Reset()
	b.DeleteRow(7, rest[0])
	mustApply(t, s, &b)
	for cursor := page.Next; cursor != ""; {
		p, err := s.ScanRows(ctx, 7, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, rowIDs(p.Rows)...)
		cursor = p.Next
	}
	slices.Sort(seen)
	if wantSeen := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == rest[0] }); !slices.Equal(seen, wantSeen) {
		t.Fatalf("scan across a delete saw %q, want %q", seen, wantSeen)
	}
	if _, err := s.ScanRows(ctx, 7, "not a cursor!", 10); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ScanRows with a malformed cursor: %v, want ErrInvalid", err)
	}
}

func testScanRowsLarge(t *testing.T, s store.Store) {
	const n = 2500
	var b store.Batch
	for i := range n {
		did := fmt.Sprintf("%x", i*7919)
		b.PutRow(row(11, did, "p", 1, `{}`))
	}
	mustApply(t, s, &b)
	rows := scanAll(t, s, 11, 0) // default limit, several pages
	ids := rowIDs(rows)
	slices.Sort(ids)
	if len(slices.Compact(ids)) != n {
		t.Fatalf("scanned %d distinct rows, want %d", len(ids), n)
	}
}

func testInvalidBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	var b store.Batch
	b.PutRow(row(3, "d", "p", 1, `{}`))
	b.PutPerson(store.NewPerson(3, "p"))
	b.PutGroup(store.NewGroup(3, store.MaxGroupTypeIndex+1, "bad"))
	if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply invalid batch: %v, want ErrInvalid", err)
	}
	b.Reset()
	b.PutRow(row(3, "d2", "p", 1, `not json`))
	if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply row with non-object properties: %v, want ErrInvalid", err)
	}
	wantNoRow(t, s, 3, "d")
	wantNoRow(t, s, 3, "d2")
	if _, err := s.GetPerson(ctx, 3, "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("person of a refused batch: %v, want ErrNotFound", err)
	}
	if n, err := Counts(ctx, s); err != nil || len(n) != 0 {
		t.Fatalf("store after refused batches: %v, %v", n, err)
	}
}

func testEmptyBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	before, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, &store.Batch{})
	after, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatal("an empty batch changed the digest")
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var b store.Batch
	b.PutRow(row(14, "d", "p", 1, `{}`))
	if err := s.Apply(ctx, &b); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a canceled context: %v, want context.Canceled", err)
	}
	wantNoRow(t, s, 14, "d")
}

func testReadsDoNotAlias(t *testing.T, s store.Store) {
	ctx := context.Background()
	props := []byte(`{"a":1}`)
	r := row(12, "d", "p", 1, string(props))
	r.Properties = props
	p := store.NewPerson(12, "p")
	p.ApplyUpdate(store.PersonUpdate{Version: 1, Set: map[string][]byte{"a": []byte("1")}})
	var b store.Batch
	b.PutRow(r)
	b.PutPerson(p)
	mustApply(t, s, &b)
	// Mutating what was written or read must not change the store.
	props[2] = 'X'
	p.Set["b"] = store.Register{Version: 9, Value: []byte("2")}
	got, err := s.GetRow(ctx, 12, "d")
	if err != nil {
		t.Fatal(err)
	}
	got.Properties[2] = 'Y'
	got.PersonID = "changed"
	gp, err := s.GetPerson(ctx, 12, "p")
	if err != nil {
		t.Fatal(err)
	}
	gp.Set["c"] = store.Register{Version: 9, Value: []byte("3")}
	wantRow(t, s, row(12, "d", "p", 1, `{"a":1}`))
	gp2, err := s.GetPerson(ctx, 12, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(gp2.Set) != 1 {
		t.Fatalf("person registers after mutating copies: %v", gp2.Set)
	}
}

// populate writes content in an order given by perm; equal content for
// any permutation.
func populate(t *testing.T, s store.Store, perm []int, batchSize int) {
	type write func(b *store.Batch)
	var ws []write
	for i := range 30 {
		team := int64(i%3 + 1)
		pid := fmt.Sprintf("p%d", i%10)
		did := fmt.Sprintf("d%d", i)
		ws = append(ws, func(b *store.Batch) {
			p := store.NewPerson(team, pid+"-"+did)
			p.ApplyUpdate(store.PersonUpdate{Version: int64(i), Set: map[string][]byte{"i": fmt.Appendf(nil, "%d", i)}, SetOnce: map[string][]byte{"o": []byte(`"x"`)}})
			if i%7 == 0 {
				p.ApplyDelete(int64(i + 1))
			}
			b.PutPerson(p)
			m := store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: int64(i)}
			b.PutMapping(m)
			b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
			r, _ := store.DeriveRow(m, p)
			if i%7 != 0 {
				b.PutRow(r)
			}
			if i%4 == 0 {
				b.SetResults(team, did, fmt.Appendf(nil, "res%d", i), fixedStamp+int64(i))
			}
		})
	}
	for i := range 5 {
		ws = append(ws, func(b *store.Batch) {
			g := store.NewGroup(int64(i%2+1), i%3, fmt.Sprintf("g%d", i))
			g.ApplyUpdate(store.GroupUpdate{Version: int64(i), Set: map[string][]byte{"k": []byte("true")}})
			b.PutGroup(g)
			b.PutGroupType(store.GroupType{Team: int64(i%2 + 1), Index: i % 3, Name: fmt.Sprintf("type%d", i%3)})
		})
	}
	if perm == nil {
		perm = make([]int, len(ws))
		for i := range perm {
			perm[i] = i
		}
	}
	var b store.Batch
	for _, i := range perm {
		ws[i](&b)
		if b.Len() >= batchSize {
			mustApply(t, s, &b)
			b.Reset()
		}
	}
	mustApply(t, s, &b)
}

func testDumpAndDigest(t *testing.T, s store.Store) {
	ctx := context.Background()
	empty, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, s, nil, 1000)
	d1, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if d1 == empty {
		t.Fatal("digest of a populated store equals the empty digest")
	}
	n, err := Counts(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// 30 persons, 30 mappings, 30 index entries, 30 - 5 deleted rows
	// (i%7==0), 5 groups, 5 group types minus duplicates (team, i%3).
	want := map[string]int{"person": 30, "mapping": 30, "index": 30, "row": 25, "group": 5, "grouptype": 5}
	if fmt.Sprint(n) != fmt.Sprint(want) {
		t.Fatalf("Dump counts %v, want %v", n, want)
	}
	// Rewriting the same content in another order and other batch sizes,
	// on top of itself, leaves the digest unchanged.
	perm := []int{34, 0, 33, 1, 32, 2, 31, 3, 30, 4}
	for i := 5; i < 30; i++ {
		perm = append(perm, i)
	}
	slices.Reverse(perm[10:])
	populate(t, s, perm, 7)
	d2, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("digest changed on rewriting equal content: %x vs %x", d1, d2)
	}
	// Dump stops at the callback's error and returns it.
	stop := errors.New("stop")
	calls := 0
	if err := s.Dump(ctx, func(store.Entity) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Dump with a failing callback: %v after %d calls", err, calls)
	}
	// Every visited entity is complete: exactly one field set, keys
	// non-zero; the callback may read the store.
	err = s.Dump(ctx, func(e store.Entity) error {
		if e.Row != nil {
			r, err := s.GetRow(ctx, e.Row.Team, e.Row.DistinctID)
			if err != nil {
				return fmt.Errorf("GetRow inside Dump: %w", err)
			}
			if enc(t, r) != enc(t, e.Row) {
				return fmt.Errorf("GetRow inside Dump = %+v, Dump gave %+v", r, e.Row)
			}
		}
		set := 0
		for _, p := range []bool{e.Person != nil, e.Mapping != nil, e.Index != nil, e.Row != nil, e.Group != nil, e.GroupType != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			return fmt.Errorf("entity with %d fields set: %+v", set, e)
		}
		if e.Row != nil && (e.Row.Team == 0 || e.Row.DistinctID == "" || e.Row.Revision != store.Revision(e.Row.Properties)) {
			return fmt.Errorf("incomplete row %+v", e.Row)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testDigestDetectsChange(t *testing.T, s store.Store) {
	ctx := context.Background()
	populate(t, s, nil, 1000)
	base, err := Digest(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[32]byte]string{base: "base"}
	// Each change, applied then undone, must move the digest to a new value
	// and back.
	changes := []struct {
		name     string
		do, undo func(b *store.Batch)
	}{
		{"counters", func(b *store.Batch) { b.SetCounters(2, "d1", []byte("c")) }, func(b *store.Batch) { b.SetCounters(2, "d1", nil) }},
		{"number text", func(b *store.Batch) {
			p := store.NewPerson(2, "p1-d1")
			p.ApplyUpdate(store.PersonUpdate{Version: 1, Set: map[string][]byte{"i": []byte("1.0")}, SetOnce: map[string][]byte{"o": []byte(`"x"`)}})
			b.PutPerson(p)
		}, func(b *store.Batch) {
			p := store.NewPerson(2, "p1-d1")
			p.ApplyUpdate(store.PersonUpdate{Version: 1, Set: map[string][]byte{"i": []byte("1")}, SetOnce: map[string][]byte{"o": []byte(`"x"`)}})
			b.PutPerson(p)
		}},
		{"mapping version", func(b *store.Batch) {
			b.PutMapping(store.Mapping{Team: 2, DistinctID: "d1", PersonID: "p1", Version: 2})
		}, func(b *store.Batch) {
			b.PutMapping(store.Mapping{Team: 2, DistinctID: "d1", PersonID: "p1", Version: 1})
		}},
		{"extra index entry", func(b *store.Batch) {
			b.PutIndex(store.IndexEntry{Team: 2, PersonID: "p1", DistinctID: "extra"})
		}, func(b *store.Batch) {
			b.DeleteIndex(store.IndexEntry{Team: 2, PersonID: "p1", DistinctID: "extra"})
		}},
		{"group type name", func(b *store.Batch) {
			b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "type0b"})
		}, func(b *store.Batch) {
			b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "type0"})
		}},
	}
	// Versioned results cannot be undone (an older stamp is ignored): those
	// changes come last, without undo, each moving the digest to a value
	// not seen yet.
	changes = append(changes, []struct {
		name     string
		do, undo func(b *store.Batch)
	}{
		{"results", func(b *store.Batch) { b.SetResults(2, "d1", []byte("other"), fixedStamp) }, nil},
		{"results stamp", func(b *store.Batch) { b.SetResults(2, "d1", []byte("other"), fixedStamp+1) }, nil},
		{"group results", func(b *store.Batch) { b.SetGroupResults(1, 0, "g0", []byte("gr"), fixedStamp) }, nil},
		{"group results stamp", func(b *store.Batch) { b.SetGroupResults(1, 0, "g0", []byte("gr"), fixedStamp+1) }, nil},
	}...)
	for _, c := range changes {
		var b store.Batch
		c.do(&b)
		mustApply(t, s, &b)
		d, err := Digest(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[d]; ok {
			t.Fatalf("change %q gives the digest of %q", c.name, prev)
		}
		seen[d] = c.name
		if c.undo == nil {
			continue
		}
		b.Reset()
		c.undo(&b)
		mustApply(t, s, &b)
		if d, _ := Digest(ctx, s); d != base {
			t.Fatalf("undoing %q did not restore the digest", c.name)
		}
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, rounds = 2, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var b store.Batch
				b.PutRow(row(13, fmt.Sprintf("w%d", w), "p", int64(i), fmt.Sprintf(`{"i":%d}`, i)))
				if err := s.Apply(ctx, &b); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				r, err := s.GetRow(ctx, 13, fmt.Sprintf("w%d", w))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs <- err
					return
				}
				if err == nil && r.Revision != store.Revision(r.Properties) {
					errs <- fmt.Errorf("torn row %+v", r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		wantRow(t, s, row(13, fmt.Sprintf("w%d", w), "p", rounds-1, fmt.Sprintf(`{"i":%d}`, rounds-1)))
	}
}

func testClose(t *testing.T, s store.Store) {
	ctx := context.Background()
	var b store.Batch
	b.PutRow(row(1, "d", "p", 1, `{}`))
	mustApply(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.GetRow(ctx, 1, "d"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetRow after Close: %v, want ErrClosed", err)
	}
	if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}
	if _, err := s.ScanRows(ctx, 1, "", 10); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ScanRows after Close: %v, want ErrClosed", err)
	}
	if err := s.Dump(ctx, func(store.Entity) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Dump after Close: %v, want ErrClosed", err)
	}
}
