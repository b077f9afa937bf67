package evalsvc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
)

// evaluation is one answered request.
type evaluation struct {
	records []wire.Record
	errors  bool
	path    string // "row", "no-row" or "partial"
	// sources says, per record, which path answered it (filled when the
	// request asked for debug information).
	sources []results.Source
}

// scratch is the reusable memory of one request: results, records, the
// response buffer and the decoded stored results, pooled so a request
// allocates little beyond its inputs.
type scratch struct {
	// answers are the merged answers, per flag of the team in evaluation
	// order (nil Result: the request did not want the flag, or it has no
	// result): a pointer into stored or live, so that a result is copied
	// once (into stored or live) rather than again per phase, and whether
	// stored results gave it. That is the form Config.Usage counts an
	// all-flags request in (RecordAll): counting copies nothing per flag.
	// nanswers counts the answers that have a result.
	answers  []usage.Answer
	nanswers int
	live     []flags.Result
	records  []wire.Record
	buf      []byte
	// rowBuf holds the row read (readRow) when the store reads into the
	// caller's memory (store.RowBufferReader), decoded into rowVal: a
	// row's bytes, copied out of the store, were a tenth of a request's
	// garbage.
	rowBuf []byte
	rowVal store.Row
	// req is the decoded /flags request (wire.DecodeFlagsRequestInto).
	req wire.FlagsRequest
	// fctx is the live evaluation's context (evaluateLive).
	fctx flags.Context
	// stored results of the row and of the request's groups (by
	// teamState.groupIdx slot)
	row    results.Row
	groups []results.Row
	// per flag of the team, in evaluation order
	want    []bool
	source  []results.Source
	stored  []flags.Result
	misses  []string
	sources []results.Source
	// bySource counts the request's answers by source.
	bySource []uint32
	props    map[string]any
	cohorts  cohortSource
	debug    bool
	// forceLive ignores stored results for this request.
	forceLive bool
	// usage is what Config.Usage counts of the request, per record, when
	// it did not answer every flag.
	usage []usage.Eval
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.buf) > 1<<20 || cap(sc.rowBuf) > 64<<10 {
		return // an outsized response or row; let it go
	}
	sc.rowVal, sc.req = store.Row{}, wire.FlagsRequest{}
	clear(sc.fctx.Groups)
	sc.fctx = flags.Context{Groups: sc.fctx.Groups[:0]}
	clear(sc.answers) // drop references to payloads and errors (held by live and stored)
	clear(sc.live)
	clear(sc.records)
	clear(sc.stored)
	clear(sc.misses)
	clear(sc.usage)
	sc.usage, sc.answers = sc.usage[:0], sc.answers[:0]
	sc.live, sc.records, sc.buf = sc.live[:0], sc.records[:0], sc.buf[:0]
	sc.misses, sc.sources, sc.debug, sc.forceLive = sc.misses[:0], sc.sources[:0], false, false
	sc.cohorts.reset(nil, nil, 0, "")
	if len(sc.props) > 256 {
		sc.props = nil
	} else {
		clear(sc.props)
	}
	scratchPool.Put(sc)
}

// groupRead is one group the request names, with what the store holds.
type groupRead struct {
	idx      int
	name     string
	key      string
	props    []byte
	results  []byte
	version  int64
	revision uint64 // results.RowRevision of its properties and counters
	counters []byte
	found    bool
	err      error
}

// pass is what the phases of one request's evaluation hand each other.
type pass struct {
	ts  *teamState
	req *wire.FlagsRequest
	sc  *scratch
	now time.Time
	// deadline bounds the live evaluation (Config.EvalTimeout from the
	// end of the reads).
	deadline time.Time
	// readDeadline, when not zero, is the reads' deadline that their
	// context does not carry (a local store's: see evaluate).
	readDeadline time.Time
	// The reads: the row (rowErr store.ErrNotFound for an unknown
	// person) and the groups the request names.
	row    *store.Row
	rowErr error
	groups []groupRead
	path   string // "row", "no-row" or "partial"
	// partial evaluates from the request alone where the store failed
	// (flags.Context.Partial).
	partial bool
	// storeFailed makes the response say errorsWhileComputingFlags.
	storeFailed bool
	// repairRow and repairGroups (a bit per group slot) ask precompute to
	// recompute the row and groups whose stored results were stale.
	repairRow    bool
	repairGroups uint64
}

