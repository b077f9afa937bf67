package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
)

// RunInbox runs the inbox contract (store.InboxStore) against the stores
// newStore returns, which must implement it. Each subtest takes a fresh
// store.
func RunInbox(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.InboxStore)
	}{
		{"SignalsRoundTrip", testSignalsRoundTrip},
		{"SignalsPage", testSignalsPage},
		{"SignalsUpsert", testSignalsUpsert},
		{"InvalidSignals", testInvalidSignals},
		{"AcksForwardOnly", testAcksForwardOnly},
		{"AcksConcurrent", testAcksConcurrent},
		{"Findings", testFindings},
		{"SignalsRetention", testSignalsRetention},
		{"InboxNotInDump", testInboxNotInDump},
		{"InboxClosed", testInboxClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			in, ok := s.(store.InboxStore)
			if !ok {
				t.Fatalf("%T does not implement store.InboxStore", s)
			}
			tc.fn(t, in)
		})
	}
}

func signal(team int64, seq uint64, data string) store.Signal {
	return store.Signal{Team: team, Seq: seq, Subject: fmt.Sprintf("vexil.signals.%d.finding", team),
		At: int64(seq) * 1e9, Data: []byte(data), ExpiresAt: time.Now().Add(time.Hour).Unix()}
}

func mustPutSignals(t *testing.T, s store.InboxStore, sigs ...store.Signal) {
	t.Helper()
	if err := s.PutSignals(context.Background(), sigs); err != nil {
		t.Fatalf("PutSignals: %v", err)
	}
}

func seqsOf(sigs []store.Signal) []uint64 {
	out := make([]uint64, len(sigs))
	for i, s := range sigs {
		out[i] = s.Seq
	}
	return out
}

func mustList(t *testing.T, s store.InboxStore, team int64, after uint64, limit int) ([]store.Signal, bool) {
	t.Helper()
	out, more, err := s.ListSignals(context.Background(), team, after, limit)
	if err != nil {
		t.Fatalf("ListSignals(%d, %d, %d): %v", team, after, limit, err)
	}
	return out, more
}

func mustCount(t *testing.T, s store.InboxStore, team int64, after uint64) uint64 {
	t.Helper()
	n, err := s.CountSignals(context.Background(), team, after)
	if err != nil {
		t.Fatalf("CountSignals(%d, %d): %v", team, after, err)
	}
	return n
}

func testSignalsRoundTrip(t *testing.T, s store.InboxStore) {
	// Written out of order and across teams (a team id below zero's
	// neighbour, and one that sorts between), read back in cursor order.
	big := signal(1, 1<<40, `{"k":"big"}`)
	mustPutSignals(t, s, signal(1, 7, `{"k":7}`), signal(2, 5, `{"k":"other"}`), signal(1, 3, `{"k":3}`), big,
		store.Signal{Team: 1, Seq: 9, Subject: "vexil.signals.1.rollout", At: -5, Data: nil})
	got, more := mustList(t, s, 1, 0, 0)
	if fmt.Sprint(seqsOf(got)) != "[3 7 9 1099511627776]" || more {
		t.Fatalf("team 1: %v more %v", seqsOf(got), more)
	}
	if g := got[0]; g.Team != 1 || g.Subject != "vexil.signals.1.finding" || g.At != 3e9 || string(g.Data) != `{"k":3}` || g.ExpiresAt != signal(1, 3, "").ExpiresAt && g.ExpiresAt != signal(1, 3, "").ExpiresAt-1 {
		t.Fatalf("round trip: %+v", g)
	}
	if g := got[2]; g.Subject != "vexil.signals.1.rollout" || g.At != -5 || len(g.Data) != 0 || g.ExpiresAt != 0 {
		t.Fatalf("round trip without data or expiry: %+v", g)
	}
	if got, _ := mustList(t, s, 2, 0, 0); fmt.Sprint(seqsOf(got)) != "[5]" || string(got[0].Data) != `{"k":"other"}` {
		t.Fatalf("team 2: %+v", got)
	}
	if got, _ := mustList(t, s, 3, 0, 0); len(got) != 0 {
		t.Fatalf("team 3 has %v", got)
	}
	if n := mustCount(t, s, 1, 0); n != 4 {
		t.Fatalf("count team 1: %d", n)
	}
	if n := mustCount(t, s, 1, 7); n != 2 {
		t.Fatalf("count team 1 after 7: %d", n)
	}
	if n := mustCount(t, s, 1, 1<<40); n != 0 {
		t.Fatalf("count team 1 after the last: %d", n)
	}
	if n := mustCount(t, s, 4, 0); n != 0 {
		t.Fatalf("count team 4: %d", n)
	}
	// Returned data does not alias the store's.
	got[0].Data[0] = 'X'
	if again, _ := mustList(t, s, 1, 0, 1); !bytes.Equal(again[0].Data, []byte(`{"k":3}`)) {
		t.Fatalf("a caller's change reached the store: %s", again[0].Data)
	}
}

