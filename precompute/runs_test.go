package precompute_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
)

// gatedStore blocks every write, and every row scan after the first
// scans, while gate is closed: a worker frozen in the middle of a run.
type gatedStore struct {
	store.Store
	gate  chan struct{}
	scans int
	n     atomic.Int64
}

func (g *gatedStore) wait(ctx context.Context) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedStore) Apply(ctx context.Context, b *store.Batch) error {
	if err := g.wait(ctx); err != nil {
		return err
	}
	return g.Store.Apply(ctx, b)
}

func (g *gatedStore) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	if g.n.Add(1) > int64(g.scans) {
		if err := g.wait(ctx); err != nil {
			return store.RowPage{}, err
		}
	}
	return g.Store.ScanRows(ctx, team, cursor, limit)
}

// holdingStore holds the next scan from the start of the rows, once hold
// is set, until release is closed: a scanner that stalls at its first page.
type holdingStore struct {
	store.Store
	hold    atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (h *holdingStore) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	if cursor == "" && h.hold.CompareAndSwap(true, false) {
		close(h.held)
		select {
		case <-h.release:
		case <-ctx.Done():
			return store.RowPage{}, ctx.Err()
		}
	}
	return h.Store.ScanRows(ctx, team, cursor, limit)
}

// putPlanRows writes n persons d-0..d-(n-1), plan "pro" and "free" in turn.
func putPlanRows(t *testing.T, e *env, n int) {
	t.Helper()
	var b store.Batch
	for i := range n {
		props := fmt.Appendf(nil, `{"plan":%q}`, []string{"pro", "free"}[i%2])
		b.PutRow(&store.Row{Team: e.team, DistinctID: fmt.Sprintf("d-%d", i), PersonID: fmt.Sprintf("p-%d", i), PersonVersion: 1,
			Revision: store.Revision(props), Properties: props})
	}
	if err := e.st.Apply(e.ctx, &b); err != nil {
		t.Fatal(err)
	}
}

