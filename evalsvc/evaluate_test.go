package evalsvc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/pebblestore"
)

// slowMembers is a catalog whose static cohort membership reads block
// until their context ends, as a remote query that never answers would.
type slowMembers struct {
	*fakeCatalog
	reads      atomic.Int64
	noDeadline atomic.Int64 // reads whose context had no deadline
}

func (c *slowMembers) IsCohortMember(ctx context.Context, _, _ int64, _ string) (bool, error) {
	c.reads.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		c.noDeadline.Add(1)
	}
	<-ctx.Done()
	return false, ctx.Err()
}

// TestCohortReadBoundedByStoreDeadline: a static cohort membership read
// shares the row read's deadline (StoreTimeout), whether the store's reads
// are local (the deadline made at the membership read) or not (the reads'
// context). A catalog that does not answer makes the flags that need the
// cohort fail, the others answer, and the response says
// errorsWhileComputingFlags; the request returns.
func TestCohortReadBoundedByStoreDeadline(t *testing.T) {
	for _, local := range []bool{true, false} {
		t.Run(map[bool]string{true: "local", false: "remote"}[local], func(t *testing.T) { testCohortReadBounded(t, local) })
	}
}

// remoteReader is a store read as if it were remote: it hides the
// wrapped store's LocalReads.
type remoteReader struct{ store.Reader }