// evaluate runs one request against a team, phase by phase: read the row
// and the groups (read), decide which flags the stored results answer
// (chooseSources), evaluate the others live from the same row
// (evaluateLive), merge both in evaluation order and count the answers
// (merge), ask precompute to repair stale rows (requestRepairs), and build
// the response records (buildRecords).
//
// Every read of the request (row, groups, static cohort membership) shares
// one deadline, StoreTimeout: past it the flags that need what was not
// read answer failed, and the response says errorsWhileComputingFlags.
// The live evaluation has its own, EvalTimeout from the end of the reads:
// past it the flags not yet decided answer failed (deadline_exceeded).
//
// A local store (store.LocalReader) is read under ctx itself: its reads
// cannot be interrupted, and the timer of a deadline context (with its
// registration on the request's context) was a tenth of what a request
// left to the collector. The deadline then bounds the membership reads
// alone, whose context is made at the first of them (cohortSource).
func (s *Service) evaluate(ctx context.Context, ts *teamState, req *wire.FlagsRequest, sc *scratch, ep usage.Endpoint) evaluation {
	p := pass{ts: ts, req: req, sc: sc, now: s.cfg.Now(), path: "row"}
	rctx := ctx
	if s.localReads {
		p.readDeadline = time.Now().Add(s.cfg.StoreTimeout)
	} else {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, s.cfg.StoreTimeout)
		defer cancel()
	}
	s.read(rctx, &p)
	// The evaluation's own budget starts once the reads are done: a read
	// that StoreTimeout allows (raised for a remote cluster, or slow on a
	// loaded host) must not spend it and fail every flag.
	p.deadline = time.Now().Add(s.cfg.EvalTimeout)
	s.chooseSources(&p)
	s.evaluateLive(rctx, &p)
	s.merge(&p)
	s.requestRepairs(&p)
	ev := s.buildRecords(&p)
	s.m.evaluations.WithLabelValues(p.path).Inc()
	if s.cfg.Usage != nil {
		s.countUsage(&p, &ev, ep)
	}
	return ev
}

// countUsage counts the request's answers (Config.Usage). One that
// answered every flag of the team is counted against the team's usage
// layout from the merged results themselves (scratch.answers, in keys
// order): nothing is copied per flag. A subset (flag keys, or a flag left
// out by evaluation_runtime) is counted flag by flag.
func (s *Service) countUsage(p *pass, ev *evaluation, ep usage.Endpoint) {
	ts, req, sc := p.ts, p.req, p.sc
	if req.FlagKeys == nil && sc.nanswers == len(ts.keys) && len(ev.records) == sc.nanswers {
		// ev.errors also says a store read failed: a Failed that may be
		// unneeded, which costs RecordAll a slower loop, not a count.
		tally := usage.Tally{Stored: int(sc.bySource[results.Stored]), Failed: ev.errors}
		s.cfg.Usage.RecordAll(ts.usage, ep, req.DistinctID, sc.answers, tally)
		return
	}
	for i := range sc.answers {
		a := &sc.answers[i]
		if a.Result == nil || !ts.metaAt[i].servedTo(req.EvaluationRuntime) {
			continue
		}
		// The team's key string (the same memory request after request)
		// rather than the result's: usage compares keys by pointer first.
		sc.usage = append(sc.usage, usage.Eval{Flag: ts.keys[i], Value: usage.Value(a.Result), Stored: a.Stored, Failed: a.Result.Err != nil})
	}
	s.cfg.Usage.Record(ts.team.ID, ep, req.DistinctID, false, sc.usage)
}

// read reads the row and, in parallel, each group the request names whose
// type some flag of the team reads, under ctx (the request's deadline). A
// failed or late read puts the request in partial mode.
func (s *Service) read(ctx context.Context, p *pass) {
	ts := p.ts
	for name, key := range p.req.Groups {
		idx, ok := ts.set.GroupTypeIndex(name)
		if !ok || key == "" {
			continue
		}
		p.groups = append(p.groups, groupRead{idx: idx, name: name, key: key})
	}
	if len(p.groups) == 0 {
		s.readRow(ctx, p)
	} else {
		s.readRowAndGroups(ctx, p)
	}
	p.storeFailed = p.rowErr != nil && !errors.Is(p.rowErr, store.ErrNotFound)
	switch {
	case p.storeFailed:
		p.path, p.partial = "partial", true
		s.m.storeErrors.Inc()
		s.cfg.Logger.Debug("row read failed; answering from the request alone", "team", ts.team.ID, "err", p.rowErr)
	case p.rowErr != nil:
		p.path = "no-row"
	}
	for _, g := range p.groups {
		if g.err != nil {
			p.partial, p.storeFailed = true, true
			s.m.storeErrors.Inc()
		}
	}
}

