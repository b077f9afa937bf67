package evalsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
)

// Service evaluates flags. It is safe for concurrent use.
type Service struct {
	cfg      Config
	cache    *hyperCache
	keys     *keyCache
	inflight atomic.Int64
	m        *metrics
	// subscribed is closed once Run's change-notice subscription is
	// registered with the NATS server.
	subscribed chan struct{}
	// stopped is closed when Run returns: definition watches end.
	stopped  chan struct{}
	stopOnce sync.Once
}

// New returns a Service; call Run to keep its cache fresh.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	s := &Service{cfg: c, keys: &keyCache{ttl: c.KeyCacheTTL, m: map[string]keyEntry{}}, subscribed: make(chan struct{}),
		stopped: make(chan struct{})}
	s.cache = newHyperCache(s.loadTeam)
	s.m = newMetrics(c.Registry)
	return s, nil
}

func (s *Service) loadTeam(ctx context.Context, team int64) (*teamState, error) {
	snap, err := s.cfg.Catalog.Snapshot(ctx, team)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errTeamGone
	}
	if err != nil {
		return nil, fmt.Errorf("evalsvc: load team %d: %w", team, err)
	}
	ts, err := buildTeamState(snap, s.cfg.Now(), s.cfg.Plan, s.m)
	if err != nil {
		return nil, err
	}
	if ts.compileErr != nil {
		s.cfg.Logger.Warn("team definitions have problems; the affected flags evaluate as PostHog defines or fail", "team", team, "err", ts.compileErr)
	}
	s.m.reloads.Inc()
	return ts, nil
}

// Run keeps the HyperCache fresh: it applies change notices from nc (when
// not nil) and reloads every loaded team each ReloadInterval. It returns
// when ctx is done.
func (s *Service) Run(ctx context.Context, nc *nats.Conn) error {
	defer s.stopOnce.Do(func() { close(s.stopped) })
	var wg sync.WaitGroup
	defer wg.Wait()
	if nc != nil {
		notices := make(chan int64, 1024)
		sub, err := nc.Subscribe(changes.Wildcard, func(msg *nats.Msg) {
			// A payload that cannot be read still names its team (the
			// subject): refresh that team.
			n, err := changes.Parse(msg.Subject, msg.Data)
			if errors.Is(err, changes.ErrSubject) {
				return
			}
			if n.Kind == changes.KindKey || n.Kind == changes.KindTeam {
				s.keys.flush()
			}
			select {
			case notices <- n.Team:
			default: // the periodic reload catches up
				s.m.noticesDropped.Inc()
			}
		})
		if err != nil {
			return fmt.Errorf("evalsvc: subscribe to change notices: %w", err)
		}
		defer sub.Unsubscribe() //nolint:errcheck // best effort on shutdown
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("evalsvc: subscribe to change notices: %w", err)
		}
		close(s.subscribed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case team := <-notices:
					if _, err := s.cache.refresh(ctx, team); err != nil && !errors.Is(err, errTeamGone) {
						s.cfg.Logger.Warn("reload after change notice failed", "team", team, "err", err)
					}
				}
			}
		}()
	}
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, team := range s.cache.loadedTeams() {
				if _, err := s.cache.refresh(ctx, team); err != nil && !errors.Is(err, errTeamGone) {
					s.cfg.Logger.Warn("periodic reload failed", "team", team, "err", err)
				}
			}
		}
	}
}

// Refresh reloads a team now (tests, and callers that just changed it).
func (s *Service) Refresh(ctx context.Context, team int64) error {
	_, err := s.cache.refresh(ctx, team)
	return err
}

// Errors of the authentication and admission steps.
var (
	ErrMissingToken = errors.New("evalsvc: no project token")
	ErrUnknownKey   = errors.New("evalsvc: unknown or revoked key")
	ErrWrongKeyKind = errors.New("evalsvc: key of the wrong kind")
	ErrOverloaded   = errors.New("evalsvc: overloaded")
	// ErrCatalogUnavailable wraps a failure to read keys or definitions.
	ErrCatalogUnavailable = errors.New("evalsvc: catalog unavailable")
)