func testSignalsPage(t *testing.T, s store.InboxStore) {
	for seq := uint64(1); seq <= 25; seq++ {
		mustPutSignals(t, s, signal(5, seq*2, "{}"))
	}
	var all []uint64
	cursor := uint64(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, more := mustList(t, s, 5, cursor, 10)
		if len(page) > 10 {
			t.Fatalf("page of %d", len(page))
		}
		all = append(all, seqsOf(page)...)
		if !more {
			break
		}
		cursor = page[len(page)-1].Seq
	}
	if len(all) != 25 || all[0] != 2 || all[24] != 50 {
		t.Fatalf("pages: %v", all)
	}
	// A cursor between two positions starts at the next.
	if page, more := mustList(t, s, 5, 47, 10); fmt.Sprint(seqsOf(page)) != "[48 50]" || more {
		t.Fatalf("after 47: %v %v", seqsOf(page), more)
	}
	// Exactly limit left: no more.
	if page, more := mustList(t, s, 5, 40, 5); len(page) != 5 || more {
		t.Fatalf("after 40 limit 5: %v %v", seqsOf(page), more)
	}
}

func testSignalsUpsert(t *testing.T, s store.InboxStore) {
	// The same message copied by two nodes, or redelivered: one signal.
	for range 3 {
		mustPutSignals(t, s, signal(1, 4, `{"v":1}`))
	}
	mustPutSignals(t, s, signal(1, 4, `{"v":2}`), signal(1, 4, `{"v":2}`))
	got, _ := mustList(t, s, 1, 0, 0)
	if len(got) != 1 || string(got[0].Data) != `{"v":2}` || mustCount(t, s, 1, 0) != 1 {
		t.Fatalf("upserts: %+v", got)
	}
}