// readRowAndGroups is read's reads when the request names groups: each
// group in a goroutine of its own, the row in this one. (Apart from read,
// so that a request without groups puts no WaitGroup on the heap.)
func (s *Service) readRowAndGroups(ctx context.Context, p *pass) {
	ts := p.ts
	var wg sync.WaitGroup
	for i := range p.groups {
		if !ts.needsGroup(p.groups[i].idx) {
			continue
		}
		wg.Add(1)
		go func(g *groupRead) {
			defer wg.Done()
			grp, err := s.cfg.Store.GetGroup(ctx, ts.team.ID, g.idx, g.key)
			if err == nil {
				g.props, g.results, g.version, g.found = grp.Properties, grp.Results, grp.Version, true
				// The counters of group-aggregated behaviour come with the
				// group's read, as a row's do.
				g.revision, g.counters = results.RowRevision(grp.Revision, grp.Counters), grp.Counters
			} else if !errors.Is(err, store.ErrNotFound) {
				g.err = err
			}
		}(&p.groups[i])
	}
	s.readRow(ctx, p)
	wg.Wait()
}

// readRow reads the request's row, into the scratch's buffer when the
// store can (store.RowBufferReader): the row is then the scratch's, which
// outlives every use of it (nothing decoded from it aliases it).
func (s *Service) readRow(ctx context.Context, p *pass) {
	if s.rowBuffers == nil {
		p.row, p.rowErr = s.cfg.Store.GetRow(ctx, p.ts.team.ID, p.req.DistinctID)
		return
	}
	sc := p.sc
	sc.rowBuf, p.rowErr = s.rowBuffers.GetRowBuffer(ctx, p.ts.team.ID, p.req.DistinctID, &sc.rowVal, sc.rowBuf)
	if p.rowErr == nil {
		p.row = &sc.rowVal
	}
}

// chooseSources decides which flags the request wants and, for each, its
// source: the stored result when it is current (docs/design.md §2, checked by
// results.Row.Check), live otherwise. The live ones are the misses.
func (s *Service) chooseSources(p *pass) {
	ts, req, sc := p.ts, p.req, p.sc
	n := len(ts.keys)
	sc.want = resize(sc.want, n)
	sc.source = resize(sc.source, n)
	sc.stored = resize(sc.stored, n)
	if req.FlagKeys == nil {
		for i := range sc.want {
			sc.want[i] = true
		}
	} else {
		clear(sc.want)
		for _, k := range req.FlagKeys {
			if i, ok := ts.plan.Index(k); ok {
				sc.want[i] = true
			}
		}
	}
	forced := s.cfg.LiveOnly || sc.forceLive
	useStored := !forced && !p.partial && p.rowErr == nil
	if useStored {
		s.loadStored(p)
	}
	sc.misses = sc.misses[:0]
	for i := range n {
		if !sc.want[i] {
			continue
		}
		fp := &ts.plan.Flags[i]
		src := results.Absent
		switch {
		case !fp.Precomputable:
			src = results.NotPrecomputable
		case forced:
			src = results.Forced
		case useStored:
			src = s.storedResult(p, i)
		}
		sc.source[i] = src
		if src != results.Stored {
			sc.misses = append(sc.misses, fp.Key)
		}
	}
}

// loadStored loads the stored results of the row and of the groups read.
func (s *Service) loadStored(p *pass) {
	sc := p.sc
	sc.row.Load(p.row.Results, p.ts.plan, p.row.PersonVersion, results.RowRevision(p.row.Revision, p.row.Counters), p.req.DistinctID, "distinct_id")
	sc.groups = resize(sc.groups, len(p.ts.groupSlots))
	for gi := range sc.groups {
		sc.groups[gi].Load(nil, nil, 0, 0, "", "")
	}
	for _, g := range p.groups {
		if gi, ok := p.ts.groupSlot(g.idx); ok && g.found {
			sc.groups[gi].Load(g.results, p.ts.plan, g.version, g.revision, g.key, "$group_key")
		}
	}
}

