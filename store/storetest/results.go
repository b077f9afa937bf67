package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/store"
)

// The tests of versioned results, the expiry index and ScanGroups.

// wantResults checks a row's results and stamp (and that it is visible).
func wantResults(t *testing.T, s store.Store, team int64, did string, results string, stamp int64) {
	t.Helper()
	r, err := s.GetRow(context.Background(), team, did)
	if err != nil {
		t.Fatalf("GetRow(%d, %q): %v", team, did, err)
	}
	if string(r.Results) != results || r.ResultsStamp != stamp {
		t.Fatalf("GetRow(%d, %q): results %q stamp %d, want %q stamp %d", team, did, r.Results, r.ResultsStamp, results, stamp)
	}
}

// wantGroupResults checks a group's results and stamp (and that it is
// visible).
func wantGroupResults(t *testing.T, s store.Store, team int64, typeIndex int, key string, results string, stamp int64) {
	t.Helper()
	g, err := s.GetGroup(context.Background(), team, typeIndex, key)
	if err != nil {
		t.Fatalf("GetGroup(%d, %d, %q): %v", team, typeIndex, key, err)
	}
	if string(g.Results) != results || g.ResultsStamp != stamp {
		t.Fatalf("GetGroup(%d, %d, %q): results %q stamp %d, want %q stamp %d", team, typeIndex, key, g.Results, g.ResultsStamp, results, stamp)
	}
}

func testResultsVersioned(t *testing.T, s store.Store) {
	// Stamps a minute in the past plus small steps: all before the delete
	// below, which a backend may stamp with its own clock.
	base := nowStamp() - 60_000_000
	set := func(results []byte, stamp int64) {
		t.Helper()
		applyWith(t, s, func(b *store.Batch) { b.SetResults(9, "d", results, stamp) })
	}
	applyWith(t, s, func(b *store.Batch) { b.PutRow(row(9, "d", "p", 1, `{"a":1}`)) })
	wantResults(t, s, 9, "d", "", 0)

	set([]byte("v1"), base+10)
	wantResults(t, s, 9, "d", "v1", base+10)
	set([]byte("older"), base+5) // an older stamp is ignored
	wantResults(t, s, 9, "d", "v1", base+10)
	set([]byte("v2"), base+20) // a newer one replaces
	wantResults(t, s, 9, "d", "v2", base+20)

	// Equal stamps: the bytewise larger results win, compared unsigned.
	set([]byte("a"), base+20)
	wantResults(t, s, 9, "d", "v2", base+20)
	set([]byte("z"), base+20)
	wantResults(t, s, 9, "d", "z", base+20)
	set([]byte{0x80}, base+30)
	set([]byte{0x7f, 0xff}, base+30)
	wantResults(t, s, 9, "d", "\x80", base+30)
	set([]byte{0x80, 0}, base+30)
	wantResults(t, s, 9, "d", "\x80\x00", base+30)

	// Empty results are results: they carry their stamp, and lose a tie
	// to any non-empty ones.
	set(nil, base+40)
	wantResults(t, s, 9, "d", "", base+40)
	set([]byte("x"), base+39)
	wantResults(t, s, 9, "d", "", base+40)
	set([]byte("x"), base+40)
	wantResults(t, s, 9, "d", "x", base+40)
	set([]byte{}, base+40)
	wantResults(t, s, 9, "d", "x", base+40)

	// Within one batch the winner is kept, whatever the order.
	applyWith(t, s, func(b *store.Batch) {
		b.SetResults(9, "d", []byte("b60"), base+60)
		b.SetResults(9, "d", []byte("b50"), base+50)
		b.SetResults(9, "d", []byte("a60"), base+60)
	})
	wantResults(t, s, 9, "d", "b60", base+60)

	// A person rewrite keeps results and stamp, even with results in the
	// Row it writes.
	r := row(9, "d", "p2", 2, `{"a":2}`)
	r.Results, r.ResultsStamp = []byte("ignored"), base+1000
	applyWith(t, s, func(b *store.Batch) { b.PutRow(r) })
	want := row(9, "d", "p2", 2, `{"a":2}`)
	want.Results, want.ResultsStamp = []byte("b60"), base+60
	wantRow(t, s, want)
	set([]byte("b59"), base+59) // the stamp survived the rewrite
	wantRow(t, s, want)

	// DeleteRow drops results and stamp.
	applyWith(t, s, func(b *store.Batch) { b.DeleteRow(9, "d") })
	wantNoRow(t, s, 9, "d")
	applyWith(t, s, func(b *store.Batch) { b.PutRow(row(9, "d", "p3", 3, `{}`)) })
	wantRow(t, s, row(9, "d", "p3", 3, `{}`))

	// Results of a row without a person part are stored but invisible
	// (GetRow, ScanRows, Dump) until a put.
	st := nowStamp()
	applyWith(t, s, func(b *store.Batch) { b.SetResults(9, "early", []byte("e1"), st) })
	wantNoRow(t, s, 9, "early")
	if rows := scanAll(t, s, 9, 10); len(rows) != 1 || rows[0].DistinctID != "d" {
		t.Fatalf("scan of team 9 returned %q, want only d", rowIDs(rows))
	}
	if n, err := Counts(context.Background(), s); err != nil || n["row"] != 1 {
		t.Fatalf("Counts = %v, %v; want 1 row", n, err)
	}
	applyWith(t, s, func(b *store.Batch) { b.SetResults(9, "early", []byte("e0"), st-1) })
	applyWith(t, s, func(b *store.Batch) { b.PutRow(row(9, "early", "p", 1, `{}`)) })
	wantResults(t, s, 9, "early", "e1", st)
	rows := scanAll(t, s, 9, 10)
	if len(rows) != 2 || rows[slices.IndexFunc(rows, func(r *store.Row) bool { return r.DistinctID == "early" })].ResultsStamp != st {
		t.Fatalf("scan of team 9 after the put: %+v", rows)
	}
}