func testCohortReadBounded(t *testing.T, local bool) {
	fc, st := newFixture(t)
	cat := &slowMembers{fakeCatalog: fc}
	reg := prometheus.NewRegistry()
	var rd store.Reader = st
	if !local {
		rd = remoteReader{st}
	}
	s := newService(t, Config{Store: rd, Catalog: cat, Registry: reg, StoreTimeout: time.Second})
	if s.localReads != local {
		t.Fatalf("localReads %v, want %v", s.localReads, local)
	}
	h := s.Handler()
	type answer struct {
		r   flagsResp
		rpc *evalv1.EvaluateResponse
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		_, body := post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`)
		a.r = decodeFlags(t, body)
		a.rpc, a.err = s.evaluateRPC(context.Background(), &evalv1.EvaluateRequest{Token: "phc_team1", DistinctId: proto.String("u1")})
		done <- a
	}()
	var a answer
	select {
	case a = <-done:
	case <-time.After(2 * time.Minute): // a hang guard, not a latency assertion
		t.Fatal("the requests did not return: the membership read is not bounded by the store deadline")
	}
	if !a.r.ErrorsWhile {
		t.Error("errorsWhileComputingFlags must be true")
	}
	if f := a.r.Flags["static-cohort"]; !f.Failed || f.Enabled {
		t.Errorf("static-cohort needs the unread membership: it must fail, got %+v", f)
	}
	if f := a.r.Flags["beta"]; !f.Enabled || f.Failed {
		t.Errorf("beta needs only the row, which was read: %+v", f)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if !a.rpc.GetErrorsWhileComputing() {
		t.Error("gRPC: errors_while_computing must be true")
	}
	for _, f := range a.rpc.GetFlags() {
		if f.GetKey() == "static-cohort" && (!f.GetFailed() || f.GetErrorCode() != flags.CodeCohortUnavailable) {
			t.Errorf("gRPC static-cohort: %+v, want failed with %s", f, flags.CodeCohortUnavailable)
		}
	}
	if n := cat.noDeadline.Load(); n != 0 {
		t.Errorf("%d membership reads without a deadline", n)
	}
	if n := cat.reads.Load(); n != 2 { // one per request: the cohort is read once
		t.Errorf("%d membership reads, want 2", n)
	}
	if got := testutil.ToFloat64(s.m.cohortErrors); got != 2 {
		t.Errorf("cohort errors counted %v, want 2", got)
	}
}

// TestCohortSourceReadsOnce: a request reads each cohort at most once, and
// reads nothing once its deadline has passed.
func TestCohortSourceReadsOnce(t *testing.T) {
	fc, st := newFixture(t)
	cat := &countingMembers{fakeCatalog: fc}
	s := newService(t, Config{Store: st, Catalog: cat})
	var c cohortSource
	c.reset(context.Background(), s, 1, "u1")
	for range 3 {
		if in, _, err := c.InCohort(9); !in || err != nil {
			t.Fatalf("u1 in cohort 9: %v %v", in, err)
		}
	}
	if in, _, err := c.InCohort(10); in || err != nil {
		t.Fatalf("u1 in cohort 10: %v %v", in, err)
	}
	if n := cat.reads.Load(); n != 2 {
		t.Errorf("%d catalog reads, want 2 (one per cohort)", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.reset(ctx, s, 1, "u1")
	if _, _, err := c.InCohort(9); !errors.Is(err, context.Canceled) {
		t.Errorf("past the deadline: %v, want context.Canceled", err)
	}
	if n := cat.reads.Load(); n != 2 {
		t.Errorf("a read past the deadline reached the catalog (%d reads)", n)
	}
	cat.gone = true
	c.reset(context.Background(), s, 1, "u1")
	if in, _, err := c.InCohort(9); in || !errors.Is(err, flags.ErrCohortNotFound) {
		t.Errorf("a deleted cohort: %v %v, want flags.ErrCohortNotFound", in, err)
	}
}

type countingMembers struct {
	*fakeCatalog
	reads atomic.Int64
	gone  bool
}

func (c *countingMembers) IsCohortMember(ctx context.Context, team, cohort int64, did string) (bool, error) {
	c.reads.Add(1)
	if c.gone {
		return false, catalog.ErrNotFound
	}
	return c.fakeCatalog.IsCohortMember(ctx, team, cohort, did)
}

// TestFlagAnswers: each answer is counted per flag and source in memory
// (FlagAnswers) and by source alone in Prometheus. Counts survive a
// reload; a deleted flag's and a deleted team's are dropped.
func TestFlagAnswers(t *testing.T) {
	cat, st := newFixture(t)
	reg := prometheus.NewRegistry()
	s := newService(t, Config{Store: st, Catalog: cat, Registry: reg})
	h := s.Handler()
	if got := s.FlagAnswers(1); got != nil {
		t.Errorf("before any request: %v, want nil", got)
	}
	for range 2 {
		post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`)
	}
	post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`, EvalHeader, "live")
	if err := s.Refresh(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	post(t, h, "/flags?v=2", `{"token":"phc_team1","distinct_id":"u1","flag_keys_to_evaluate":["beta"]}`)
	got := s.FlagAnswers(1)
	if len(got) != 6 {
		t.Fatalf("FlagAnswers: %v, want the 6 flags", got)
	}
	// beta is precomputable, the row has no stored results: absent, but
	// live when forced.
	if b := got["beta"]; b.Total() != 4 || b[results.Absent] != 3 || b[results.Forced] != 1 {
		t.Errorf("beta: %v, want 3 live_absent and 1 live_forced", b)
	}
	// static-cohort reads a cohort: never precomputed.
	if c := got["static-cohort"]; c.Total() != 3 || c[results.NotPrecomputable] != 3 {
		t.Errorf("static-cohort: %v, want 3 live_not_precomputable", c)
	}
	var total uint64
	for _, a := range got {
		total += a.Total()
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metric float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if n := lp.GetName(); n == "team" || n == "flag" || n == "distinct_id" {
					t.Errorf("%s has an unbounded label %s", mf.GetName(), n)
				}
			}
			if mf.GetName() == "vexil_evalsvc_flag_answers_total" {
				metric += m.GetCounter().GetValue()
			}
		}
	}
	if metric != float64(total) {
		t.Errorf("vexil_evalsvc_flag_answers_total = %v, FlagAnswers total %d", metric, total)
	}

	// A deleted flag's counts go; the others stay.
	cat.mu.Lock()
	snap := cat.snaps[1]
	defs := snap.Definitions
	defs.Flags = defs.Flags[:len(defs.Flags)-1] // client-only
	snap.Definitions = defs
	cat.snaps[1] = snap
	cat.mu.Unlock()
	if err := s.Refresh(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	got = s.FlagAnswers(1)
	if _, ok := got["client-only"]; ok || got["beta"].Total() != 4 {
		t.Errorf("after deleting client-only: %v", got)
	}
	// A deleted team's go.
	cat.mu.Lock()
	delete(cat.snaps, 1)
	cat.mu.Unlock()
	if err := s.Refresh(context.Background(), 1); !errors.Is(err, errTeamGone) {
		t.Fatalf("refresh of a deleted team: %v", err)
	}
	if got := s.FlagAnswers(1); got != nil {
		t.Errorf("after deleting the team: %v, want nil", got)
	}
}

// ctxReader records the context of each row read.
type ctxReader struct {
	store.Reader
	local bool
	mu    sync.Mutex
	seen  []readContext
}

type readContext struct {
	deadline time.Time
	hasDL    bool
	err      error
	marked   bool // the request's context value reached the read
}

type ctxMark struct{}

func (r *ctxReader) LocalReads() bool { return r.local }

func (r *ctxReader) GetRow(ctx context.Context, team int64, did string) (*store.Row, error) {
	dl, ok := ctx.Deadline()
	r.mu.Lock()
	r.seen = append(r.seen, readContext{deadline: dl, hasDL: ok, err: ctx.Err(), marked: ctx.Value(ctxMark{}) != nil})
	r.mu.Unlock()
	return r.Reader.GetRow(ctx, team, did)
}

// TestReadContext: a local store is read under the request's own context
// (its cancellation and values, no deadline: no timer per request); a
// remote one under a context with the StoreTimeout deadline derived from
// it. A request canceled by its client reaches the read canceled either
// way.
func TestReadContext(t *testing.T) {
	for _, local := range []bool{true, false} {
		t.Run(map[bool]string{true: "local", false: "remote"}[local], func(t *testing.T) {
			cat, st := newFixture(t)
			rd := &ctxReader{Reader: st, local: local}
			s := newService(t, Config{Store: rd, Catalog: cat, StoreTimeout: time.Hour})
			h := s.Handler()
			send := func(ctx context.Context) int {
				req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/flags?v=2", strings.NewReader(`{"token":"phc_team1","distinct_id":"u1"}`))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w.Code
			}
			ctx := context.WithValue(context.Background(), ctxMark{}, true)
			before := time.Now()
			if code := send(ctx); code != 200 {
				t.Fatalf("status %d", code)
			}
			canceled, cancel := context.WithCancel(ctx)
			cancel()
			send(canceled)
			if len(rd.seen) != 2 {
				t.Fatalf("%d row reads, want 2", len(rd.seen))
			}
			first, second := rd.seen[0], rd.seen[1]
			if !first.marked || !second.marked {
				t.Error("the read's context is not derived from the request's")
			}
			if first.err != nil {
				t.Errorf("a live request's read: %v", first.err)
			}
			if !errors.Is(second.err, context.Canceled) {
				t.Errorf("a canceled request's read: %v, want context.Canceled", second.err)
			}
			if local {
				if first.hasDL {
					t.Errorf("a local read has a deadline (%v): a timer per request", first.deadline)
				}
				return
			}
			if !first.hasDL || first.deadline.Before(before.Add(time.Hour)) || first.deadline.After(time.Now().Add(time.Hour)) {
				t.Errorf("a remote read's deadline %v (set %v), want StoreTimeout from the request", first.deadline, first.hasDL)
			}
		})
	}
}

// TestRowBufferAnswers: a store that reads rows into the request's
// buffer (pebblestore) answers as one that returns a row of its own
// (memstore), request after request through the same pooled buffers, with
// rows of different sizes and persons that do not exist in between.
func TestRowBufferAnswers(t *testing.T) {
	cat, mem := newFixture(t)
	pb, err := pebblestore.Open(pebblestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	var b store.Batch
	b.PutRow(&store.Row{Team: 1, DistinctID: "u1", PersonID: "p1", PersonVersion: 1, Properties: []byte(`{"plan":"pro","email":"a@corp.com"}`)})
	b.PutRow(&store.Row{Team: 1, DistinctID: "u2", PersonID: "p2", PersonVersion: 1, Properties: []byte(`{"plan":"free"}`)})
	big := `{"plan":"pro","notes":"` + strings.Repeat("n", 5000) + `"}`
	b.PutRow(&store.Row{Team: 1, DistinctID: "big", PersonID: "p3", PersonVersion: 1, Properties: []byte(big)})
	if err := pb.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	b.PutRow(&store.Row{Team: 1, DistinctID: "big", PersonID: "p3", PersonVersion: 1, Properties: []byte(big)})
	if err := mem.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	want := newService(t, Config{Store: mem, Catalog: cat})
	got := newService(t, Config{Store: pb, Catalog: cat})
	if want.rowBuffers != nil || got.rowBuffers == nil {
		t.Fatal("memstore must be read with GetRow, pebblestore into the request's buffer")
	}
	for _, did := range []string{"big", "u2", "nobody", "u1", "big", "u1", "u2"} {
		body := `{"token":"phc_team1","distinct_id":"` + did + `"}`
		_, wb := post(t, want.Handler(), "/flags?v=2", body)
		_, gb := post(t, got.Handler(), "/flags?v=2", body)
		w, g := decodeFlags(t, wb), decodeFlags(t, gb)
		if len(w.Flags) == 0 || !reflect.DeepEqual(w.Flags, g.Flags) || w.ErrorsWhile != g.ErrorsWhile {
			t.Errorf("%s: got %s\nwant %s", did, gb, wb)
		}
	}
}