// lookupKey resolves a secret through the key cache.
func (s *Service) lookupKey(ctx context.Context, secret string) (catalog.APIKey, error) {
	if secret == "" {
		return catalog.APIKey{}, ErrUnknownKey
	}
	hash := s.cfg.HashKey(secret)
	now := s.cfg.Now()
	if e, ok := s.keys.get(hash, now); ok {
		if !e.found {
			return catalog.APIKey{}, ErrUnknownKey
		}
		return e.key, nil
	}
	k, err := s.cfg.Catalog.GetKeyByHash(ctx, hash)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		s.keys.put(hash, keyEntry{found: false, expires: now.Add(s.cfg.KeyCacheTTL)})
		return catalog.APIKey{}, ErrUnknownKey
	case err != nil:
		return catalog.APIKey{}, fmt.Errorf("evalsvc: key lookup: %w", err)
	}
	found := k.RevokedAt.IsZero()
	s.keys.put(hash, keyEntry{key: k, found: found, expires: now.Add(s.cfg.KeyCacheTTL)})
	if !found {
		return catalog.APIKey{}, ErrUnknownKey
	}
	return k, nil
}

// teamForToken resolves a project token to its team.
func (s *Service) teamForToken(ctx context.Context, token string) (int64, error) {
	k, err := s.lookupKey(ctx, token)
	if err != nil {
		return 0, err
	}
	if k.Kind != catalog.KeyProjectToken || len(k.Teams) != 1 {
		return 0, ErrWrongKeyKind
	}
	return k.Teams[0], nil
}

// requestTeam is the authentication step of every evaluation request,
// whatever its transport (/flags, /decide, gRPC Evaluate): the project
// token's team and its entry in the HyperCache. It fails with
// ErrMissingToken, ErrUnknownKey (unknown, revoked, or a team that no
// longer exists), ErrWrongKeyKind (not a project token) or
// ErrCatalogUnavailable.
func (s *Service) requestTeam(ctx context.Context, token string) (*teamState, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	team, err := s.teamForToken(ctx, token)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrWrongKeyKind) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	ts, err := s.cache.get(ctx, team)
	if err != nil {
		if errors.Is(err, errTeamGone) {
			return nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrCatalogUnavailable, err)
	}
	return ts, nil
}

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
	results []flags.Result
	live    []flags.Result
	records []wire.Record
	buf     []byte
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
	props   map[string]any
	debug   bool
	// forceLive ignores stored results for this request.
	forceLive bool
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.buf) > 1<<20 {
		return // an outsized response; let it go
	}
	clear(sc.results) // drop references to payloads and errors
	clear(sc.live)
	clear(sc.records)
	clear(sc.stored)
	clear(sc.misses)
	sc.results, sc.live, sc.records, sc.buf = sc.results[:0], sc.live[:0], sc.records[:0], sc.buf[:0]
	sc.misses, sc.sources, sc.debug, sc.forceLive = sc.misses[:0], sc.sources[:0], false, false
	if len(sc.props) > 256 {
		sc.props = nil
	} else {
		clear(sc.props)
	}
	scratchPool.Put(sc)
}

// admit applies load shedding: at most MaxInflight evaluations at once.
func (s *Service) admit() (func(), error) {
	if s.inflight.Add(1) > int64(s.cfg.MaxInflight) {
		s.inflight.Add(-1)
		s.m.shed.Inc()
		return nil, ErrOverloaded
	}
	return func() { s.inflight.Add(-1) }, nil
}

// groupRead is one group the request names, with what the store holds.
type groupRead struct {
	idx      int
	name     string
	key      string
	props    []byte
	results  []byte
	version  int64
	revision uint64
	found    bool
	err      error
}

