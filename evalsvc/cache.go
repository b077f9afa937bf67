package evalsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/singleflight"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/usage"
)

// flagMeta is what a response needs of a flag beyond its result.
type flagMeta struct {
	description   string
	hasExperiment bool
	runtime       string
	// pre is the flag's definition-only v2 JSON.
	pre *wire.Prerendered
}

// servedTo reports whether a request of evaluation runtime rt (empty: any)
// is answered this flag.
func (m *flagMeta) servedTo(rt string) bool {
	return rt == "" || m.runtime == "" || m.runtime == "all" || m.runtime == rt
}

// teamState is one team's entry in the HyperCache: immutable once built.
type teamState struct {
	team catalog.Team
	set  *flags.Set
	meta map[string]flagMeta
	keys []string // every flag key, in evaluation order
	// usage is keys as usage statistics count a request answering every
	// flag.
	usage *usage.Layout
	// metaAt is meta in keys order: a response reads it by flag index,
	// without hashing each key.
	metaAt   []flagMeta
	groupsFn map[int]bool
	// payload and payloadNoCohorts are the local-evaluation payloads, with
	// and without send_cohorts.
	payload, payloadNoCohorts *wire.Definitions
	compileErr                error
	loadedAt                  time.Time
	// plan says which flags have stored results, in keys order.
	plan *results.Plan
	// answers counts each flag's answers by source (keys order); set by
	// Service.loadTeam, shared with the team's next states.
	answers []flagCounts
	// groupSlots lists the group types some stored flag lives on; a
	// request's stored group results are kept by slot.
	groupSlots []int
	// digest identifies the snapshot the state was built from
	// (snapshotDigest): a reload that reads the same one keeps the state.
	digest uint64
}

// snapshotDigest hashes everything of a snapshot a teamState is built
// from: the team and its definitions. The periodic reload reads every
// loaded team again each ReloadInterval; compiling 54 unchanged flags
// held the only P of a one-core node for 16–48 ms at a time
// (BENCHMARKS.md), hashing them costs a fraction of that.
func snapshotDigest(snap catalog.TeamSnapshot) (uint64, error) {
	h := xxhash.New()
	if err := json.NewEncoder(h).Encode(struct {
		Team        catalog.Team
		Definitions flags.Definitions
	}{snap.Team, snap.Definitions}); err != nil {
		return 0, fmt.Errorf("evalsvc: digest of team %d: %w", snap.Team.ID, err)
	}
	return h.Sum64(), nil
}

// groupSlot returns the slot of a group type with stored flags.
func (ts *teamState) groupSlot(gt int) (int, bool) {
	for i, g := range ts.groupSlots {
		if g == gt {
			return i, true
		}
	}
	return 0, false
}

// needsGroup reports whether some flag of the team reads group type gt.
func (ts *teamState) needsGroup(gt int) bool { return ts.groupsFn[gt] }

func buildTeamState(snap catalog.TeamSnapshot, now time.Time, opt results.Options) (*teamState, error) {
	defs := snap.Definitions
	set, cerr := flags.Compile(defs)
	ts := &teamState{team: snap.Team, set: set, compileErr: cerr, loadedAt: now,
		meta: make(map[string]flagMeta, len(defs.Flags)), groupsFn: map[int]bool{}}
	for _, f := range defs.Flags {
		if f.Deleted {
			continue
		}
		ts.meta[f.Key] = flagMeta{description: f.Description, hasExperiment: f.HasExperiment, runtime: f.EvaluationRuntime,
			pre: wire.Prerender(f.Key, f.ID, f.Version, f.Description, f.HasExperiment)}
	}
	ts.keys = set.Keys()
	ts.usage = usage.NewLayout(snap.Team.ID, ts.keys)
	ts.metaAt = make([]flagMeta, len(ts.keys))
	for i, k := range ts.keys {
		ts.metaAt[i] = ts.meta[k]
	}
	ts.plan = results.NewPlan(defs, set, opt)
	ts.groupSlots = ts.plan.GroupTypes()
	if len(ts.groupSlots) > 64 {
		ts.groupSlots = ts.groupSlots[:64] // flags of further types answer live
	}
	for _, k := range ts.keys {
		info, _ := set.Info(k)
		for _, gt := range info.GroupTypes {
			ts.groupsFn[gt] = true
		}
		for gt := range info.GroupProperties {
			ts.groupsFn[gt] = true
		}
	}
	var err error
	if ts.payload, err = wire.BuildDefinitions(defs, set, true); err != nil {
		return nil, err
	}
	if ts.payloadNoCohorts, err = wire.BuildDefinitions(defs, set, false); err != nil {
		return nil, err
	}
	return ts, nil
}