// storedResult checks flag i's stored result: Stored (with the result in
// scratch.stored) or why it is not taken. Stale results mark their row or
// group for repair.
func (s *Service) storedResult(p *pass, i int) results.Source {
	ts, req, sc := p.ts, p.req, p.sc
	fp := &ts.plan.Flags[i]
	var e *results.Entry
	var src results.Source
	if fp.Subject == results.Persons {
		e, src = sc.row.Check(fp, p.now, req.PersonProperties)
		p.repairRow = p.repairRow || src.Stale()
	} else {
		name, _ := ts.set.GroupTypeName(fp.Subject)
		gi, ok := ts.groupSlot(fp.Subject)
		if !ok || req.Groups[name] == "" {
			return results.NoSubject
		}
		g := &sc.groups[gi]
		if g.Key == "" {
			return results.Absent // named in the request, not in the store
		}
		e, src = g.Check(fp, p.now, req.GroupProperties[name])
		if src.Stale() {
			p.repairGroups |= 1 << gi
		}
	}
	if src != results.Stored {
		return src
	}
	// The plan's flags are in the set's evaluation order: i is the
	// flag's index in both (ExpandAt checks the key).
	if !ts.set.ExpandAt(i, fp.Key, e.Compact, &sc.stored[i]) { // a current stamp makes this impossible; stay exact anyway
		return results.StaleFlag
	}
	return results.Stored
}

// evaluateLive evaluates the misses from the row's properties, the groups'
// and the request's overrides, which win. Static cohort membership is read
// from the catalog under ctx, the deadline of the store reads. The stored
// properties are decoded only here, when some flag is answered live.
func (s *Service) evaluateLive(ctx context.Context, p *pass) {
	sc := p.sc
	sc.live = sc.live[:0]
	if len(sc.misses) == 0 {
		return
	}
	// The context is the scratch's: evaluation keeps no reference to it.
	c := &sc.fctx
	*c = flags.Context{DistinctID: p.req.DistinctID, DeviceID: p.req.DeviceID, Now: p.now, Partial: p.partial, Deadline: p.deadline,
		Groups: c.Groups[:0]}
	sc.cohorts.reset(ctx, s, p.ts.team.ID, p.req.DistinctID)
	sc.cohorts.deadline = p.readDeadline
	c.Cohorts = &sc.cohorts
	if sc.props == nil {
		sc.props = map[string]any{}
	}
	props := sc.props
	if p.rowErr == nil {
		c.Events = results.RowEvents(p.row.Counters)
		if err := wire.DecodeProperties(p.row.Properties, props); err != nil {
			p.path, c.Partial = "partial", true
			s.m.storeErrors.Inc()
		}
	}
	for k, v := range p.req.PersonProperties {
		props[k] = v // request overrides win
	}
	c.PersonProperties = props
	for _, g := range p.groups {
		gp := map[string]any{}
		if g.props != nil {
			_ = wire.DecodeProperties(g.props, gp)
		}
		for k, v := range p.req.GroupProperties[g.name] {
			gp[k] = v
		}
		for len(c.Groups) <= g.idx {
			c.Groups = append(c.Groups, flags.Group{})
		}
		c.Groups[g.idx] = flags.Group{Key: g.key, Properties: gp}
		if !p.partial {
			c.Groups[g.idx].Events = results.RowEvents(g.counters)
		}
	}
	sc.live = p.ts.set.AppendEvaluate(sc.live, c, sc.misses)
}

// merge puts the stored and live results in evaluation order
// (AppendEvaluate returns the live ones in that order too) into
// scratch.answers, by flag index, and counts each answer by source: per
// flag (FlagAnswers) and in total (vexil_evalsvc_flag_answers_total).
func (s *Service) merge(p *pass) {
	ts, sc := p.ts, p.sc
	answers := resize(sc.answers, len(ts.keys))
	answered, li := 0, 0
	sc.sources = sc.sources[:0]
	sc.bySource = resize(sc.bySource, len(s.m.answers))
	clear(sc.bySource)
	for i := range answers {
		var a usage.Answer
		if sc.want[i] {
			src := sc.source[i]
			if src == results.Stored {
				a = usage.Answer{Result: &sc.stored[i], Stored: true}
			} else if li < len(sc.live) && sc.live[li].Key == ts.keys[i] {
				a.Result = &sc.live[li]
				li++
			}
			if a.Result != nil {
				ts.answers[i][src].Add(1)
				sc.bySource[src]++
				answered++
			}
		}
		answers[i] = a
	}
	for src, n := range sc.bySource {
		if n > 0 {
			s.m.answers[src].Add(float64(n))
		}
	}
	sc.answers, sc.nanswers = answers, answered
}