// evaluate runs one request against a team: the row read (and the group
// reads) under StoreTimeout, then every requested flag: from the stored
// result when it is current (docs/design.md §2, checked by results.Row.Check),
// live from the same row otherwise. The stored properties are decoded only
// when some flag is answered live.
func (s *Service) evaluate(ctx context.Context, ts *teamState, req *wire.FlagsRequest, sc *scratch) evaluation {
	now := s.cfg.Now()
	c := &flags.Context{DistinctID: req.DistinctID, DeviceID: req.DeviceID, Now: now}
	ev := evaluation{path: "row"}

	rctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()

	// Which groups to read: named in the request, with a type the team's
	// flags read.
	var reads []groupRead
	for name, key := range req.Groups {
		idx, ok := ts.set.GroupTypeIndex(name)
		if !ok || key == "" {
			continue
		}
		reads = append(reads, groupRead{idx: idx, name: name, key: key})
	}
	var wg sync.WaitGroup
	for i := range reads {
		if !ts.needsGroup(reads[i].idx) {
			continue
		}
		wg.Add(1)
		go func(g *groupRead) {
			defer wg.Done()
			grp, err := s.cfg.Store.GetGroup(rctx, ts.team.ID, g.idx, g.key)
			if err == nil {
				g.props, g.results, g.version, g.revision, g.found = grp.Properties, grp.Results, grp.Version, grp.Revision, true
			} else if !errors.Is(err, store.ErrNotFound) {
				g.err = err
			}
		}(&reads[i])
	}
	row, rowErr := s.cfg.Store.GetRow(rctx, ts.team.ID, req.DistinctID)
	wg.Wait()

	storeFailed := rowErr != nil && !errors.Is(rowErr, store.ErrNotFound)
	switch {
	case storeFailed:
		ev.path = "partial"
		c.Partial = true
		s.m.storeErrors.Inc()
		s.cfg.Logger.Debug("row read failed; answering from the request alone", "team", ts.team.ID, "err", rowErr)
	case rowErr != nil:
		ev.path = "no-row"
	}
	for _, g := range reads {
		if g.err != nil {
			c.Partial = true
			storeFailed = true
		}
	}

	// Which flags, and which of them the stored results answer.
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
	useStored := !s.cfg.LiveOnly && !sc.forceLive && !c.Partial && rowErr == nil
	if useStored {
		sc.row.Load(row.Results, row.PersonVersion, row.Revision, req.DistinctID, "distinct_id")
		sc.groups = resize(sc.groups, len(ts.groupSlots))
		for gi := range sc.groups {
			sc.groups[gi].Load(nil, 0, 0, "", "")
		}
		for _, g := range reads {
			if gi, ok := ts.groupSlot(g.idx); ok && g.found {
				sc.groups[gi].Load(g.results, g.version, g.revision, g.key, "$group_key")
			}
		}
	}
	repairRow := false
	var repairGroups uint64 // a bit per group slot
	sc.misses = sc.misses[:0]
	for i := range n {
		if !sc.want[i] {
			continue
		}
		fp := &ts.plan.Flags[i]
		src := results.Absent
		var e *results.Entry
		switch {
		case !fp.Precomputable:
			src = results.NotPrecomputable
		case s.cfg.LiveOnly || sc.forceLive:
			src = results.Forced
		case !useStored:
		case fp.Subject == results.Persons:
			e, src = sc.row.Check(fp, now, req.PersonProperties)
			repairRow = repairRow || src.Stale()
		default:
			name, _ := ts.set.GroupTypeName(fp.Subject)
			gi, ok := ts.groupSlot(fp.Subject)
			if !ok || req.Groups[name] == "" {
				src = results.NoSubject
				break
			}
			g := &sc.groups[gi]
			if g.Key == "" {
				break // named in the request, not in the store: Absent
			}
			e, src = g.Check(fp, now, req.GroupProperties[name])
			if src.Stale() {
				repairGroups |= 1 << gi
			}
		}
		if src == results.Stored {
			r, ok := ts.set.Expand(fp.Key, e.Compact)
			if ok {
				sc.stored[i] = r
			} else { // a current stamp makes this impossible; stay exact anyway
				src = results.StaleFlag
			}
		}
		sc.source[i] = src
		if src != results.Stored {
			sc.misses = append(sc.misses, fp.Key)
		}
	}

	// Live evaluation of the misses, from the same row.
	sc.live = sc.live[:0]
	if len(sc.misses) > 0 {
		c.Cohorts = &cohortSource{ctx: ctx, cat: s.cfg.Catalog, team: ts.team.ID, distinctID: req.DistinctID}
		if sc.props == nil {
			sc.props = map[string]any{}
		}
		props := sc.props
		if rowErr == nil {
			if err := wire.DecodeProperties(row.Properties, props); err != nil {
				ev.path = "partial"
				c.Partial = true
				s.m.storeErrors.Inc()
			}
		}
		for k, v := range req.PersonProperties {
			props[k] = v // request overrides win
		}
		c.PersonProperties = props
		for _, g := range reads {
			gp := map[string]any{}
			if g.props != nil {
				_ = wire.DecodeProperties(g.props, gp)
			}
			for k, v := range req.GroupProperties[g.name] {
				gp[k] = v
			}
			for len(c.Groups) <= g.idx {
				c.Groups = append(c.Groups, flags.Group{})
			}
			c.Groups[g.idx] = flags.Group{Key: g.key, Properties: gp}
		}
		sc.live = ts.set.AppendEvaluate(sc.live, c, sc.misses)
	}

	// Merge in evaluation order: AppendEvaluate returns the live results
	// in that order too.
	out := sc.results[:0]
	li := 0
	sc.sources = sc.sources[:0]
	for i := range n {
		if !sc.want[i] {
			continue
		}
		src := sc.source[i]
		if src == results.Stored {
			out = append(out, sc.stored[i])
		} else {
			if li >= len(sc.live) || sc.live[li].Key != ts.keys[i] {
				continue
			}
			out = append(out, sc.live[li])
			li++
		}
		ts.counters[i][src].Inc()
		if sc.debug {
			sc.sources = append(sc.sources, src)
		}
	}
	sc.results = out
	if s.cfg.Repair != nil {
		if repairRow {
			s.cfg.Repair(ts.team.ID, results.Persons, req.DistinctID)
		}
		for _, g := range reads {
			if gi, ok := ts.groupSlot(g.idx); ok && repairGroups&(1<<gi) != 0 {
				s.cfg.Repair(ts.team.ID, g.idx, g.key)
			}
		}
	}

	ev.records = sc.records[:0]
	keep := sc.sources[:0]
	for i := range out {
		r := &out[i]
		meta := ts.meta[r.Key]
		if req.EvaluationRuntime != "" && meta.runtime != "" && meta.runtime != "all" && meta.runtime != req.EvaluationRuntime {
			continue
		}
		rec := wire.Record{Key: r.Key, Enabled: r.Enabled, Variant: r.Variant, Reason: r.Reason, ID: r.FlagID,
			Version: r.Version, Payload: r.Payload, Description: meta.description, HasExperiment: meta.hasExperiment}
		if r.Err != nil {
			rec.Failed = true
			ev.errors = true
			if ee, ok := errors.AsType[*flags.EvalError](r.Err); ok {
				rec.ErrorCode = ee.Code
			}
		}
		ev.records = append(ev.records, rec)
		if sc.debug {
			keep = append(keep, sc.sources[i])
		}
	}
	sc.records = ev.records
	if sc.debug {
		ev.sources = keep
	}
	if storeFailed {
		ev.errors = true
	}
	s.m.evaluations.WithLabelValues(ev.path).Inc()
	return ev
}

// resize returns s with length n, reusing its memory.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// cohortSource answers static cohort membership from the catalog.
type cohortSource struct {
	ctx        context.Context
	cat        Definitions
	team       int64
	distinctID string
}

func (c *cohortSource) InCohort(id int64) (bool, time.Time, error) {
	ok, err := c.cat.IsCohortMember(c.ctx, c.team, id, c.distinctID)
	if errors.Is(err, catalog.ErrNotFound) {
		return false, time.Time{}, flags.ErrCohortNotFound
	}
	return ok, time.Time{}, err
}
