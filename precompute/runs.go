package precompute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/streams"
)

// A run recomputes flags across every row (and group) of a team after a
// definitions change. One worker, the one that receives the change notice
// from ChangeStream, scans the team and publishes its pages; every worker
// computes pages. The run state in Names.RunBucket is the checkpoint: a scan that
// dies resumes from its cursor when the notice is redelivered, and a newer
// change replaces the state, which supersedes the older run (its remaining
// pages are skipped and its flags join the new run).

// page is one page of a run. Seq numbers the run's pages from 0 in scan
// order; every scanner that publishes the page at a given checkpoint gives
// it the same Seq (the state's Pages there), which is what lets a page be
// deduplicated when published twice and counted once when computed twice.
type page struct {
	Run     string `json:"run"`
	Seq     int    `json:"seq"`
	Team    int64  `json:"team"`
	Subject int    `json:"subject"`
	Cursor  string `json:"cursor,omitempty"`
	Limit   int    `json:"limit"`
}

// msgID names the page for JetStream's duplicate window: two scanners of
// one run at one checkpoint (a redelivered notice racing the scanner it
// replaces) publish one message.
func (p page) msgID() string {
	return p.Run + "/" + strconv.Itoa(p.Seq)
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// noticeLoop starts and resumes runs from change notices. Notices are
// handled concurrently (up to noticeConcurrency per worker): a scan in
// progress must not hold back the newer change that supersedes it.
func (w *Worker) noticeLoop(ctx context.Context, cons jetstream.Consumer) error {
	sem := make(chan struct{}, noticeConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		msg, err := streams.Next(ctx, cons, streams.IdlePoll)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.cfg.Logger.Warn("fetch change notices", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		if msg == nil {
			continue
		}
		team, ok := changes.TeamOf(w.cfg.Namespace, msg.Subject())
		if !ok {
			_ = msg.Term()
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer w.keepAlive(ctx, msg)()
			if err := w.startRun(ctx, team); err != nil {
				if ctx.Err() != nil {
					return
				}
				w.cfg.Logger.Warn("precompute run", "team", team, "err", err)
				_ = msg.NakWithDelay(time.Second)
				return
			}
			_ = msg.Ack()
		}()
	}
	return nil
}

// pageDedupWindow is the page stream's duplicate window. It covers a
// notice's redelivery (AckWait) with room to spare; a scan resumed later
// than this may publish its checkpoint's page again, which costs one page
// computed twice and is counted once (RunState.Done).
const pageDedupWindow = 10 * time.Minute

// noticeConcurrency bounds the change notices one worker handles at once.
const noticeConcurrency = 4

// startRun brings a team's run state up to date with its definitions: it
// starts a run when the plan changed, resumes an unfinished scan, and
// otherwise does nothing.
func (w *Worker) startRun(ctx context.Context, team int64) error {
	d, err := w.reload(ctx, team)
	if errors.Is(err, errTeamGone) {
		return nil
	}
	if err != nil {
		return err
	}
	var st *RunState
	for {
		superseding, rewrite := false, false
		old, rev, err := w.runs.get(ctx, team)
		if err != nil {
			return err
		}
		if old != nil && old.Fingerprint == d.plan.Fingerprint {
			if old.ScanDone {
				return nil
			}
			st = old // resume the scan
			w.cfg.Logger.Info("precompute run resumed", "team", team, "run", old.ID, "cursor", old.ScanCursor)
			break
		}
		st = &RunState{ID: newRunID(), Team: team, Fingerprint: d.plan.Fingerprint, Stamps: d.plan.Stamps(),
			StartedAt: time.Now(), Reason: "definitions changed"}
		if old == nil {
			st.Reason = "first materialisation"
		} else {
			st.Flags = d.plan.ChangedSince(old.Stamps)
			if rewrite = d.plan.DroppedSince(old.Stamps); rewrite && len(st.Flags) == 0 {
				st.Reason = "flags no longer stored"
			}
			st.RowsExpected = max(old.RowsTotal, old.RowsExpected)
			if !old.Finished() {
				// Supersede: the unfinished run's flags join this one.
				if old.Flags == nil {
					st.Flags = nil
				} else {
					st.Flags = append(st.Flags, old.Flags...)
					slices.Sort(st.Flags)
					st.Flags = slices.Compact(st.Flags)
				}
				superseding = true
				// Its rows still need what it was started for, even when
				// that was only a rewrite (an empty list of flags).
				rewrite = true
			}
		}
		st.Subjects = nil
		if len(d.plan.Keys(results.Persons)) > 0 {
			st.Subjects = append(st.Subjects, results.Persons)
		}
		st.Subjects = append(st.Subjects, d.plan.GroupTypes()...)
		if st.Flags != nil && len(st.Flags) == 0 && !rewrite || len(st.Subjects) == 0 {
			// Nothing stored changed (or nothing is stored): record the
			// plan without scanning. A dropped flag alone still scans,
			// with an empty list of flags: see Plan.DroppedSince.
			st.ScanDone, st.FinishedAt = true, st.StartedAt
		}
		ok, err := w.runs.put(ctx, st, rev)
		if err != nil {
			return err
		}
		if ok {
			if superseding {
				w.m.superseded.Inc() // only by the notice whose run replaced it
			}
			if !st.ScanDone {
				w.m.runs.Inc()
				w.cfg.Logger.Info("precompute run started", "team", team, "run", st.ID, "flags", st.Flags, "reason", st.Reason)
			}
			break
		}
	}
	return w.scan(ctx, st)
}

// scan publishes the pages of run st from its checkpoint.
func (w *Worker) scan(ctx context.Context, st *RunState) error {
	for !st.ScanDone {
		w.pace.step() // a page read is a few milliseconds of the P
		subject := st.Subjects[st.ScanSubject]
		var n int
		var next string
		if subject == results.Persons {
			p, err := w.cfg.Store.ScanRows(ctx, st.Team, st.ScanCursor, w.cfg.PageSize)
			if err != nil {
				return fmt.Errorf("precompute: scan rows: %w", err)
			}
			n, next = len(p.Rows), p.Next
		} else {
			p, err := w.cfg.Store.ScanGroups(ctx, st.Team, subject, st.ScanCursor, w.cfg.PageSize)
			if err != nil {
				return fmt.Errorf("precompute: scan groups: %w", err)
			}
			n, next = len(p.Groups), p.Next
		}
		if n > 0 {
			pg := page{Run: st.ID, Seq: st.Pages, Team: st.Team, Subject: subject, Cursor: st.ScanCursor, Limit: w.cfg.PageSize}
			data, _ := json.Marshal(pg)
			if _, err := w.js.Publish(ctx, w.names.PageSubjectPrefix+strconv.FormatInt(st.Team, 10), data, jetstream.WithMsgID(pg.msgID())); err != nil {
				return fmt.Errorf("precompute: publish page: %w", err)
			}
		}
		cursor, subjectIdx, pages := st.ScanCursor, st.ScanSubject, st.Pages
		overtaken := false
		upd, err := w.runs.update(ctx, st.Team, st.ID, func(s *RunState) bool {
			// The cursor alone does not say where the scan stands: a
			// finished scan of one subject ends at (0, ""), where it began,
			// so a scanner held at the first page until another finished
			// the run would count that page again, and the run would wait
			// for ever for a page the stream dropped as a duplicate.
			if s.ScanDone || s.ScanSubject != subjectIdx || s.ScanCursor != cursor || s.Pages != pages {
				overtaken = true // another scanner of this run moved on: it owns the scan
				return false
			}
			if n > 0 {
				s.Pages++
				s.RowsTotal += int64(n)
			}
			s.ScanCursor = next
			if next == "" {
				s.ScanSubject++
				if s.ScanSubject >= len(s.Subjects) {
					s.ScanDone = true
					s.ScanSubject = len(s.Subjects) - 1
					if s.PagesDone >= s.Pages {
						s.FinishedAt = time.Now()
					}
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		if upd == nil || overtaken {
			return nil // superseded, or scanned by another worker
		}
		st = upd
	}
	w.cfg.Logger.Info("precompute run scanned", "team", st.Team, "run", st.ID, "rows", st.RowsTotal, "pages", st.Pages)
	return nil
}

// pageLoop computes pages of runs.
func (w *Worker) pageLoop(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		msg, err := streams.Next(ctx, cons, streams.IdlePoll)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.cfg.Logger.Warn("fetch run pages", "err", err)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		if msg == nil {
			continue
		}
		var p page
		if err := json.Unmarshal(msg.Data(), &p); err != nil {
			_ = msg.Term()
			continue
		}
		stop := w.keepAlive(ctx, msg)
		err = w.computePage(ctx, p)
		stop()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.cfg.Logger.Warn("precompute page", "team", p.Team, "run", p.Run, "err", err)
			_ = msg.NakWithDelay(time.Second)
			continue
		}
		_ = msg.Ack()
	}
	return nil
}

func (w *Worker) computePage(ctx context.Context, p page) error {
	st, _, err := w.runs.get(ctx, p.Team)
	if err != nil {
		return err
	}
	if st == nil || st.ID != p.Run {
		w.m.pagesSkipped.Inc()
		return nil // superseded: the newer run covers these rows
	}
	d, err := w.definitions(ctx, p.Team)
	if errors.Is(err, errTeamGone) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.plan.Fingerprint != st.Fingerprint {
		if d, err = w.reload(ctx, p.Team); err != nil {
			return err
		}
	}
	w.pace.step() // reading a page holds the P for milliseconds
	if w.runLimit != nil {
		if err := w.runLimit.WaitN(ctx, min(p.Limit, w.runLimit.Burst())); err != nil {
			return err
		}
		w.m.runThrottled.Inc()
	}
	stamp := w.clock.stamp()
	var out []computed
	if p.Subject == results.Persons {
		pg, err := w.cfg.Store.ScanRows(ctx, p.Team, p.Cursor, p.Limit)
		if err != nil {
			return fmt.Errorf("precompute: read page: %w", err)
		}
		w.pace.step()
		out = make([]computed, len(pg.Rows))
		if err := w.parallel(ctx, len(pg.Rows), func(i int) error {
			r := pg.Rows[i]
			c, err := w.compute(d, results.Subject{Type: results.Persons, Key: r.DistinctID, Version: r.PersonVersion,
				Revision: results.RowRevision(r.Revision, r.Counters), Events: results.RowEvents(r.Counters)}, r.Properties, st.Flags, r.Results)
			if err != nil {
				w.cfg.Logger.Warn("row not computed", "team", p.Team, "distinct_id", r.DistinctID, "err", err)
				return nil
			}
			out[i] = c
			return nil
		}); err != nil {
			return err
		}
	} else {
		pg, err := w.cfg.Store.ScanGroups(ctx, p.Team, p.Subject, p.Cursor, p.Limit)
		if err != nil {
			return fmt.Errorf("precompute: read page: %w", err)
		}
		w.pace.step()
		out = make([]computed, len(pg.Groups))
		if err := w.parallel(ctx, len(pg.Groups), func(i int) error {
			g := pg.Groups[i]
			c, err := w.compute(d, results.Subject{Type: p.Subject, Key: g.Key, Version: g.Version,
				Revision: results.RowRevision(g.Revision, g.Counters), Events: results.RowEvents(g.Counters)}, g.Properties, st.Flags, g.Results)
			if err != nil {
				w.cfg.Logger.Warn("group not computed", "team", p.Team, "key", g.Key, "err", err)
				return nil
			}
			out[i] = c
			return nil
		}); err != nil {
			return err
		}
	}
	if err := w.write(ctx, p.Team, stamp, out); err != nil {
		return err
	}
	w.pace.step()
	w.m.computed.WithLabelValues("run").Add(float64(len(out)))
	upd, err := w.runs.update(ctx, p.Team, p.Run, func(s *RunState) bool {
		if !s.markPageDone(p.Seq) {
			return false // a redelivered page, counted when first computed
		}
		s.PagesDone++
		s.RowsDone += int64(len(out))
		if s.ScanDone && s.PagesDone >= s.Pages && !s.Finished() {
			s.FinishedAt = time.Now()
		}
		return true
	})
	if err != nil {
		return err
	}
	if upd != nil {
		pr := upd.Progress(time.Now())
		if upd.Finished() {
			w.cfg.Logger.Info("precompute run finished", "team", p.Team, "run", p.Run, "rows", pr.RowsDone,
				"took", upd.FinishedAt.Sub(upd.StartedAt).Round(time.Millisecond), "rows_per_second", int(pr.RowsPerSecond))
		} else if upd.PagesDone%20 == 0 {
			w.cfg.Logger.Info("precompute run progress", "team", p.Team, "run", p.Run, "rows_done", pr.RowsDone,
				"rows_total", pr.RowsTotal, "rows_per_second", int(pr.RowsPerSecond), "eta", pr.ETA.Round(time.Second))
		}
	}
	return nil
}

// keepAlive tells JetStream that msg is still being worked on, every third
// of AckWait, until the returned stop is called: a scan or a page waiting
// on a slow store or the rows/s budget is not redelivered to another
// worker while it is still alive. (Redelivery is harmless, since pages are
// deduplicated and counted once, but it is wasted work.)
func (w *Worker) keepAlive(ctx context.Context, msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(w.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// parallel runs fn for 0..n-1 on Concurrency goroutines. Each steps the
// pacer after every row: a run is background work, and on a server with
// few cores its CPU-bound goroutines would otherwise hold back the
// latency-sensitive ones (the projector, /flags) for whole scheduler time
// slices. (runtime.Gosched after every row did not: see pacer.)
func (w *Worker) parallel(ctx context.Context, n int, fn func(i int) error) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(w.cfg.Concurrency)
	for i := range n {
		g.Go(func() error {
			defer w.pace.step()
			return fn(i)
		})
	}
	return g.Wait()
}

// reconcile asks for a run on every team whose stored plan is not its
// current one (a team never materialised, or a notice missed while no
// worker ran): it publishes a change notice for each, which the normal
// path handles once. The runs role calls it on start and every
// ReloadInterval.
func (w *Worker) reconcile(ctx context.Context) error {
	list, err := w.cfg.Catalog.ListTeams(ctx)
	if err != nil {
		return fmt.Errorf("precompute: list teams: %w", err)
	}
	for _, t := range list {
		team := t.ID
		d, err := w.reload(ctx, team)
		if errors.Is(err, errTeamGone) {
			continue
		}
		if err != nil {
			return err
		}
		st, _, err := w.runs.get(ctx, team)
		if err != nil {
			return err
		}
		if st != nil && st.Fingerprint == d.plan.Fingerprint && st.ScanDone {
			continue
		}
		n := changes.Notice{Team: team, Kind: changes.KindPrecompute, Op: "reconcile"}
		data, err := n.Encode()
		if err != nil {
			return fmt.Errorf("precompute: reconcile notice: %w", err)
		}
		if _, err := w.js.Publish(ctx, n.Subject(w.cfg.Namespace), data); err != nil {
			return fmt.Errorf("precompute: publish reconcile notice: %w", err)
		}
	}
	return nil
}