// hyperCache holds every loaded team. Reads are lock-free: the map is
// replaced, never modified.
type hyperCache struct {
	teams atomic.Pointer[map[int64]*teamState]
	mu    struct {
		sync.Mutex // serializes map replacement
		// changed holds, per watched team, a channel closed (and dropped)
		// when the team's entry is next replaced or removed.
		changed map[int64]chan struct{}
	}
	flight singleflight.Group
	load   func(ctx context.Context, team int64) (*teamState, error)
}

func newHyperCache(load func(ctx context.Context, team int64) (*teamState, error)) *hyperCache {
	c := &hyperCache{load: load}
	empty := map[int64]*teamState{}
	c.teams.Store(&empty)
	c.mu.changed = map[int64]chan struct{}{}
	return c
}

// changes returns a channel closed when the team's entry is next replaced
// (a change notice, a periodic reload) or removed. Take it before reading
// the entry, so that no replacement falls between the two.
func (c *hyperCache) changes(team int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.mu.changed[team]
	if !ok {
		ch = make(chan struct{})
		c.mu.changed[team] = ch
	}
	return ch
}

// errTeamGone says the catalog has no such team.
var errTeamGone = errors.New("evalsvc: team not found")

// current returns the team's loaded state, if any.
func (c *hyperCache) current(team int64) (*teamState, bool) {
	ts, ok := (*c.teams.Load())[team]
	return ts, ok
}

// get returns the team's state, loading it on first use.
func (c *hyperCache) get(ctx context.Context, team int64) (*teamState, error) {
	if ts, ok := (*c.teams.Load())[team]; ok {
		return ts, nil
	}
	return c.refresh(ctx, team)
}

// refresh reloads one team (concurrent refreshes of a team share one load).
func (c *hyperCache) refresh(ctx context.Context, team int64) (*teamState, error) {
	v, err, _ := c.flight.Do(fmt.Sprint(team), func() (any, error) {
		ts, err := c.load(ctx, team)
		if errors.Is(err, errTeamGone) {
			c.put(team, nil)
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		c.put(team, ts)
		return ts, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*teamState), nil
}

func (c *hyperCache) put(team int64, ts *teamState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.teams.Load()
	if cur, ok := old[team]; ok && ts != nil && cur == ts {
		return // kept as it was: nothing changed, nobody to wake
	}
	next := make(map[int64]*teamState, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if ts == nil {
		delete(next, team)
	} else {
		next[team] = ts
	}
	c.teams.Store(&next)
	if ch, ok := c.mu.changed[team]; ok {
		close(ch)
		delete(c.mu.changed, team)
	}
}

func (c *hyperCache) loadedTeams() []int64 {
	m := *c.teams.Load()
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// keyCache caches key lookups by hash for a short TTL.
type keyCache struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]keyEntry
}

type keyEntry struct {
	key     catalog.APIKey
	found   bool
	expires time.Time
}

func (k *keyCache) get(hash []byte, now time.Time) (keyEntry, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[string(hash)]
	if !ok || now.After(e.expires) {
		return keyEntry{}, false
	}
	return e, true
}

func (k *keyCache) put(hash []byte, e keyEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) > 100_000 {
		k.m = map[string]keyEntry{} // crude bound; entries are cheap to refetch
	}
	k.m[string(hash)] = e
}

func (k *keyCache) flush() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m = map[string]keyEntry{}
}

// evict drops the entries of the key with this id.
func (k *keyCache) evict(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for h, e := range k.m {
		if e.found && e.key.ID == id {
			delete(k.m, h)
		}
	}
}