// requestRepairs asks precompute (Config.Repair) to recompute the row and
// the groups whose stored results were missing or stale.
func (s *Service) requestRepairs(p *pass) {
	if s.cfg.Repair == nil {
		return
	}
	if p.repairRow {
		s.cfg.Repair(p.ts.team.ID, results.Persons, p.req.DistinctID)
	}
	for _, g := range p.groups {
		if gi, ok := p.ts.groupSlot(g.idx); ok && p.repairGroups&(1<<gi) != 0 {
			s.cfg.Repair(p.ts.team.ID, g.idx, g.key)
		}
	}
}

// buildRecords turns the merged results into response records, leaving
// out flags of another evaluation runtime than the request's.
func (s *Service) buildRecords(p *pass) evaluation {
	ts, req, sc := p.ts, p.req, p.sc
	ev := evaluation{path: p.path, errors: p.storeFailed, records: sc.records[:0]}
	keep := sc.sources[:0]
	for i := range sc.answers {
		r := sc.answers[i].Result
		if r == nil {
			continue
		}
		meta := &ts.metaAt[i]
		if !meta.servedTo(req.EvaluationRuntime) {
			continue
		}
		rec := wire.Record{Key: r.Key, Enabled: r.Enabled, Variant: r.Variant, Reason: r.Reason, ID: r.FlagID,
			Version: r.Version, Payload: r.Payload, Description: meta.description, HasExperiment: meta.hasExperiment, Pre: meta.pre}
		if r.Err != nil {
			rec.Failed = true
			ev.errors = true
			if ee, ok := errors.AsType[*flags.EvalError](r.Err); ok {
				rec.ErrorCode = ee.Code
			}
		}
		ev.records = append(ev.records, rec)
		if sc.debug {
			keep = append(keep, sc.source[i])
		}
	}
	sc.records = ev.records
	if sc.debug {
		ev.sources = keep
	}
	return ev
}

// resize returns s with length n, reusing its memory.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// cohortSource answers static cohort membership from the catalog, for one
// request: each read is bounded by the request's store deadline (a read
// after it fails at once, without reaching the catalog), and each cohort
// is read once per request however many flags name it.
type cohortSource struct {
	ctx context.Context
	// deadline, when not zero, is the store deadline that ctx does not
	// carry yet: the first read puts it on ctx (cancel undoes it at
	// reset), so that a request that reads no cohort makes no timer.
	deadline   time.Time
	cancel     context.CancelFunc
	s          *Service
	team       int64
	distinctID string
	// read lists the cohorts already read in this request.
	read []cohortAnswer
}

type cohortAnswer struct {
	id     int64
	member bool
	err    error
}

func (c *cohortSource) reset(ctx context.Context, s *Service, team int64, distinctID string) {
	if c.cancel != nil {
		c.cancel()
	}
	clear(c.read)
	c.ctx, c.s, c.team, c.distinctID, c.read = ctx, s, team, distinctID, c.read[:0]
	c.deadline, c.cancel = time.Time{}, nil
}

// InCohort implements flags.CohortSource.
func (c *cohortSource) InCohort(id int64) (bool, time.Time, error) {
	for _, a := range c.read {
		if a.id == id {
			return a.member, time.Time{}, a.err
		}
	}
	member, err := c.member(id)
	if len(c.read) < 64 {
		c.read = append(c.read, cohortAnswer{id: id, member: member, err: err})
	}
	return member, time.Time{}, err
}

func (c *cohortSource) member(id int64) (bool, error) {
	if !c.deadline.IsZero() {
		c.ctx, c.cancel = context.WithDeadline(c.ctx, c.deadline)
		c.deadline = time.Time{}
	}
	if err := c.ctx.Err(); err != nil {
		c.s.m.cohortErrors.Inc()
		return false, err
	}
	ok, err := c.s.cfg.Catalog.IsCohortMember(c.ctx, c.team, id, c.distinctID)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return false, flags.ErrCohortNotFound
	case err != nil:
		c.s.m.cohortErrors.Inc()
		c.s.cfg.Logger.Debug("static cohort membership read failed; the flags that need it fail", "team", c.team, "cohort", id, "err", err)
		return false, err
	}
	return ok, nil
}
