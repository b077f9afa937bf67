package scyllastore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/schema"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/store/scyllastore"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  scyllastore.Config
		ok   bool
	}{
		{"minimal", scyllastore.Config{Hosts: []string{"127.0.0.1:9042"}, Keyspace: "vexil"}, true},
		{"no hosts", scyllastore.Config{Keyspace: "vexil"}, false},
		{"empty host", scyllastore.Config{Hosts: []string{""}, Keyspace: "vexil"}, false},
		{"bad keyspace", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "Vexil-1"}, false},
		{"negative timeout", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", Timeout: -1}, false},
		{"negative concurrency", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", WriteConcurrency: -1}, false},
		{"hedging off", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeAttempts: -1}, true},
		{"hedging set", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeAttempts: 4, HedgePercentile: 0.99,
			HedgeMinDelay: time.Millisecond, HedgeMaxDelay: time.Minute, HedgeBudget: 1}, true},
		{"too many hedges", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeAttempts: 5}, false},
		{"percentile above 1", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgePercentile: 1.01}, false},
		{"negative percentile", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgePercentile: -0.5}, false},
		{"NaN percentile", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgePercentile: math.NaN()}, false},
		{"budget above 1", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeBudget: 2}, false},
		{"negative hedge delay", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeMinDelay: -1}, false},
		{"hedge delay above a minute", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeMaxDelay: time.Hour}, false},
		{"min above the default max", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeMinDelay: 200 * time.Millisecond}, false},
		{"min above max", scyllastore.Config{Hosts: []string{"h"}, Keyspace: "v", HedgeMinDelay: 20 * time.Millisecond, HedgeMaxDelay: 10 * time.Millisecond}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, scyllastore.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func row(team int64, did, pid string, pv int64, props string) *store.Row {
	return &store.Row{Team: team, DistinctID: did, PersonID: pid, PersonVersion: pv,
		Properties: []byte(props), Revision: store.Revision([]byte(props))}
}

func apply(t *testing.T, s store.Store, fill func(b *store.Batch)) {
	t.Helper()
	var b store.Batch
	fill(&b)
	if err := s.Apply(context.Background(), &b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// TestRowLifecycle checks the row semantics that depend on how the backend
// maps RowOps to CQL: reserved fields survive a person rewrite, a delete
// followed by a write in the next Apply (same microsecond or not) leaves the
// write, and reserved fields alone keep a row invisible.
func TestRowLifecycle(t *testing.T) {
	ctx := context.Background()
	s := scyllastoretest.New(t)

	st := time.Now().UnixMicro()
	apply(t, s, func(b *store.Batch) {
		b.PutRow(row(1, "d1", "p1", 3, `{"a":1.0}`))
		b.SetResults(1, "d1", []byte("res"), st)
		b.SetCounters(1, "d1", []byte("cnt"))
	})
	apply(t, s, func(b *store.Batch) { b.PutRow(row(1, "d1", "p1", 4, `{"a":2}`)) })
	got, err := s.GetRow(ctx, 1, "d1")
	if err != nil {
		t.Fatal(err)
	}
	want := row(1, "d1", "p1", 4, `{"a":2}`)
	want.Results, want.Counters, want.ResultsStamp = []byte("res"), []byte("cnt"), st
	if !equalRows(got, want) {
		t.Fatalf("GetRow after rewrite = %+v, want %+v", got, want)
	}

	for i := range 20 { // tight loop: several Applies may share a microsecond
		apply(t, s, func(b *store.Batch) { b.DeleteRow(1, "d1") })
		apply(t, s, func(b *store.Batch) { b.PutRow(row(1, "d1", "p2", int64(i), `{}`)) })
		got, err := s.GetRow(ctx, 1, "d1")
		if err != nil {
			t.Fatalf("round %d: GetRow after delete+put: %v", i, err)
		}
		if got.PersonID != "p2" || got.PersonVersion != int64(i) || got.Results != nil || got.Counters != nil {
			t.Fatalf("round %d: GetRow = %+v, want p2 v%d without reserved fields", i, got, i)
		}
	}

	// Delete and rewrite within one batch.
	apply(t, s, func(b *store.Batch) {
		b.SetResults(1, "d1", []byte("old"), time.Now().UnixMicro())
	})
	apply(t, s, func(b *store.Batch) {
		b.DeleteRow(1, "d1")
		b.PutRow(row(1, "d1", "p3", 9, `{"x":"y"}`))
		b.SetCounters(1, "d1", []byte("c2"))
	})
	got, err = s.GetRow(ctx, 1, "d1")
	if err != nil {
		t.Fatal(err)
	}
	want = row(1, "d1", "p3", 9, `{"x":"y"}`)
	want.Counters = []byte("c2")
	if !equalRows(got, want) {
		t.Fatalf("GetRow after in-batch delete+put = %+v, want %+v", got, want)
	}

	// Reserved fields only: invisible to GetRow, ScanRows and Dump.
	apply(t, s, func(b *store.Batch) { b.SetResults(1, "hidden", []byte("r"), time.Now().UnixMicro()) })
	if _, err := s.GetRow(ctx, 1, "hidden"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRow(hidden) = %v, want ErrNotFound", err)
	}
	page, err := s.ScanRows(ctx, 1, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Rows) != 1 || page.Rows[0].DistinctID != "d1" || page.Next != "" {
		t.Fatalf("ScanRows = %d rows, next %q; want only d1", len(page.Rows), page.Next)
	}
	// A put makes it visible with the stored results.
	apply(t, s, func(b *store.Batch) { b.PutRow(row(1, "hidden", "p4", 1, `{}`)) })
	got, err = s.GetRow(ctx, 1, "hidden")
	if err != nil || !bytes.Equal(got.Results, []byte("r")) {
		t.Fatalf("GetRow(hidden) after put = %+v, %v; want results r", got, err)
	}
}

func equalRows(a, b *store.Row) bool {
	x, _ := a.MarshalBinary()
	y, _ := b.MarshalBinary()
	return bytes.Equal(x, y)
}

// TestApplyRejectsInvalidUTF8 checks that an identifier CQL text cannot hold
// fails the whole Apply with ErrInvalid before anything is written.
func TestApplyRejectsInvalidUTF8(t *testing.T) {
	ctx := context.Background()
	s := scyllastoretest.New(t)
	var b store.Batch
	b.PutRow(row(1, "ok", "p", 1, `{}`))
	b.PutMapping(store.Mapping{Team: 1, DistinctID: "bad\xff", PersonID: "p", Version: 1})
	if err := s.Apply(ctx, &b); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Apply = %v, want ErrInvalid", err)
	}
	if _, err := s.GetRow(ctx, 1, "ok"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRow(ok) = %v, want ErrNotFound (nothing written)", err)
	}
}

// TestScanPaging walks a team of 300 rows (some deleted, some only with
// reserved fields) with several page sizes: every visible row exactly once,
// in the same order each time, Next "" exactly at the end, other teams
// untouched.
func TestScanPaging(t *testing.T) {
	ctx := context.Background()
	s := scyllastoretest.New(t)
	var b store.Batch
	want := map[string]bool{}
	for i := range 300 {
		did := fmt.Sprintf("d%03d", i)
		b.PutRow(row(7, did, "p", 1, `{}`))
		want[did] = true
		b.PutRow(row(8, did, "p", 1, `{}`)) // another team
	}
	b.PutRow(row(7, "", "p", 1, `{}`)) // the empty distinct id is a key too
	want[""] = true
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	for i := 0; i < 300; i += 7 {
		did := fmt.Sprintf("d%03d", i)
		b.DeleteRow(7, did)
		delete(want, did)
	}
	b.SetResults(7, "reserved-only", []byte("x"), time.Now().UnixMicro())
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}

	var firstOrder []string
	for _, limit := range []int{1, 7, 50, len(want), len(want) + 1, 0} {
		var order []string
		cursor, pages := "", 0
		for {
			page, err := s.ScanRows(ctx, 7, cursor, limit)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			pages++
			for _, r := range page.Rows {
				if r.Team != 7 {
					t.Fatalf("limit %d: row of team %d", limit, r.Team)
				}
				order = append(order, r.DistinctID)
			}
			if l := limit; l > 0 && len(page.Rows) > l {
				t.Fatalf("limit %d: page of %d rows", limit, len(page.Rows))
			}
			if page.Next == "" {
				break
			}
			if len(page.Rows) == 0 {
				t.Fatalf("limit %d: empty page with a next cursor", limit)
			}
			cursor = page.Next
		}
		got := map[string]bool{}
		for _, id := range order {
			if got[id] {
				t.Fatalf("limit %d: %q returned twice", limit, id)
			}
			got[id] = true
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d rows, want %d", limit, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Fatalf("limit %d: %q missing", limit, id)
			}
		}
		if firstOrder == nil {
			firstOrder = order
		} else if !slices.Equal(order, firstOrder) {
			t.Fatalf("limit %d: order differs from limit 1", limit)
		}
		if limit == len(want) && pages != 1 {
			t.Fatalf("limit %d (all rows): %d pages, want 1", limit, pages)
		}
	}
	if _, err := s.ScanRows(ctx, 7, "not a cursor!", 10); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ScanRows(bad cursor) = %v, want ErrInvalid", err)
	}
}