func (e *env) status(t *testing.T) *precompute.RunState {
	t.Helper()
	st, err := precompute.Status(e.ctx, e.js, "", e.team)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitState waits until fn holds for the team's run state.
func (e *env) waitState(t *testing.T, what string, fn func(*precompute.RunState) bool) *precompute.RunState {
	t.Helper()
	var st *precompute.RunState
	polltest.Eventually(t, 2*time.Minute, func() error {
		if st = e.status(t); st == nil || !fn(st) {
			return fmt.Errorf("run state not %s: %+v", what, st)
		}
		return nil
	})
	return st
}

// TestRunCheckpointAndSupersede: a run whose workers die mid-way resumes
// from its checkpoint (same run, rows counted once), and a newer change
// supersedes an unfinished run: the newer run covers the older one's flags
// too, and once it finishes every row answers from stored results.
func TestRunCheckpointAndSupersede(t *testing.T) {
	e := newEnv(t, backends[0])
	const rows = 300
	putPlanRows(t, e, rows)
	e.createFlag(parseFlag(t, `{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}}`))
	e.createFlag(parseFlag(t, `{"key":"b","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`))
	e.notify("flag")
	w := e.startWorker(precompute.Config{})
	first := e.waitState(t, "finished", (*precompute.RunState).Finished)
	if first.RowsDone != rows || first.Flags != nil {
		t.Fatalf("first materialisation: %+v", first)
	}

	// Freeze the worker after three page reads, change flag a, and kill
	// the worker in the middle of its scan.
	w.stop(t)
	gate := make(chan struct{})
	frozen := e.startWorker(precompute.Config{Store: &gatedStore{Store: e.st, gate: gate, scans: 3}, PageSize: 7})
	e.updateFlag("a", func(f *flags.Flag) { f.Filters.Groups[0].Properties[0].Value = mustJSON("free") })
	e.notify("flag")
	mid := e.waitState(t, "scanning", func(s *precompute.RunState) bool { return s.ID != first.ID && s.Pages >= 1 })
	frozen.stop(t)
	killed := e.status(t)
	if killed.ID != mid.ID || killed.ScanDone || killed.Finished() || !slices.Equal(killed.Flags, []string{"a"}) {
		t.Fatalf("after the kill: %+v", killed)
	}
	if b, err := precompute.BacklogOf(e.ctx, e.js, ""); err != nil || b.Runs != 1 || b.Pages == 0 || b.Idle() {
		t.Errorf("backlog of the killed run = %+v (%v), want 1 run and its published pages", b, err)
	}

	// A restarted worker resumes the same run from its checkpoint.
	close(gate)
	w = e.startWorker(precompute.Config{PageSize: 7})
	resumed := e.waitState(t, "finished", func(s *precompute.RunState) bool { return s.ID == mid.ID && s.Finished() })
	if resumed.RowsTotal != rows || resumed.RowsDone != rows {
		t.Errorf("resumed run counted %d rows published and %d done, want %d each: %+v", resumed.RowsTotal, resumed.RowsDone, rows, resumed)
	}
	if e.hitRatio(t, rows) != 1 {
		t.Errorf("hit ratio after the resumed run is not 1")
	}

	// Supersede: freeze again, change b, then a while b's run is unfinished.
	w.stop(t)
	reg := prometheus.NewRegistry()
	gate2 := make(chan struct{})
	frozen = e.startWorker(precompute.Config{Store: &gatedStore{Store: e.st, gate: gate2, scans: 3}, PageSize: 7, Registry: reg})
	e.updateFlag("b", func(f *flags.Flag) { p := 20.0; f.Filters.Groups[0].RolloutPercentage = &p })
	e.notify("flag")
	older := e.waitState(t, "running for b", func(s *precompute.RunState) bool { return s.ID != mid.ID && s.Pages >= 1 })
	e.updateFlag("a", func(f *flags.Flag) { f.Filters.Groups[0].Properties[0].Value = mustJSON("pro") })
	e.notify("flag")
	newer := e.waitState(t, "superseded", func(s *precompute.RunState) bool { return s.ID != older.ID })
	if !slices.Equal(newer.Flags, []string{"a", "b"}) {
		t.Errorf("the newer run recomputes %v, want a and b (b from the run it superseded)", newer.Flags)
	}
	close(gate2)
	done := e.waitState(t, "finished", func(s *precompute.RunState) bool { return s.ID == newer.ID && s.Finished() })
	if done.RowsDone != rows {
		t.Errorf("superseding run did %d rows, want %d", done.RowsDone, rows)
	}
	if got := counter(t, reg, "vexil_precompute_runs_superseded_total"); got != 1 {
		t.Errorf("superseded runs = %v, want 1", got)
	}
	e.waitQuiet()
	if r := e.hitRatio(t, rows); r != 1 {
		t.Errorf("hit ratio after the superseding run = %v, want 1", r)
	}
}

// proRowAndFlag writes row d-0 (plan pro) and flag a, on for plan pro.
func (e *env) proRowAndFlag(t *testing.T) {
	t.Helper()
	props := []byte(`{"plan":"pro"}`)
	var b store.Batch
	b.PutRow(&store.Row{Team: e.team, DistinctID: "d-0", PersonID: "p-0", PersonVersion: 1, Revision: store.Revision(props), Properties: props})
	if err := e.st.Apply(e.ctx, &b); err != nil {
		t.Fatal(err)
	}
	e.createFlag(parseFlag(t, `{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}}`))
}

// TestTriggersCoalesce: writes that name one row within the coalescing
// window cost one recompute; the repeats are counted per team.
func TestTriggersCoalesce(t *testing.T) {
	e := newEnv(t, backends[0])
	e.proRowAndFlag(t)
	// Queued before any worker runs, so one fetch takes them all: three
	// triggers for d-0 of the team, two for a row of a team that does not
	// exist.
	for range 3 {
		if err := e.pub.Publish(e.ctx, []store.DistinctKey{{Team: e.team, DistinctID: "d-0"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := e.pub.Publish(e.ctx, []store.DistinctKey{{Team: e.team + 1000, DistinctID: "x"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	e.startWorker(precompute.Config{Registry: reg, Coalesce: 200 * time.Millisecond, Roles: precompute.Roles{NoRuns: true}})
	polltest.Eventually(t, time.Minute, func() error {
		if counter(t, reg, "vexil_precompute_trigger_batch_seconds") == 0 {
			return errors.New("the triggers were not handled")
		}
		return nil
	})
	if got := counter(t, reg, "vexil_precompute_computed_total"); got != 1 {
		t.Errorf("computed %v rows, want 1", got)
	}
	if got := counter(t, reg, "vexil_precompute_coalesced_total"); got != 3 {
		t.Errorf("coalesced %v triggers, want 3 (2 for d-0, 1 for the other team's row)", got)
	}
}

// TestIdleWorkerLongPolls: an idle worker keeps one pull request waiting
// at the server per loop instead of asking again every Coalesce (the row
// loop) or 200 ms (the page and notice loops), which made ~60 requests a
// second of garbage on an idle node; and a trigger that arrives while they
// wait is answered.
func TestIdleWorkerLongPolls(t *testing.T) {
	e := newEnv(t, backends[0])
	names := precompute.NamesOf("")
	var pulls atomic.Int64
	for _, stream := range []string{names.Stream, names.ChangeStream} {
		sub, err := e.nc.Subscribe("$JS.API.CONSUMER.MSG.NEXT."+stream+".>", func(*nats.Msg) { pulls.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.proRowAndFlag(t)
	reg := prometheus.NewRegistry()
	w := e.startWorker(precompute.Config{Registry: reg, Coalesce: 20 * time.Millisecond, Concurrency: 4})
	e.waitQuiet() // the flag's run
	// Once the start-up work is done, a second passes without a request:
	// the row loop, two page loops and the notice loop each have theirs out.
	polltest.Eventually(t, time.Minute, func() error {
		before := pulls.Load()
		time.Sleep(time.Second)
		if n := pulls.Load() - before; n != 0 {
			return fmt.Errorf("%d pull requests in a second of idleness, want 0", n)
		}
		return nil
	})
	if n := pulls.Load(); n < 4 {
		t.Errorf("%d pull requests in all, want at least one per loop (4)", n)
	}
	computed := counter(t, reg, "vexil_precompute_computed_total")
	if err := e.pub.Publish(e.ctx, []store.DistinctKey{{Team: e.team, DistinctID: "d-0"}}, nil); err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		if got := counter(t, reg, "vexil_precompute_computed_total"); got != computed+1 {
			return fmt.Errorf("computed %v rows, want %v", got, computed+1)
		}
		return nil
	})
	w.stop(t) // returns although every loop is waiting on a request
}

// TestTriggerAfterNATSRestart: the long pull requests of an idle worker
// are lost when NATS restarts; the server's heartbeats stop, the worker
// asks again, and a trigger sent after the restart is answered.
func TestTriggerAfterNATSRestart(t *testing.T) {
	e := newEnv(t, backends[0])
	e.proRowAndFlag(t)
	reg := prometheus.NewRegistry()
	e.startWorker(precompute.Config{Registry: reg, Roles: precompute.Roles{NoRuns: true}})
	names := precompute.NamesOf("")
	polltest.Eventually(t, time.Minute, func() error { // the row loop's request is out
		cons, err := e.js.Consumer(e.ctx, names.Stream, "precompute-rows")
		if err != nil {
			return err
		}
		info, err := cons.Info(e.ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting == 0 {
			return errors.New("no pull request waiting")
		}
		return nil
	})
	computed := counter(t, reg, "vexil_precompute_computed_total")
	e.nats.Restart(t)
	polltest.Eventually(t, time.Minute, func() error {
		if err := e.pub.Publish(e.ctx, []store.DistinctKey{{Team: e.team, DistinctID: "d-0"}}, nil); err != nil {
			return err // the connection is still coming back
		}
		return nil
	})
	polltest.Eventually(t, time.Minute, func() error {
		got, err := gatherSum(reg, "vexil_precompute_computed_total")
		if err != nil {
			return err // the backlog's collector asks NATS, which may still be coming back
		}
		if got <= computed {
			return fmt.Errorf("computed %v rows since the restart, want 1", got-computed)
		}
		return nil
	})
}

// TestDuplicateNoticesAndPages: several notices for one change (a notice
// redelivered while its scan still runs, reconcile racing the change's own
// notice) start one run whose pages are published once each; a page
// computed twice (its message redelivered after the first computation)
// counts once in the run's progress.
func TestDuplicateNoticesAndPages(t *testing.T) {
	e := newEnv(t, backends[0])
	const rows, pageSize = 300, 7
	const pages = (rows + pageSize - 1) / pageSize
	putPlanRows(t, e, rows)
	e.createFlag(parseFlag(t, `{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}}`))

	// Every scanner stops at its first page read until the gate opens, so
	// the four notices' scanners all stand at the same checkpoint.
	reg := prometheus.NewRegistry()
	gate := make(chan struct{})
	gs := &gatedStore{Store: e.st, gate: gate}
	e.startWorker(precompute.Config{Store: gs, PageSize: pageSize, Registry: reg})
	// The first scanner comes from the worker's reconcile on start (the
	// team was never materialised); three notices bring three more.
	polltest.Eventually(t, time.Minute, func() error {
		if e.status(t) == nil {
			return errors.New("no run started")
		}
		return nil
	})
	for range 3 {
		e.notify("flag")
	}
	polltest.Eventually(t, time.Minute, func() error {
		if n := gs.n.Load(); n < 4 {
			return fmt.Errorf("%d scanners reached the first page, want 4", n)
		}
		return nil
	})
	close(gate)
	done := e.waitState(t, "finished", (*precompute.RunState).Finished)
	e.waitQuiet()
	if done.Pages != pages || done.PagesDone != pages || done.RowsTotal != rows || done.RowsDone != rows {
		t.Errorf("run counted %d/%d pages and %d/%d rows, want %d pages and %d rows", done.PagesDone, done.Pages, done.RowsDone, done.RowsTotal, pages, rows)
	}
	if got := counter(t, reg, "vexil_precompute_runs_started_total"); got != 1 {
		t.Errorf("runs started = %v, want 1", got)
	}
	if got := counter(t, reg, "vexil_precompute_computed_total"); got != rows {
		t.Errorf("computed %v rows, want %d (each page once)", got, rows)
	}

	// Page 0 delivered again (a different message id, as after the dedup
	// window): computed again, counted once.
	data, _ := json.Marshal(map[string]any{"run": done.ID, "seq": 0, "team": e.team, "subject": results.Persons, "limit": pageSize})
	if _, err := e.js.Publish(e.ctx, precompute.NamesOf("").PageSubjectPrefix+strconv.FormatInt(e.team, 10), data); err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		if got := counter(t, reg, "vexil_precompute_computed_total"); got < rows+pageSize {
			return fmt.Errorf("the repeated page was not computed: %v rows computed, want %d", got, rows+pageSize)
		}
		return nil
	})
	if again := e.status(t); again.PagesDone != pages || again.RowsDone != rows {
		t.Errorf("after a page computed twice the run counts %d pages and %d rows done, want %d and %d", again.PagesDone, again.RowsDone, pages, rows)
	}
	// Metric labels stay bounded: no series per team, flag or person.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if n := lp.GetName(); n == "team" || n == "flag" || n == "distinct_id" {
					t.Errorf("%s has an unbounded label %s", mf.GetName(), n)
				}
			}
		}
	}
	if r := e.hitRatio(t, rows); r != 1 {
		t.Errorf("hit ratio = %v, want 1", r)
	}
}

// A scanner held at the first page while another scanner finishes the run
// must not count that page again when it wakes: a finished scan of one
// subject ends where it began (subject 0, empty cursor). It once did (CI,
// TestDuplicateNoticesAndPages): the run counted 44 of 43 pages, the
// repeated page was dropped by the stream's duplicate window, and the run
// never finished.
func TestScannerWakingAfterTheRunFinished(t *testing.T) {
	e := newEnv(t, backends[0])
	const rows, pageSize = 40, 7
	const pages = (rows + pageSize - 1) / pageSize
	putPlanRows(t, e, rows)
	e.createFlag(parseFlag(t, `{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}}`))
	hs := &holdingStore{Store: e.st, held: make(chan struct{}), release: make(chan struct{})}
	e.startWorker(precompute.Config{Store: hs, PageSize: pageSize})
	first := e.waitState(t, "finished", (*precompute.RunState).Finished)
	e.waitQuiet()

	// A new plan: the first notice's scanner stalls at the first page, the
	// second notice resumes the same run and scans it to the end.
	e.updateFlag("a", func(f *flags.Flag) { f.Filters.Groups[0].Properties[0].Value = mustJSON("free") })
	hs.hold.Store(true)
	e.notify("flag")
	<-hs.held
	e.notify("flag")
	done := e.waitState(t, "finished", func(s *precompute.RunState) bool { return s.ID != first.ID && s.Finished() })
	close(hs.release)
	e.waitQuiet() // the stalled notice is acknowledged once its scanner returns

	after := e.status(t)
	if after.ID != done.ID || !after.Finished() || after.Pages != pages || after.PagesDone != pages || after.RowsTotal != rows || after.RowsDone != rows {
		t.Errorf("after the stalled scanner woke: run %s counts %d/%d pages and %d/%d rows (finished %v), want run %s with %d pages and %d rows",
			after.ID, after.PagesDone, after.Pages, after.RowsDone, after.RowsTotal, after.Finished(), done.ID, pages, rows)
	}
}

// TestRunAfterFlagDropped: deleting a stored flag changes no other flag's
// stamp, yet every row holding its entry reads its stamp group's other
// flags as stale (the group's digest folds the deleted flag's stamp, which
// the plan no longer has). The change's run rewrites every row with an
// empty list of flags, so reads answer from stored results again without
// a repair per row. It once recorded the plan without scanning, and a
// benchmark that deleted two flags after an import of 1M persons answered
// six flags live and asked for a repair on every request.
func TestRunAfterFlagDropped(t *testing.T) {
	e := newEnv(t, backends[0])
	const rows = 40
	putPlanRows(t, e, rows)
	for i := range 10 { // more than one stamp group
		e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"f%d","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":%d}]}}`, i, 10*i+5)))
	}
	e.notify("flag")
	reg := prometheus.NewRegistry()
	e.startWorker(precompute.Config{PageSize: 7, Registry: reg})
	first := e.waitState(t, "finished", (*precompute.RunState).Finished)
	e.waitQuiet()
	if r := e.hitRatio(t, rows); r != 1 {
		t.Fatalf("hit ratio after the first materialisation = %v, want 1", r)
	}
	computed := counter(t, reg, "vexil_precompute_computed_total")
	// reconcile compiled the team, the run it asked for read the same
	// definitions again.
	if got := counter(t, reg, "vexil_precompute_reloads_unchanged_total"); got < 1 {
		t.Errorf("reloads of unchanged definitions kept = %v, want at least 1", got)
	}

	e.updateFlag("f1", func(f *flags.Flag) { f.Deleted = true })
	e.notify("flag")
	done := e.waitState(t, "finished", func(s *precompute.RunState) bool { return s.ID != first.ID && s.Finished() })
	if done.Flags == nil || len(done.Flags) != 0 || done.RowsDone != rows {
		t.Errorf("run after the deletion recomputes flags %v (nil: all) on %d rows, want an empty list on %d", done.Flags, done.RowsDone, rows)
	}
	if got := counter(t, reg, "vexil_precompute_computed_total") - computed; got != rows {
		t.Errorf("computed %v rows after the deletion, want %d (each row once, no repairs)", got, rows)
	}
	if r := e.hitRatio(t, rows); r != 1 {
		t.Errorf("hit ratio after the deletion's run = %v, want 1", r)
	}
	e.waitQuiet()
	if got := counter(t, reg, "vexil_precompute_computed_total") - computed; got != rows {
		t.Errorf("computed %v rows after the reads, want %d: the reads asked for repairs", got, rows)
	}
	if b, err := precompute.BacklogOf(e.ctx, e.js, ""); err != nil || !b.Idle() {
		t.Errorf("backlog once quiet = %+v (%v), want idle", b, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "vexil_precompute_backlog" {
			for _, m := range mf.GetMetric() {
				series++
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("vexil_precompute_backlog%v = %v once quiet, want 0", m.GetLabel(), v)
				}
			}
		}
	}
	if series != 4 {
		t.Errorf("vexil_precompute_backlog has %d series, want 4 (triggers, pages, notices, runs)", series)
	}
}

// TestRunPacedWhileRequestsArrive: a worker whose node keeps receiving
// requests (Config.Arrivals moves at every read) pauses between rows and
// still finishes its run with every row stored.
func TestRunPacedWhileRequestsArrive(t *testing.T) {
	e := newEnv(t, backends[0])
	const rows = 300
	putPlanRows(t, e, rows)
	e.createFlag(parseFlag(t, `{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}]}}`))
	var arrivals atomic.Uint64
	reg := prometheus.NewRegistry()
	e.startWorker(precompute.Config{PageSize: 50, Registry: reg, Arrivals: func() uint64 { return arrivals.Add(1) }})
	done := e.waitState(t, "finished", (*precompute.RunState).Finished)
	e.waitQuiet()
	if done.RowsDone != rows {
		t.Errorf("run did %d rows, want %d", done.RowsDone, rows)
	}
	if got := counter(t, reg, "vexil_precompute_pauses_total"); got < 1 {
		t.Errorf("pauses = %v while requests kept arriving, want at least 1", got)
	}
	if r := e.hitRatio(t, rows); r != 1 {
		t.Errorf("hit ratio after the paced run = %v, want 1", r)
	}
}