func testInvalidSignals(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	for name, bad := range map[string]store.Signal{
		"team 0":       {Team: 0, Seq: 1, Subject: "s"},
		"seq 0":        {Team: 1, Seq: 0, Subject: "s"},
		"seq past int": {Team: 1, Seq: 1 << 63, Subject: "s"},
		"no subject":   {Team: 1, Seq: 1},
		"long subject": {Team: 1, Seq: 1, Subject: strings.Repeat("s", store.MaxSignalSubjectBytes+1)},
		"large data":   {Team: 1, Seq: 1, Subject: "s", Data: make([]byte, store.MaxSignalDataBytes+1)},
		"expiry < 0":   {Team: 1, Seq: 1, Subject: "s", ExpiresAt: -1},
	} {
		if err := s.PutSignals(ctx, []store.Signal{signal(1, 2, "{}"), bad}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if n := mustCount(t, s, 1, 0); n != 0 {
		t.Fatalf("an invalid put wrote %d signals", n)
	}
	for _, seq := range []uint64{0, 1 << 63} {
		if err := s.AckSignals(ctx, 1, seq, 0); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("acknowledging %d: %v, want ErrInvalid", seq, err)
		}
	}
	if n := mustAcked(t, s, 1); n != 0 {
		t.Fatalf("an invalid acknowledgement moved the position to %d", n)
	}
	for _, id := range []string{"", "a.b", "a b", strings.Repeat("x", store.MaxFindingIDBytes+1)} {
		if err := s.PutFinding(ctx, 1, id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("finding id %q: %v, want ErrInvalid", id, err)
		}
	}
}

func mustAcked(t *testing.T, s store.InboxStore, team int64) uint64 {
	t.Helper()
	n, err := s.AckedSignals(context.Background(), team)
	if err != nil {
		t.Fatalf("AckedSignals(%d): %v", team, err)
	}
	return n
}

func testAcksForwardOnly(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	if n := mustAcked(t, s, 1); n != 0 {
		t.Fatalf("acked before any: %d", n)
	}
	for _, step := range []struct{ ack, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {9, 9}, {1 << 40, 1 << 40}, {8, 1 << 40}} {
		if err := s.AckSignals(ctx, 1, step.ack, exp); err != nil {
			t.Fatalf("AckSignals(%d): %v", step.ack, err)
		}
		if n := mustAcked(t, s, 1); n != step.want {
			t.Fatalf("after acknowledging %d: %d, want %d", step.ack, n, step.want)
		}
	}
	if n := mustAcked(t, s, 2); n != 0 {
		t.Fatalf("another team's position: %d", n)
	}
}

func testAcksConcurrent(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			errs <- s.AckSignals(ctx, 3, uint64(100+i*7%40), exp)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := mustAcked(t, s, 3); n != 139 {
		t.Fatalf("after concurrent acknowledgements: %d, want 139", n)
	}
}

func testFindings(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	has := func(team int64, id string) bool {
		t.Helper()
		ok, err := s.HasFinding(ctx, team, id)
		if err != nil {
			t.Fatalf("HasFinding: %v", err)
		}
		return ok
	}
	if has(1, "stale-old") {
		t.Fatal("a finding before any was added")
	}
	for range 2 {
		if err := s.PutFinding(ctx, 1, "stale-old"); err != nil {
			t.Fatalf("PutFinding: %v", err)
		}
	}
	if !has(1, "stale-old") || has(2, "stale-old") || has(1, "stale-ol") || has(1, "stale-old2") {
		t.Fatal("findings are per team and exact id")
	}
}

func testSignalsRetention(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	now := time.Now()
	old := signal(1, 1, `{"old":true}`)
	old.ExpiresAt = now.Add(-time.Second).Unix()
	keep := signal(1, 2, "{}")
	keep.ExpiresAt = 0
	mustPutSignals(t, s, old, keep, signal(1, 3, "{}"))
	if _, err := s.SweepSignals(ctx, now); err != nil {
		t.Fatalf("SweepSignals: %v", err)
	}
	if got, _ := mustList(t, s, 1, 0, 0); fmt.Sprint(seqsOf(got)) != "[2 3]" {
		t.Fatalf("after the sweep: %v", seqsOf(got))
	}
	if n := mustCount(t, s, 1, 0); n != 2 {
		t.Fatalf("count after the sweep: %d", n)
	}
}

func testInboxNotInDump(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	mustPutSignals(t, s, signal(1, 1, "{}"))
	if err := s.AckSignals(ctx, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFinding(ctx, 1, "f"); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.(store.Store).Dump(ctx, func(store.Entity) error { n++; return nil }); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if n != 0 {
		t.Fatalf("Dump visited %d inbox rows", n)
	}
}

func testInboxClosed(t *testing.T, s store.InboxStore) {
	ctx := context.Background()
	if err := s.(store.Store).Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"PutSignals": s.PutSignals(ctx, []store.Signal{signal(1, 1, "{}")}),
		"ListSignals": func() error {
			_, _, err := s.ListSignals(ctx, 1, 0, 0)
			return err
		}(),
		"CountSignals": func() error { _, err := s.CountSignals(ctx, 1, 0); return err }(),
		"AckSignals":   s.AckSignals(ctx, 1, 1, 0),
		"AckedSignals": func() error { _, err := s.AckedSignals(ctx, 1); return err }(),
		"PutFinding":   s.PutFinding(ctx, 1, "f"),
		"HasFinding":   func() error { _, err := s.HasFinding(ctx, 1, "f"); return err }(),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