// TestSameAsMemstore applies the same random batches to memstore and to
// scyllastore and compares every read and the full dump.
func TestSameAsMemstore(t *testing.T) {
	ctx := context.Background()
	sc := scyllastoretest.New(t)
	mem := memstore.New()
	defer mem.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	persons := []string{"p1", "p2", "p3", "p4"}
	dids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for round := range 30 {
		var b store.Batch
		for range 1 + rng.IntN(12) {
			team := int64(1 + rng.IntN(2))
			pid := persons[rng.IntN(len(persons))]
			did := dids[rng.IntN(len(dids))]
			v := int64(rng.IntN(100))
			switch rng.IntN(9) {
			case 0:
				p := store.NewPerson(team, pid)
				if _, err := p.ApplyUpdate(store.PersonUpdate{Version: v,
					Set:     map[string][]byte{"k": []byte(fmt.Sprint(v)), "n": []byte("5.0")},
					SetOnce: map[string][]byte{"first": []byte(`"x"`)}}); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(3) == 0 {
					p.ApplyDelete(v + 1)
				}
				b.PutPerson(p)
			case 1:
				b.PutMapping(store.Mapping{Team: team, DistinctID: did, PersonID: pid, Version: v})
			case 2:
				b.PutIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
			case 3:
				b.DeleteIndex(store.IndexEntry{Team: team, PersonID: pid, DistinctID: did})
			case 4:
				b.PutRow(row(team, did, pid, v, fmt.Sprintf(`{"v":%d}`, v)))
			case 5:
				b.DeleteRow(team, did)
			case 6:
				if rng.IntN(2) == 0 {
					b.SetResults(team, did, []byte(fmt.Sprint("r", v)), time.Now().UnixMicro())
				} else {
					b.SetCounters(team, did, []byte(fmt.Sprint("c", v)))
				}
			case 7:
				g := store.NewGroup(team, rng.IntN(5), did)
				if _, err := g.ApplyUpdate(store.GroupUpdate{Version: v, Set: map[string][]byte{"plan": []byte(`"pro"`)}}); err != nil {
					t.Fatal(err)
				}
				b.PutGroup(g)
			case 8:
				b.PutGroupType(store.GroupType{Team: team, Index: rng.IntN(5), Name: pid})
			}
		}
		if err := mem.Apply(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if err := sc.Apply(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if got, want := dump(t, sc), dump(t, mem); !slices.Equal(got, want) {
			t.Fatalf("round %d: dumps differ:\nscylla %q\nmem    %q", round, got, want)
		}
	}
	for _, team := range []int64{1, 2} {
		for _, did := range dids {
			a, errA := sc.GetRow(ctx, team, did)
			b, errB := mem.GetRow(ctx, team, did)
			if errors.Is(errA, store.ErrNotFound) != errors.Is(errB, store.ErrNotFound) || (errB == nil && !equalRows(a, b)) {
				t.Fatalf("GetRow(%d, %s): scylla %+v %v, mem %+v %v", team, did, a, errA, b, errB)
			}
		}
		for _, pid := range persons {
			a, _ := sc.DistinctIDs(ctx, team, pid)
			b, _ := mem.DistinctIDs(ctx, team, pid)
			if !slices.Equal(a, b) {
				t.Fatalf("DistinctIDs(%d, %s): scylla %v, mem %v", team, pid, a, b)
			}
		}
		a, _ := sc.GetGroupTypes(ctx, team)
		b, _ := mem.GetGroupTypes(ctx, team)
		if !slices.Equal(a, b) {
			t.Fatalf("GetGroupTypes(%d): scylla %v, mem %v", team, a, b)
		}
	}
}

// dump returns the canonical encodings of every entity, sorted.
func dump(t *testing.T, s store.Store) []string {
	t.Helper()
	var out []string
	err := s.Dump(context.Background(), func(e store.Entity) error {
		b, err := e.AppendBinary(nil)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestOpenTwiceAppliesSchemaOnce opens a second store on the same keyspace
// with ApplySchema: the schema is current, nothing is applied again, and
// both stores see the same data.
func TestOpenTwiceAppliesSchemaOnce(t *testing.T) {
	ctx := context.Background()
	cfg := scyllastoretest.Config(t)
	noSchema := cfg
	noSchema.ApplySchema = false
	if _, err := scyllastore.Open(ctx, noSchema); !errors.Is(err, schema.ErrNotApplied) {
		t.Fatalf("Open without schema = %v, want schema.ErrNotApplied", err)
	}
	s1 := scyllastoretest.Open(t, cfg)
	apply(t, s1, func(b *store.Batch) { b.PutRow(row(1, "d", "p", 1, `{}`)) })
	s2 := scyllastoretest.Open(t, noSchema) // checks the schema only
	if _, err := s2.GetRow(ctx, 1, "d"); err != nil {
		t.Fatalf("second store GetRow: %v", err)
	}
	applied, err := schema.Apply(ctx, s2.Session(), schema.Config{Keyspace: cfg.Keyspace})
	if err != nil || len(applied) != 0 {
		t.Fatalf("schema.Apply on a current keyspace = %v, %v; want nothing applied", applied, err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.GetRow(ctx, 1, "d"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetRow after Close = %v, want ErrClosed", err)
	}
	if err := s1.Apply(ctx, new(store.Batch)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
}

// TestMetrics checks the collectors on an injected registry: operations
// counted by label, a not-found read is not an error, applied writes add up.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	cfg := scyllastoretest.Config(t)
	cfg.Registerer = reg
	s := scyllastoretest.Open(t, cfg)
	apply(t, s, func(b *store.Batch) {
		b.PutRow(row(1, "d", "p", 1, `{}`))
		b.PutMapping(store.Mapping{Team: 1, DistinctID: "d", PersonID: "p", Version: 1})
	})
	if _, err := s.GetRow(ctx, 1, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRow(ctx, 1, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			switch {
			case m.GetHistogram() != nil:
				got[name] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"vexil_scyllastore_applied_writes_total":       2,
		"vexil_scyllastore_op_seconds{apply}":          1,
		"vexil_scyllastore_op_seconds{get_row}":        2,
		"vexil_scyllastore_op_errors_total{get_row}":   0,
		"vexil_scyllastore_op_errors_total{apply}":     0,
		"vexil_scyllastore_op_errors_total{scan_rows}": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if t.Failed() {
		t.Logf("gathered: %v", got)
	}
	// A second store on the same registry is refused, not silently unmeasured.
	if _, err := scyllastore.Open(ctx, cfg); !errors.Is(err, scyllastore.ErrInvalidConfig) {
		t.Fatalf("second Open on the same registry = %v, want ErrInvalidConfig", err)
	}
}

// TestResultsTimestamps checks how versioned results map to CQL: the stamp
// is the cell's write timestamp (WRITETIME), empty results keep theirs, a
// row delete shadows results stamped before it, and a delete and a results
// write in one batch keep the new results.
func TestResultsTimestamps(t *testing.T) {
	ctx := context.Background()
	cfg := scyllastoretest.Config(t)
	s := scyllastoretest.Open(t, cfg)
	writetime := func(did string) (stamp *int64) {
		t.Helper()
		q := fmt.Sprintf("SELECT WRITETIME(results) FROM %s.rows WHERE team = ? AND distinct_id = ?", cfg.Keyspace)
		if err := s.Session().Query(q, int64(1), did).WithContext(ctx).Scan(&stamp); err != nil {
			t.Fatal(err)
		}
		return stamp
	}
	st := time.Now().UnixMicro() - 1_000_000
	apply(t, s, func(b *store.Batch) {
		b.PutRow(row(1, "d", "p", 1, `{}`))
		b.SetResults(1, "d", nil, st)
	})
	if w := writetime("d"); w == nil || *w != st {
		t.Fatalf("WRITETIME(results) of empty results = %v, want %d", w, st)
	}
	apply(t, s, func(b *store.Batch) { b.SetResults(1, "d", []byte("r"), st+1) })
	if w := writetime("d"); w == nil || *w != st+1 {
		t.Fatalf("WRITETIME(results) = %v, want %d", w, st+1)
	}

	// Delete, put and results in one batch: the new results stay, with
	// their stamp, though older than the delete.
	apply(t, s, func(b *store.Batch) {
		b.DeleteRow(1, "d")
		b.PutRow(row(1, "d", "p2", 2, `{}`))
		b.SetResults(1, "d", []byte("new"), st+2)
	})
	got, err := s.GetRow(ctx, 1, "d")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Results) != "new" || got.ResultsStamp != st+2 || got.PersonID != "p2" {
		t.Fatalf("GetRow after delete+put+results = %+v", got)
	}

	// A delete shadows results stamped before it, even when written after
	// it.
	apply(t, s, func(b *store.Batch) { b.DeleteRow(1, "d") })
	apply(t, s, func(b *store.Batch) { b.SetResults(1, "d", []byte("late"), st+3) })
	apply(t, s, func(b *store.Batch) { b.PutRow(row(1, "d", "p3", 3, `{}`)) })
	got, err = s.GetRow(ctx, 1, "d")
	if err != nil {
		t.Fatal(err)
	}
	if got.Results != nil || got.ResultsStamp != 0 {
		t.Fatalf("results stamped before the delete survived: %+v", got)
	}
}
