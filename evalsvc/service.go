package evalsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
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
	ts, err := buildTeamState(snap, s.cfg.Now())
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
		sub, err := nc.Subscribe("vexil.changes.>", func(msg *nats.Msg) {
			var n struct {
				Team int64  `json:"team_id"`
				Kind string `json:"kind"`
			}
			if err := json.Unmarshal(msg.Data, &n); err != nil || n.Team == 0 {
				var team int64
				if _, err := fmt.Sscanf(msg.Subject, "vexil.changes.%d", &team); err != nil {
					return
				}
				n.Team = team
			}
			if n.Kind == "key" || n.Kind == "team" {
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
}

// scratch is the reusable memory of one request: results, records and the
// response buffer, pooled so a request allocates little beyond its inputs.
type scratch struct {
	results []flags.Result
	records []wire.Record
	buf     []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.buf) > 1<<20 {
		return // an outsized response; let it go
	}
	clear(sc.results) // drop references to payloads and errors
	clear(sc.records)
	sc.results, sc.records, sc.buf = sc.results[:0], sc.records[:0], sc.buf[:0]
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

// evaluate runs one request against a team: the row read (and the group
// reads) under StoreTimeout, then every requested flag.
func (s *Service) evaluate(ctx context.Context, ts *teamState, req *wire.FlagsRequest, sc *scratch) evaluation {
	c := &flags.Context{DistinctID: req.DistinctID, DeviceID: req.DeviceID, Now: s.cfg.Now(),
		Cohorts: &cohortSource{ctx: ctx, cat: s.cfg.Catalog, team: ts.team.ID, distinctID: req.DistinctID}}
	ev := evaluation{path: "row"}

	rctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()

	// Which groups to read: named in the request, with a type the team's
	// flags read.
	type groupRead struct {
		idx   int
		name  string
		key   string
		props []byte
		err   error
	}
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
				g.props = grp.Properties
			} else if !errors.Is(err, store.ErrNotFound) {
				g.err = err
			}
		}(&reads[i])
	}
	row, rowErr := s.cfg.Store.GetRow(rctx, ts.team.ID, req.DistinctID)
	wg.Wait()

	storeFailed := rowErr != nil && !errors.Is(rowErr, store.ErrNotFound)
	props := map[string]any{}
	switch {
	case storeFailed:
		ev.path = "partial"
		c.Partial = true
		s.m.storeErrors.Inc()
		s.cfg.Logger.Debug("row read failed; answering from the request alone", "team", ts.team.ID, "err", rowErr)
	case rowErr == nil:
		if err := decodeProps(row.Properties, props); err != nil {
			ev.path = "partial"
			c.Partial = true
			s.m.storeErrors.Inc()
		}
	default:
		ev.path = "no-row"
	}
	for k, v := range req.PersonProperties {
		props[k] = v // request overrides win
	}
	c.PersonProperties = props
	for _, g := range reads {
		gp := map[string]any{}
		if g.err != nil {
			c.Partial = true
			storeFailed = true
		} else if g.props != nil {
			_ = decodeProps(g.props, gp)
		}
		for k, v := range req.GroupProperties[g.name] {
			gp[k] = v
		}
		for len(c.Groups) <= g.idx {
			c.Groups = append(c.Groups, flags.Group{})
		}
		c.Groups[g.idx] = flags.Group{Key: g.key, Properties: gp}
	}

	results := ts.set.AppendEvaluate(sc.results[:0], c, req.FlagKeys)
	sc.results = results
	ev.records = sc.records[:0]
	for i := range results {
		r := &results[i]
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
	}
	sc.records = ev.records
	if storeFailed {
		ev.errors = true
	}
	s.m.evaluations.WithLabelValues(ev.path).Inc()
	return ev
}

// decodeProps decodes a stored JSON object into m, numbers as json.Number.
func decodeProps(b []byte, m map[string]any) error {
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(&m)
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