func testGroupResults(t *testing.T, s store.Store) {
	base := nowStamp() - 60_000_000
	set := func(results string, stamp int64) {
		t.Helper()
		applyWith(t, s, func(b *store.Batch) { b.SetGroupResults(5, 2, "acme", []byte(results), stamp) })
	}
	g := store.NewGroup(5, 2, "acme")
	g.ApplyUpdate(store.GroupUpdate{Version: 1, Set: map[string][]byte{"plan": []byte(`"free"`)}})
	applyWith(t, s, func(b *store.Batch) { b.PutGroup(g) })
	wantGroupResults(t, s, 5, 2, "acme", "", 0)

	set("g1", base+10)
	wantGroupResults(t, s, 5, 2, "acme", "g1", base+10)
	set("g0", base+9)
	wantGroupResults(t, s, 5, 2, "acme", "g1", base+10)
	set("g2", base+20)
	wantGroupResults(t, s, 5, 2, "acme", "g2", base+20)
	set("g1", base+20)
	wantGroupResults(t, s, 5, 2, "acme", "g2", base+20)
	set("g3", base+20)
	wantGroupResults(t, s, 5, 2, "acme", "g3", base+20)

	// PutGroup keeps the stored results, whatever its own fields say.
	g2 := g.Clone()
	g2.ApplyUpdate(store.GroupUpdate{Version: 2, Set: map[string][]byte{"plan": []byte(`"pro"`)}})
	g2.Results, g2.ResultsStamp = nil, 0
	applyWith(t, s, func(b *store.Batch) { b.PutGroup(g2) })
	got, err := s.GetGroup(context.Background(), 5, 2, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := g2.Clone()
	want.Results, want.ResultsStamp = []byte("g3"), base+20
	if enc(t, got) != enc(t, want) {
		t.Fatalf("GetGroup after PutGroup\n got %+v\nwant %+v", got, want)
	}
	// A put and a results write in one batch.
	applyWith(t, s, func(b *store.Batch) {
		b.SetGroupResults(5, 2, "acme", []byte("g4"), base+30)
		b.PutGroup(g2)
		b.SetGroupResults(5, 2, "acme", []byte("g5"), base+29)
	})
	wantGroupResults(t, s, 5, 2, "acme", "g4", base+30)

	// Results of a group never put: stored but invisible (GetGroup,
	// ScanGroups, Dump) until the group is put.
	applyWith(t, s, func(b *store.Batch) { b.SetGroupResults(5, 2, "later", []byte("l1"), base+10) })
	if _, err := s.GetGroup(context.Background(), 5, 2, "later"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetGroup of results only: %v, want ErrNotFound", err)
	}
	if gs := scanAllGroups(t, s, 5, 2, 10); len(gs) != 1 || gs[0].Key != "acme" {
		t.Fatalf("ScanGroups = %v, want only acme", groupKeys(gs))
	}
	if n, err := Counts(context.Background(), s); err != nil || n["group"] != 1 {
		t.Fatalf("Counts = %v, %v; want 1 group", n, err)
	}
	applyWith(t, s, func(b *store.Batch) { b.SetGroupResults(5, 2, "later", []byte("l0"), base+9) })
	applyWith(t, s, func(b *store.Batch) { b.PutGroup(store.NewGroup(5, 2, "later")) })
	wantGroupResults(t, s, 5, 2, "later", "l1", base+10)
}

// testResultsRace applies racing results writes with random stamps from
// several goroutines: every row and group ends with the winner by
// store.ResultsWin of all writes, whatever the interleaving.
func testResultsRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := nowStamp() - 60_000_000
	var b store.Batch
	b.PutRow(row(6, "race", "p", 1, `{}`))
	b.PutGroup(store.NewGroup(6, 0, "race"))
	mustApply(t, s, &b)

	const writers, writes = 6, 15
	type write struct {
		results []byte
		stamp   int64
	}
	all := make([][]write, writers)
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		for range writes {
			// Few distinct stamps, so that ties happen.
			all[w] = append(all[w], write{fmt.Appendf(nil, "r%d", rng.IntN(50)), base + int64(rng.IntN(8))})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i, x := range all[w] {
				var b store.Batch
				if i%2 == 0 {
					b.SetResults(6, "race", x.results, x.stamp)
				} else {
					b.SetGroupResults(6, 0, "race", x.results, x.stamp)
				}
				if err := s.Apply(ctx, &b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rowWin, groupWin write
	for w := range writers {
		for i, x := range all[w] {
			win := &rowWin
			if i%2 == 1 {
				win = &groupWin
			}
			if store.ResultsWin(x.stamp, x.results, win.stamp, win.results) {
				*win = x
			}
		}
	}
	wantResults(t, s, 6, "race", string(rowWin.results), rowWin.stamp)
	wantGroupResults(t, s, 6, 0, "race", string(groupWin.results), groupWin.stamp)
}

func testExpiries(t *testing.T, s store.Store) {
	ctx := context.Background()
	due := func(until int64, limit int) []store.Expiry {
		t.Helper()
		es, err := s.DueExpiries(ctx, until, limit)
		if err != nil {
			t.Fatalf("DueExpiries(%d, %d): %v", until, limit, err)
		}
		return es
	}
	if es := due(1<<62, 0); len(es) != 0 {
		t.Fatalf("DueExpiries on an empty store = %v", es)
	}
	const t0 = 1_763_100_000_000 // Unix ms
	entries := []store.Expiry{
		{Team: 2, At: t0 + 5, Target: "r:b"},
		{Team: 1, At: t0 + 5, Target: "r:z"},
		{Team: 2, At: t0 + 5, Target: "r:a"},
		{Team: 1, At: t0, Target: "g:0:acme"},
		{Team: 3, At: t0 + 10, Target: "r:a"},
		{Team: -4, At: t0 + 10, Target: "r:a"},
		{Team: 1, At: t0 + 1000, Target: "r:a"},
	}
	var b store.Batch
	for _, e := range entries {
		b.PutExpiry(e)
	}
	b.PutExpiry(entries[0]) // the same entry twice is one
	mustApply(t, s, &b)
	b.Reset()
	b.PutExpiry(entries[1]) // and again in another batch
	mustApply(t, s, &b)

	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, store.CompareExpiry)
	if sorted[0] != entries[3] || sorted[1] != entries[1] || sorted[4] != entries[5] {
		t.Fatalf("CompareExpiry order %v", sorted)
	}
	for _, c := range []struct {
		until int64
		limit int
		want  []store.Expiry
	}{
		{t0 - 1, 10, nil},
		{t0, 10, sorted[:1]},
		{t0 + 5, 10, sorted[:4]},
		{t0 + 9, 0, sorted[:4]},
		{t0 + 10, -1, sorted[:6]},
		{t0 + 10, 5, sorted[:5]},
		{t0 + 10, 1, sorted[:1]},
		{1 << 62, 100, sorted},
		{1 << 62, 3, sorted[:3]},
	} {
		if got := due(c.until, c.limit); !slices.Equal(got, c.want) {
			t.Fatalf("DueExpiries(%d, %d)\n got %v\nwant %v", c.until-t0, c.limit, got, c.want)
		}
	}

	// Deletes: idempotent, exact (another team's or time's entry stays).
	b.Reset()
	b.DeleteExpiry(entries[3])
	b.DeleteExpiry(store.Expiry{Team: 2, At: t0 + 5, Target: "r:zz"}) // none such
	b.DeleteExpiry(store.Expiry{Team: 3, At: t0 + 11, Target: "r:a"}) // other time
	mustApply(t, s, &b)
	b.Reset()
	b.DeleteExpiry(entries[3])
	b.DeleteExpiry(entries[2])
	b.PutExpiry(entries[2]) // the later write in a batch wins
	b.PutExpiry(entries[6])
	b.DeleteExpiry(entries[6])
	mustApply(t, s, &b)
	if got, want := due(1<<62, 0), sorted[1:6]; !slices.Equal(got, want) {
		t.Fatalf("DueExpiries after deletes\n got %v\nwant %v", got, want)
	}
	// Expiry entries are scheduling data: Dump does not visit them.
	if n, err := Counts(ctx, s); err != nil || len(n) != 0 {
		t.Fatalf("Counts with only expiry entries = %v, %v", n, err)
	}
	if d, err := Digest(ctx, s); err != nil || d != emptyDigest(t) {
		t.Fatalf("Digest with only expiry entries differs from the empty one (%v)", err)
	}
}

// emptyDigest is the Digest of a store without entities.
func emptyDigest(t *testing.T) [32]byte {
	t.Helper()
	d, err := Digest(context.Background(), emptyStore{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// emptyStore dumps nothing.
type emptyStore struct{ store.Store }

func (emptyStore) Dump(context.Context, func(store.Entity) error) error { return nil }

func scanAllGroups(t *testing.T, s store.Store, team int64, typeIndex, limit int) []*store.Group {
	t.Helper()
	return scanPages(t, limit, func(cursor string) ([]*store.Group, string, error) {
		page, err := s.ScanGroups(context.Background(), team, typeIndex, cursor, limit)
		return page.Groups, page.Next, err
	})
}

func groupKeys(gs []*store.Group) []string {
	keys := make([]string, len(gs))
	for i, g := range gs {
		keys[i] = g.Key
	}
	return keys
}

func testScanGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	if gs := scanAllGroups(t, s, 3, 1, 4); len(gs) != 0 {
		t.Fatalf("scan of an empty type returned %d groups", len(gs))
	}
	group := func(team int64, typeIndex int, key string, i int) *store.Group {
		g := store.NewGroup(team, typeIndex, key)
		g.ApplyUpdate(store.GroupUpdate{Version: int64(i), Set: map[string][]byte{"i": fmt.Appendf(nil, "%d", i)}})
		return g
	}
	var b store.Batch
	var want []string
	byKey := map[string]*store.Group{}
	for i := range 23 {
		key := fmt.Sprintf("g%02d", i)
		if i == 5 {
			key = "" // a valid key that sorts first
		}
		g := group(3, 1, key, i)
		b.PutGroup(g)
		want = append(want, key)
		byKey[key] = g.Clone()
		if i%3 == 0 {
			b.SetGroupResults(3, 1, key, []byte(key), fixedStamp+int64(i))
			byKey[key].Results, byKey[key].ResultsStamp = []byte(key), fixedStamp+int64(i)
		}
	}
	slices.Sort(want)
	b.SetGroupResults(3, 1, "results-only", []byte("x"), fixedStamp) // never put
	b.PutGroup(group(3, 2, "g00", 0))                                // other types and teams stay out
	b.PutGroup(group(3, 0, "g99", 0))
	b.PutGroup(group(4, 1, "g00", 0))
	b.PutGroup(group(2, 1, "g00", 0))
	mustApply(t, s, &b)

	var ref []string
	for _, limit := range []int{4, 1, 2, 5, 22, 23, 24, 1000, 0} {
		got := scanAllGroups(t, s, 3, 1, limit)
		keys := groupKeys(got)
		sorted := slices.Clone(keys)
		slices.Sort(sorted)
		if !slices.Equal(sorted, want) {
			t.Fatalf("limit %d: scanned %q, want each of %q once", limit, keys, want)
		}
		if ref == nil {
			ref = keys
		} else if !slices.Equal(keys, ref) {
			t.Fatalf("limit %d order %q differs from limit 4 order %q", limit, keys, ref)
		}
		for _, g := range got {
			if enc(t, g) != enc(t, byKey[g.Key]) {
				t.Fatalf("scanned group %+v, want %+v", g, byKey[g.Key])
			}
		}
	}
	// A group put between pages is returned at most once, the others
	// exactly once.
	page, err := s.ScanGroups(ctx, 3, 1, "", 10)
	if err != nil || len(page.Groups) != 10 || page.Next == "" {
		t.Fatalf("ScanGroups limit 10: %d groups, next %q, %v", len(page.Groups), page.Next, err)
	}
	b.Reset()
	b.PutGroup(group(3, 1, "new", 1))
	mustApply(t, s, &b)
	seen := map[string]int{}
	for _, g := range page.Groups {
		seen[g.Key]++
	}
	for cursor := page.Next; cursor != ""; {
		p, err := s.ScanGroups(ctx, 3, 1, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Groups {
			seen[g.Key]++
		}
		cursor = p.Next
	}
	for _, k := range want {
		if seen[k] != 1 {
			t.Fatalf("group %q returned %d times across pages", k, seen[k])
		}
	}
	if seen["new"] > 1 {
		t.Fatalf("group put between pages returned %d times", seen["new"])
	}

	for _, idx := range []int{-1, store.MaxGroupTypeIndex + 1} {
		if _, err := s.ScanGroups(ctx, 3, idx, "", 10); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("ScanGroups type index %d: %v, want ErrInvalid", idx, err)
		}
	}
	if _, err := s.ScanGroups(ctx, 3, 1, "not a cursor!", 10); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ScanGroups with a malformed cursor: %v, want ErrInvalid", err)
	}
}

// testInvalidResultsAndExpiries checks the batches Validate refuses:
// results stamps <= 0, group results of a bad type index, empty expiry
// targets. Nothing of a refused batch is written.
func testInvalidResultsAndExpiries(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		fn   func(b *store.Batch)
	}{
		{"zero row stamp", func(b *store.Batch) { b.SetResults(3, "d", []byte("r"), 0) }},
		{"negative row stamp", func(b *store.Batch) { b.SetResults(3, "d", []byte("r"), -1) }},
		{"zero group stamp", func(b *store.Batch) { b.SetGroupResults(3, 0, "g", []byte("r"), 0) }},
		{"group type index", func(b *store.Batch) { b.SetGroupResults(3, -1, "g", []byte("r"), 1) }},
		{"empty expiry target", func(b *store.Batch) { b.PutExpiry(store.Expiry{Team: 3, At: 1}) }},
	} {
		var b store.Batch
		b.PutRow(row(3, "d", "p", 1, `{}`))
		b.PutExpiry(store.Expiry{Team: 3, At: 1, Target: "r:d"})
		c.fn(&b)
		if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: Apply = %v, want ErrInvalid", c.name, err)
		}
	}
	wantNoRow(t, s, 3, "d")
	if es, err := s.DueExpiries(ctx, 1<<62, 0); err != nil || len(es) != 0 {
		t.Fatalf("expiries after refused batches: %v, %v", es, err)
	}
}

func testGroupCounters(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := func(counters string) {
		t.Helper()
		got, err := s.GetGroup(ctx, 5, 1, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Counters) != counters {
			t.Fatalf("group counters %q, want %q", got.Counters, counters)
		}
	}
	g := store.NewGroup(5, 1, "acme")
	g.ApplyUpdate(store.GroupUpdate{Version: 1, Set: map[string][]byte{"plan": []byte(`"free"`)}})
	applyWith(t, s, func(b *store.Batch) { b.PutGroup(g) })
	want("")
	applyWith(t, s, func(b *store.Batch) { b.SetGroupCounters(5, 1, "acme", []byte("c1")) })
	want("c1")
	// PutGroup keeps the stored counters, whatever its own field says.
	g2 := g.Clone()
	g2.ApplyUpdate(store.GroupUpdate{Version: 2, Set: map[string][]byte{"plan": []byte(`"pro"`)}})
	g2.Counters = []byte("ignored")
	applyWith(t, s, func(b *store.Batch) { b.PutGroup(g2) })
	want("c1")
	got, err := s.GetGroup(ctx, 5, 1, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 {
		t.Fatalf("group version %d after put, want 2", got.Version)
	}
	// A put and a counters write in one batch; the last write wins.
	applyWith(t, s, func(b *store.Batch) {
		b.SetGroupCounters(5, 1, "acme", []byte("c2"))
		b.PutGroup(g2)
		b.SetGroupCounters(5, 1, "acme", []byte("c3"))
	})
	want("c3")
	// Results and counters live side by side.
	applyWith(t, s, func(b *store.Batch) { b.SetGroupResults(5, 1, "acme", []byte("r"), nowStamp()) })
	want("c3")
	applyWith(t, s, func(b *store.Batch) { b.SetGroupCounters(5, 1, "acme", nil) })
	want("")
	// Counters of a group never put are not visible.
	applyWith(t, s, func(b *store.Batch) { b.SetGroupCounters(5, 1, "never", []byte("x")) })
	if _, err := s.GetGroup(ctx, 5, 1, "never"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetGroup of counters only: %v, want ErrNotFound", err)
	}
}
