package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// personEntry is one person of the overlay.
type personEntry struct {
	// p is the state read or changed; nil when the store has none and no
	// message of the batch names it (DeriveRow then sees an empty person).
	p     *store.Person
	dirty bool // changed by the batch: write it, fan it out
	// created is set when the store had no record of the person before
	// this batch: then it has no index entries either (see ensurePerson).
	created bool
}

// mappingEntry is one distinct id of the overlay.
type mappingEntry struct {
	m        store.Mapping // zero when the store has none
	loaded   bool          // m was read from the store
	dirty    bool          // changed by the batch: write it
	rowDirty bool          // its row must be derived again
}

// overlay is the state one batch reads and changes: what was read from the
// store, updated in place as the batch's messages are applied in order, and
// which keys changed. It becomes the batch's store writes.
type overlay struct {
	st store.Store
	// prev is the overlay of the batch before, whose writes may not have
	// reached the store yet: reads look there first (nil for none).
	prev *overlay
	// atomic is Config.AtomicStore.
	atomic bool
	// readConcurrency bounds concurrent store reads.
	readConcurrency int
	// cache is the index cache (nil when disabled); read only here.
	cache *indexCache
	// indexAfter holds the whole index of every changed person after
	// this batch (for the cache).
	indexAfter []personIndex

	persons      map[store.PersonKey]*personEntry
	dirtyPersons []store.PersonKey // in order of first change
	mappings     map[store.DistinctKey]*mappingEntry
	// dirtyMappings and rows list the mappings to write and the rows to
	// derive, in order of first change.
	dirtyMappings []store.DistinctKey
	rows          []store.DistinctKey
	// unloaded lists mapping entries created before their read.
	unloaded []store.DistinctKey

	// indexOps are the person → distinct id index changes, in order;
	// indexNet is their net effect (true: added) and indexAdded the ids
	// added per person (some maybe removed again: check indexNet).
	indexOps     []store.IndexOp
	indexNet     map[store.IndexEntry]bool
	indexAdded   map[store.PersonKey][]string
	indexRemoved map[store.PersonKey][]string

	groups      map[store.GroupKey]*store.Group
	dirtyGroups []store.GroupKey
	// events is Config.Events and now the batch's clock (Unix seconds);
	// counters holds the rows' behavioural counters read or changed, and
	// dirtyCounters the ones to write, in order of first change.
	events func(team int64) *flags.Set
	now    int64
	// pairStarts is Config.PairStarts, next the sequence after the
	// batch's last (a pair first seen in this batch counts live from
	// there), and teamEvents each team's set and pair starts, taken once
	// per batch so that all its events count under one set.
	pairStarts    PairStarts
	next          uint64
	teamEvents    map[int64]*teamEvents
	counters      map[store.DistinctKey]*counterEntry
	dirtyCounters []store.DistinctKey
	// groupCounters and dirtyGroupCounters are the same for group rows
	// (group-aggregated behaviour).
	groupCounters      map[store.GroupKey]*counterEntry
	dirtyGroupCounters []store.GroupKey
	// groupTypes holds the stored names per team (read once per team) and
	// dirtyGroupTypes the names the batch changed.
	groupTypes      map[int64]map[int]string
	dirtyGroupTypes map[[2]int64]string
}

// personIndex is the index of one person: its distinct ids, sorted.
type personIndex struct {
	pk  store.PersonKey
	ids []string
}

// write is a prepared batch: the store writes of a batch of messages, as
// one store.Batch (derived is empty) or, for a store whose Apply is not
// atomic, as derived writes to apply before the sources.
type write struct {
	derived store.Batch // rows and index; applied first
	sources store.Batch // persons, mappings, groups, group types
}

// committed lists the row and group keys w writes.
func (w *write) committed() Committed {
	var c Committed
	for _, b := range []*store.Batch{&w.derived, &w.sources} {
		for _, op := range b.Rows() {
			c.Rows = append(c.Rows, store.DistinctKey{Team: op.Team, DistinctID: op.DistinctID})
		}
		for _, g := range b.Groups() {
			c.Groups = append(c.Groups, store.GroupKey{Team: g.Team, TypeIndex: g.TypeIndex, Key: g.Key})
		}
		for _, op := range b.GroupCounters() {
			if !slices.Contains(c.Groups, op.Group) {
				c.Groups = append(c.Groups, op.Group)
			}
		}
	}
	return c
}

// prepare applies the valid messages of b, in order, to an overlay of the
// state they touch and returns the store writes and the overlay. prev is
// the previous batch's overlay, whose writes may still be in flight. A
// message the convergence logic refuses becomes poison
// (ingest.ReasonStoreRejected). Errors are store read failures (transient:
// the batch is retried).
//
// The index cache is updated here, before the write: the next batch must
// see this one's index changes, and a write that never lands ends the run
// (the cache is emptied when a run starts).
func (p *Projector) prepare(ctx context.Context, b *batch, prev *overlay) (*write, *overlay, error) {
	n := len(b.items)
	if prev != nil {
		prev.prev = nil // only one batch back is ever needed
	}
	ov := &overlay{
		st:              p.cfg.Store,
		prev:            prev,
		atomic:          p.cfg.AtomicStore,
		readConcurrency: p.cfg.ReadConcurrency,
		cache:           p.cache,
		persons:         make(map[store.PersonKey]*personEntry, n),
		mappings:        make(map[store.DistinctKey]*mappingEntry, n),
		indexNet:        make(map[store.IndexEntry]bool, n),
		indexAdded:      make(map[store.PersonKey][]string, n),
		indexRemoved:    map[store.PersonKey][]string{},
		groups:          map[store.GroupKey]*store.Group{},
		groupTypes:      map[int64]map[int]string{},
		dirtyGroupTypes: map[[2]int64]string{},
		events:          p.cfg.Events,
		now:             p.cfg.Now().Unix(),
		counters:        map[store.DistinctKey]*counterEntry{},
		groupCounters:   map[store.GroupKey]*counterEntry{},
		pairStarts:      p.cfg.PairStarts,
		teamEvents:      map[int64]*teamEvents{},
	}
	for i := range b.items {
		ov.next = max(ov.next, b.items[i].seq+1)
	}
	if err := ov.prefetch(ctx, b); err != nil {
		return nil, nil, err
	}
	for i := range b.items {
		it := &b.items[i]
		if it.env == nil {
			continue
		}
		if err := ov.apply(ctx, it.env, it.seq); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				it.env, it.poison = nil, &ingest.Error{Reason: ingest.ReasonStoreRejected, Text: err.Error()}
				continue
			}
			return nil, nil, err
		}
	}
	if b.merge != nil {
		if err := ov.merge(ctx, b.merge); err != nil {
			return nil, nil, err
		}
	}
	w := &write{}
	derived := &w.derived
	if p.cfg.AtomicStore {
		derived = &w.sources
	}
	if err := ov.finish(ctx, derived, &w.sources); err != nil {
		return nil, nil, err
	}
	if p.cache != nil {
		for _, pi := range ov.indexAfter {
			p.cache.put(pi.pk, pi.ids)
		}
		for _, op := range ov.indexOps {
			// The changed persons' entries are whole above.
			if e, ok := ov.persons[store.PersonKey{Team: op.Entry.Team, ID: op.Entry.PersonID}]; !ok || !e.dirty {
				p.cache.apply(op)
			}
		}
	}
	return w, ov, nil
}

// commit writes w durably: the derived writes first, then the sources (see
// Config.AtomicStore). A retry after a failure writes both again; every
// write is idempotent.
func (p *Projector) commit(ctx context.Context, w *write) error {
	for _, b := range []*store.Batch{&w.derived, &w.sources} {
		if b.Len() == 0 {
			continue
		}
		if err := p.cfg.Store.Apply(ctx, b); err != nil {
			return fmt.Errorf("projector: store apply: %w", err)
		}
	}
	return nil
}

// prefetch reads, in bulk, the persons and mappings the batch names.
func (ov *overlay) prefetch(ctx context.Context, b *batch) error {
	var pkeys []store.PersonKey
	addP := func(team int64, id string) {
		k := store.PersonKey{Team: team, ID: id}
		if _, ok := ov.persons[k]; !ok {
			ov.persons[k] = &personEntry{}
			pkeys = append(pkeys, k)
		}
	}
	addD := func(team int64, ids []string) {
		for _, id := range ids {
			ov.mappingEntry(store.DistinctKey{Team: team, DistinctID: id})
		}
	}
	for i := range b.items {
		switch k := b.items[i].env.GetKind().(type) {
		case *ingestv1.Envelope_PersonUpdate:
			addP(k.PersonUpdate.Team, k.PersonUpdate.PersonId)
			addD(k.PersonUpdate.Team, k.PersonUpdate.DistinctIds)
		case *ingestv1.Envelope_PersonMerge:
			addP(k.PersonMerge.Team, k.PersonMerge.PersonId)
			addD(k.PersonMerge.Team, k.PersonMerge.DistinctIds)
		case *ingestv1.Envelope_PersonDelete:
			addP(k.PersonDelete.Team, k.PersonDelete.PersonId)
		}
	}
	if err := ov.loadPersons(ctx, pkeys); err != nil {
		return err
	}
	return ov.loadMappings(ctx)
}

// loadPersons reads keys, whose entries exist, from the previous batch's
// overlay or the store.
func (ov *overlay) loadPersons(ctx context.Context, keys []store.PersonKey) error {
	if ov.prev != nil {
		rest := keys[:0:0]
		for _, k := range keys {
			if e, ok := ov.prev.persons[k]; ok && e.p != nil {
				// A copy: the previous batch's write holds the original.
				ov.persons[k].p = e.p.Clone()
				continue
			}
			rest = append(rest, k)
		}
		keys = rest
	}
	return readChunks(ctx, ov.readConcurrency, keys, ov.st.GetPersons, func(k store.PersonKey, p *store.Person, ok bool) {
		ov.persons[k].p = p // nil when absent
	}, "persons")
}

// mappingEntry returns the entry of dk, creating it unloaded.
func (ov *overlay) mappingEntry(dk store.DistinctKey) *mappingEntry {
	e, ok := ov.mappings[dk]
	if !ok {
		e = &mappingEntry{}
		ov.mappings[dk] = e
		ov.unloaded = append(ov.unloaded, dk)
	}
	return e
}

// loadMappings reads every unloaded mapping entry from the previous
// batch's overlay or the store.
func (ov *overlay) loadMappings(ctx context.Context) error {
	keys := ov.unloaded
	ov.unloaded = nil
	if ov.prev != nil {
		rest := keys[:0:0]
		for _, k := range keys {
			if e, ok := ov.prev.mappings[k]; ok && e.loaded {
				ov.mappings[k].m, ov.mappings[k].loaded = e.m, true
				continue
			}
			rest = append(rest, k)
		}
		keys = rest
	}
	return readChunks(ctx, ov.readConcurrency, keys, ov.st.GetMappings, func(k store.DistinctKey, m store.Mapping, ok bool) {
		e := ov.mappings[k]
		e.m, e.loaded = m, true // a zero Mapping when absent
	}, "mappings")
}

// minChunk is the smallest number of keys worth a concurrent read.
const minChunk = 64

// readChunks reads keys with get, in up to conc concurrent chunks, and
// calls put for every key (ok false when absent), in keys order.
func readChunks[K comparable, V any](ctx context.Context, conc int, keys []K, get func(context.Context, []K) (map[K]V, error), put func(K, V, bool), what string) error {
	if len(keys) == 0 {
		return nil
	}
	n := min(conc, (len(keys)+minChunk-1)/minChunk)
	results := make([]map[K]V, n)
	size := (len(keys) + n - 1) / n
	if n == 1 {
		var err error
		if results[0], err = get(ctx, keys); err != nil {
			return fmt.Errorf("projector: read %s: %w", what, err)
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		for i := range n {
			chunk := keys[i*size : min(len(keys), (i+1)*size)]
			g.Go(func() error {
				var err error
				results[i], err = get(gctx, chunk)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("projector: read %s: %w", what, err)
		}
	}
	for i, k := range keys {
		v, ok := results[i/size][k]
		put(k, v, ok)
	}
	return nil
}

// person returns the overlay's entry of a person named by a message,
// creating (and marking for writing) an empty person when the store has
// none. Every person a message names thus has a record, and a person with
// index entries always has one: written in the same batch as the entries
// (an atomic store), it lets finish skip reading the index of a person
// that had no record before the batch. The records of persons named only
// in losing assertions are written too, so that which records exist does
// not depend on the order of delivery.
func (ov *overlay) person(ctx context.Context, k store.PersonKey) (*personEntry, error) {
	e, ok := ov.persons[k]
	if !ok {
		e = &personEntry{}
		ov.persons[k] = e
		if err := ov.loadPersons(ctx, []store.PersonKey{k}); err != nil {
			return nil, err
		}
	}
	if e.p == nil {
		e.p, e.created = store.NewPerson(k.Team, k.ID), true
		ov.markPerson(k, e)
	}
	return e, nil
}

func (ov *overlay) markPerson(k store.PersonKey, e *personEntry) {
	if !e.dirty {
		e.dirty = true
		ov.dirtyPersons = append(ov.dirtyPersons, k)
	}
}

// mapping returns the loaded entry of dk.
func (ov *overlay) mapping(ctx context.Context, dk store.DistinctKey) (*mappingEntry, error) {
	e := ov.mappingEntry(dk)
	if !e.loaded {
		if err := ov.loadMappings(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (ov *overlay) markRow(dk store.DistinctKey, e *mappingEntry) {
	if !e.rowDirty {
		e.rowDirty = true
		ov.rows = append(ov.rows, dk)
	}
}

// apply applies one valid message to the overlay.
func (ov *overlay) apply(ctx context.Context, env *ingestv1.Envelope, seq uint64) error {
	switch k := env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		m := k.PersonUpdate
		pk := store.PersonKey{Team: m.Team, ID: m.PersonId}
		e, err := ov.person(ctx, pk)
		if err != nil {
			return err
		}
		changed, err := e.p.ApplyUpdate(store.PersonUpdate{
			Version: m.GetVersion(), Set: jsonValues(m.Set), SetOnce: jsonValues(m.SetOnce), Unset: m.Unset,
		})
		if err != nil {
			return err
		}
		if changed {
			ov.markPerson(pk, e)
		}
		return ov.assert(ctx, m.Team, m.PersonId, m.DistinctIds, m.GetVersion())
	case *ingestv1.Envelope_PersonMerge:
		m := k.PersonMerge
		if _, err := ov.person(ctx, store.PersonKey{Team: m.Team, ID: m.PersonId}); err != nil {
			return err
		}
		return ov.assert(ctx, m.Team, m.PersonId, m.DistinctIds, m.GetVersion())
	case *ingestv1.Envelope_PersonDelete:
		m := k.PersonDelete
		pk := store.PersonKey{Team: m.Team, ID: m.PersonId}
		e, err := ov.person(ctx, pk)
		if err != nil {
			return err
		}
		if e.p.ApplyDelete(m.GetVersion()) {
			ov.markPerson(pk, e)
		}
		return nil
	case *ingestv1.Envelope_GroupUpdate:
		m := k.GroupUpdate
		gk := store.GroupKey{Team: m.Team, TypeIndex: int(m.GroupTypeIndex), Key: m.GroupKey}
		g, err := ov.group(ctx, gk)
		if err != nil {
			return err
		}
		changed, err := g.ApplyUpdate(store.GroupUpdate{Version: m.GetVersion(), Set: jsonValues(m.Set), Unset: m.Unset})
		if err != nil {
			return err
		}
		if changed && !slices.Contains(ov.dirtyGroups, gk) {
			ov.dirtyGroups = append(ov.dirtyGroups, gk)
		}
		return nil
	case *ingestv1.Envelope_GroupTypeMapping:
		m := k.GroupTypeMapping
		if err := store.CheckTypeIndex(int(m.GroupTypeIndex)); err != nil {
			return err
		}
		names, err := ov.teamGroupTypes(ctx, m.Team)
		if err != nil {
			return err
		}
		idx := int(m.GroupTypeIndex)
		if name := store.MergeGroupTypeName(names[idx], m.Name); name != names[idx] {
			names[idx] = name
			ov.dirtyGroupTypes[[2]int64{m.Team, int64(idx)}] = name
		}
		return nil
	case *ingestv1.Envelope_Event:
		return ov.applyEvent(ctx, k.Event, seq)
	}
	return fmt.Errorf("%w: no message", store.ErrInvalid)
}

// applyEvent counts an event into the behavioural counters of its
// distinct id's row (package flags/counters), for the pairs its team's
// cohorts track, in the same overlay: the counters land in the batch's
// durable write (store.Batch.SetCounters) and are acknowledged with it.
// An event no pair tracks is dropped before its properties are decoded.
// Counting is idempotent: the row keeps the ids of recent events (see
// counters.Add), so a redelivery, a duplicate or a reordering counts once.
// A distinct id without a person (no visible row, none made by this batch
// or the one before) is not counted.
//
// With Config.PairStarts, a pair counts only events at or after its start
// sequence: the ones before are the backfill's (see PairStarts).
func (ov *overlay) applyEvent(ctx context.Context, ev *ingestv1.Event, seq uint64) error {
	if ov.events == nil {
		return nil
	}
	te, err := ov.teamSet(ctx, ev.Team)
	if err != nil {
		return err
	}
	set := te.set
	if set == nil || !set.TracksEvent(ev.Event) {
		return nil
	}
	props, err := eventProperties(ev.Properties, set.EventPropertyKeys(ev.Event))
	if err != nil {
		return err
	}
	at := ev.Timestamp.AsTime()
	matched := set.MatchEvent(ev.Event, props, at, nil)
	if len(matched) == 0 {
		return nil
	}
	if err := ov.countGroups(ctx, ev, te, matched, seq); err != nil {
		return err
	}
	pairs := matched
	if te.starts != nil && seq > 0 {
		pairs = slices.DeleteFunc(pairs, func(id uint64) bool { return seq < te.starts[id] })
	}
	if len(pairs) == 0 {
		return nil
	}
	dk := store.DistinctKey{Team: ev.Team, DistinctID: ev.DistinctId}
	ce, err := ov.counterRow(ctx, dk)
	if err != nil || ce == nil {
		return err
	}
	if ce.row.Add(ev.Uuid, at.Unix(), pairs, ov.now, set.TracksPair) == counters.Counted && !ce.dirty {
		ce.dirty = true
		ov.dirtyCounters = append(ov.dirtyCounters, dk)
	}
	return nil
}

// maxEventGroups bounds the entries of an event's $groups read: PostHog
// has at most 5 group types.
const maxEventGroups = 16

// countGroups counts the event on the group rows of its $groups, for the
// group types whose group-aggregated conditions read one of matched
// (Set.GroupEventPairs), with the rules of a person's row: the same
// counters, idempotence by event id, bucketing and compaction. A group
// that does not exist (no stored record, none made by this batch or the
// one before) is not counted, as a distinct id without a person. With
// pair starts, a pair counts on the rows of a group type from that type's
// own start (groupPairID): a flag may aggregate a pair on companies long
// after persons began counting it.
func (ov *overlay) countGroups(ctx context.Context, ev *ingestv1.Event, te *teamEvents, matched []uint64, seq uint64) error {
	set := te.set
	byType := set.GroupEventPairs()
	for _, g := range eventGroups(ev, set) {
		var mine []uint64
		for _, p := range matched {
			if _, ok := slices.BinarySearch(byType[g.TypeIndex], p); ok &&
				(te.groupStarts == nil || seq == 0 || seq >= te.groupStarts[groupPair{g.TypeIndex, p}]) {
				mine = append(mine, p)
			}
		}
		if len(mine) == 0 {
			continue
		}
		gk := store.GroupKey{Team: ev.Team, TypeIndex: g.TypeIndex, Key: g.Key}
		ce, err := ov.groupCounterRow(ctx, gk)
		if err != nil {
			return err
		}
		if ce == nil {
			continue
		}
		if ce.row.Add(ev.Uuid, ev.Timestamp.AsTime().Unix(), mine, ov.now, groupTracked(byType, g.TypeIndex)) == counters.Counted && !ce.dirty {
			ce.dirty = true
			ov.dirtyGroupCounters = append(ov.dirtyGroupCounters, gk)
		}
	}
	return nil
}

// groupTracked reports the pairs counted on the rows of group type gt.
func groupTracked(byType map[int][]uint64, gt int) func(uint64) bool {
	return func(id uint64) bool {
		_, ok := slices.BinarySearch(byType[gt], id)
		return ok
	}
}

// eventGroup is one group of an event's $groups whose type a
// group-aggregated condition counts events on.
type eventGroup struct {
	TypeIndex int
	Key       string
}

// eventGroups returns the groups of ev's $groups (a JSON object of at
// most maxEventGroups group type names to keys) whose type
// Set.GroupEventPairs names, by type index. Anything else in $groups, or
// a $groups that is no such object, names no group: the event counts on
// the person's row only.
func eventGroups(ev *ingestv1.Event, set *flags.Set) []eventGroup {
	byType := set.GroupEventPairs()
	if len(byType) == 0 {
		return nil
	}
	raw, ok := ev.Properties["$groups"]
	if !ok {
		return nil
	}
	var groups map[string]any
	if err := json.Unmarshal([]byte(raw), &groups); err != nil || len(groups) > maxEventGroups {
		return nil
	}
	var out []eventGroup
	for _, gt := range sortedKeys(byType, cmp.Compare[int]) {
		name, ok := set.GroupTypeName(gt)
		if !ok {
			continue
		}
		if key, ok := groups[name].(string); ok && key != "" {
			out = append(out, eventGroup{gt, key})
		}
	}
	return out
}

// groupCounterRow returns the counters of group gk: this batch's, the
// previous batch's (a copy), or the stored group's. It returns nil when the
// group has no record in the store, this batch or the one before.
func (ov *overlay) groupCounterRow(ctx context.Context, gk store.GroupKey) (*counterEntry, error) {
	if ce, ok := ov.groupCounters[gk]; ok {
		return ce, nil
	}
	if err := store.CheckTypeIndex(gk.TypeIndex); err != nil {
		return nil, nil
	}
	var enc []byte
	found := false
	if ov.prev != nil {
		if ce, ok := ov.prev.groupCounters[gk]; ok {
			enc, found = ce.row.Append(nil), true
		}
	}
	if !found {
		g, err := ov.st.GetGroup(ctx, gk.Team, gk.TypeIndex, gk.Key)
		switch {
		case err == nil:
			enc, found = g.Counters, true
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("projector: read group: %w", err)
		}
	}
	if !found {
		// Made by this batch or the one before (not yet written).
		here := slices.Contains(ov.dirtyGroups, gk)
		if !here && ov.prev != nil {
			here = slices.Contains(ov.prev.dirtyGroups, gk)
		}
		if !here {
			return nil, nil
		}
	}
	r, err := counters.Decode(enc)
	if err != nil {
		r = &counters.Row{} // unreadable counters are replaced
	}
	ce := &counterEntry{row: r}
	ov.groupCounters[gk] = ce
	return ce, nil
}

// teamEvents is a team's set for one batch and, with Config.PairStarts,
// the start sequence of each of its pairs.
type teamEvents struct {
	set    *flags.Set
	starts map[uint64]uint64
	// groupStarts are the starts of the pairs counted on group rows, per
	// group type (Set.GroupEventPairs).
	groupStarts map[groupPair]uint64
}

// groupPair is a pair counted on the rows of a group type.
type groupPair struct {
	typeIndex int
	pair      uint64
}

// teamSet returns team's set for this batch, recording the start of any
// pair not recorded yet as the sequence after the batch.
func (ov *overlay) teamSet(ctx context.Context, team int64) (*teamEvents, error) {
	if te, ok := ov.teamEvents[team]; ok {
		return te, nil
	}
	te := &teamEvents{set: ov.events(team)}
	if te.set != nil && ov.pairStarts != nil {
		te.starts = map[uint64]uint64{}
		for _, p := range te.set.EventPairs() {
			start, err := ov.pairStarts.Start(ctx, team, p.ID, ov.next)
			if err != nil {
				return nil, err
			}
			te.starts[p.ID] = start
		}
		te.groupStarts = map[groupPair]uint64{}
		for gt, pairs := range te.set.GroupEventPairs() {
			for _, p := range pairs {
				start, err := ov.pairStarts.Start(ctx, team, groupPairID(p, gt), ov.next)
				if err != nil {
					return nil, err
				}
				te.groupStarts[groupPair{gt, p}] = start
			}
		}
	}
	ov.teamEvents[team] = te
	return te, nil
}

// counterEntry is one row's counters in the overlay.
type counterEntry struct {
	row   *counters.Row
	dirty bool
}

// counterRow returns the counters of dk's row: this batch's, the previous
// batch's (whose write may be in flight; a copy), or the stored row's. It
// returns nil when the distinct id has no person: no visible row and no
// owner in this batch or the one before.
func (ov *overlay) counterRow(ctx context.Context, dk store.DistinctKey) (*counterEntry, error) {
	if ce, ok := ov.counters[dk]; ok {
		return ce, nil
	}
	var enc []byte
	found := false
	if ov.prev != nil {
		if ce, ok := ov.prev.counters[dk]; ok {
			enc, found = ce.row.Append(nil), true
		}
	}
	if !found {
		row, err := ov.st.GetRow(ctx, dk.Team, dk.DistinctID)
		switch {
		case err == nil:
			enc, found = row.Counters, true
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("projector: read row: %w", err)
		}
	}
	if !found && !ov.owned(dk) {
		return nil, nil
	}
	r, err := counters.Decode(enc)
	if err != nil {
		// Unreadable counters are replaced: counting starts again.
		r = &counters.Row{}
	}
	ce := &counterEntry{row: r}
	ov.counters[dk] = ce
	return ce, nil
}

// owned reports whether this batch or the one before maps dk to a person.
func (ov *overlay) owned(dk store.DistinctKey) bool {
	for o := ov; o != nil; o = o.prev {
		if e, ok := o.mappings[dk]; ok && e.m.PersonID != "" {
			return true
		}
	}
	return false
}

// eventProperties decodes the properties keys of an event (JSON text per
// key) as the engine reads properties: numbers as json.Number. Only the
// keys the team's event filters read are decoded: an event carries dozens
// of properties ($browser, $current_url...) that no filter reads, and
// decoding them was most of an event's cost. Ingest has checked that
// every value is JSON.
func eventProperties(in map[string]string, keys []string) (map[string]any, error) {
	if len(in) == 0 || len(keys) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		v, ok := in[k]
		if !ok {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return nil, fmt.Errorf("%w: event property %q is not JSON", store.ErrInvalid, k)
		}
		out[k] = x
	}
	return out, nil
}

// assert applies mapping assertions distinct id → person at version.
//
// Besides the moves, it keeps the index right after a crash between the
// derived and the source writes of a non-atomic store (Config.AtomicStore):
// a mapping change always puts the owner's entry again (a crashed move may
// have deleted it), and a losing assertion deletes its own entry when the
// distinct id belongs to someone else (a crashed move may have put it).
// Both are no-ops when nothing crashed.
func (ov *overlay) assert(ctx context.Context, team int64, personID string, ids []string, version int64) error {
	for _, id := range ids {
		dk := store.DistinctKey{Team: team, DistinctID: id}
		e, err := ov.mapping(ctx, dk)
		if err != nil {
			return err
		}
		old := e.m.PersonID
		if !e.m.Merge(store.Mapping{Team: team, DistinctID: id, PersonID: personID, Version: version}) {
			if e.m.PersonID != personID {
				ov.index(store.IndexEntry{Team: team, PersonID: personID, DistinctID: id}, false)
			}
			continue
		}
		if !e.dirty {
			e.dirty = true
			ov.dirtyMappings = append(ov.dirtyMappings, dk)
		}
		ov.markRow(dk, e)
		if old != "" && old != e.m.PersonID {
			ov.index(store.IndexEntry{Team: team, PersonID: old, DistinctID: id}, false)
		}
		ov.index(store.IndexEntry{Team: team, PersonID: e.m.PersonID, DistinctID: id}, true)
	}
	return nil
}

func (ov *overlay) index(e store.IndexEntry, add bool) {
	ov.indexOps = append(ov.indexOps, store.IndexOp{Entry: e, Delete: !add})
	ov.indexNet[e] = add
	pk := store.PersonKey{Team: e.Team, ID: e.PersonID}
	if add {
		ov.indexAdded[pk] = append(ov.indexAdded[pk], e.DistinctID)
	} else {
		ov.indexRemoved[pk] = append(ov.indexRemoved[pk], e.DistinctID)
	}
}

// withIndexChanges returns ids (sorted) with this overlay's net index
// changes of person pk applied, sorted.
func (ov *overlay) withIndexChanges(pk store.PersonKey, ids []string) []string {
	added, removed := ov.indexAdded[pk], ov.indexRemoved[pk]
	if len(added) == 0 && len(removed) == 0 {
		return ids
	}
	out := slices.Clone(ids)
	for _, id := range removed {
		if !ov.indexNet[store.IndexEntry{Team: pk.Team, PersonID: pk.ID, DistinctID: id}] {
			if i, ok := slices.BinarySearch(out, id); ok {
				out = slices.Delete(out, i, i+1)
			}
		}
	}
	for _, id := range added {
		if ov.indexNet[store.IndexEntry{Team: pk.Team, PersonID: pk.ID, DistinctID: id}] {
			if i, ok := slices.BinarySearch(out, id); !ok {
				out = slices.Insert(out, i, id)
			}
		}
	}
	return out
}

func (ov *overlay) group(ctx context.Context, k store.GroupKey) (*store.Group, error) {
	if g, ok := ov.groups[k]; ok {
		return g, nil
	}
	if ov.prev != nil {
		if g, ok := ov.prev.groups[k]; ok {
			g = g.Clone() // the previous batch's write holds the original
			ov.groups[k] = g
			return g, nil
		}
	}
	g, err := ov.st.GetGroup(ctx, k.Team, k.TypeIndex, k.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		g = store.NewGroup(k.Team, k.TypeIndex, k.Key)
	case err != nil:
		return nil, fmt.Errorf("projector: read group: %w", err)
	}
	ov.groups[k] = g
	return g, nil
}

func (ov *overlay) teamGroupTypes(ctx context.Context, team int64) (map[int]string, error) {
	if names, ok := ov.groupTypes[team]; ok {
		return names, nil
	}
	if ov.prev != nil {
		if names, ok := ov.prev.groupTypes[team]; ok {
			names = maps.Clone(names)
			ov.groupTypes[team] = names
			return names, nil
		}
	}
	gts, err := ov.st.GetGroupTypes(ctx, team)
	if err != nil {
		return nil, fmt.Errorf("projector: read group types: %w", err)
	}
	names := make(map[int]string, len(gts))
	for _, gt := range gts {
		names[gt.Index] = gt.Name
	}
	ov.groupTypes[team] = names
	return names, nil
}

// finish fans person changes out to the rows of their distinct ids, derives
// every row touched, and fills derived with the rows and index changes and
// sources with the rest (the same batch when the store is atomic).
func (ov *overlay) finish(ctx context.Context, derived, sources *store.Batch) error {
	// Rows of changed persons: their stored index plus this batch's.
	stored := make([][]string, len(ov.dirtyPersons))
	var misses []int // indexes into dirtyPersons of the index reads to make
	for i, pk := range ov.dirtyPersons {
		if ov.atomic && ov.persons[pk].created {
			continue // no record before: no index entries (see person)
		}
		ids, ok := ov.cache.get(pk)
		if !ok {
			misses = append(misses, i)
		}
		stored[i] = ids
	}
	if err := ov.readIndex(ctx, misses, stored); err != nil {
		return err
	}
	if ov.prev != nil {
		for _, i := range misses {
			// The previous batch's index writes may not be written yet.
			stored[i] = ov.prev.withIndexChanges(ov.dirtyPersons[i], stored[i])
		}
	}
	// The rows of a changed person are those of its index after the
	// batch: the stored entries not removed and the ones added.
	ov.indexAfter = make([]personIndex, 0, len(ov.dirtyPersons))
	for i, pk := range ov.dirtyPersons {
		ids := ov.withIndexChanges(pk, stored[i]) // nil for a created person: exact too
		ov.indexAfter = append(ov.indexAfter, personIndex{pk, ids})
		for _, id := range ids {
			dk := store.DistinctKey{Team: pk.Team, DistinctID: id}
			ov.markRow(dk, ov.mappingEntry(dk))
		}
	}
	// Mappings (index entries found above) and owners not read yet.
	if err := ov.loadMappings(ctx); err != nil {
		return err
	}
	var missing []store.PersonKey
	for _, dk := range ov.rows {
		owner := ov.mappings[dk].m.PersonID
		if owner == "" {
			continue
		}
		pk := store.PersonKey{Team: dk.Team, ID: owner}
		if _, ok := ov.persons[pk]; !ok {
			ov.persons[pk] = &personEntry{}
			missing = append(missing, pk)
		}
	}
	if err := ov.loadPersons(ctx, missing); err != nil {
		return err
	}

	for _, pk := range ov.dirtyPersons {
		sources.PutPerson(ov.persons[pk].p)
	}
	for _, dk := range ov.dirtyMappings {
		sources.PutMapping(ov.mappings[dk].m)
	}
	for _, op := range ov.indexOps {
		if op.Delete {
			derived.DeleteIndex(op.Entry)
		} else {
			derived.PutIndex(op.Entry)
		}
	}
	var deleted map[store.DistinctKey]bool
	for _, dk := range ov.rows {
		m := ov.mappings[dk].m
		if m.PersonID == "" {
			continue // a stale index entry without a mapping: no row
		}
		row, ok := store.DeriveRow(m, ov.persons[store.PersonKey{Team: dk.Team, ID: m.PersonID}].p)
		if ok {
			derived.PutRow(row)
		} else {
			derived.DeleteRow(dk.Team, dk.DistinctID)
			if deleted == nil {
				deleted = map[store.DistinctKey]bool{}
			}
			deleted[dk] = true
		}
	}
	for _, dk := range ov.dirtyCounters {
		if deleted[dk] {
			continue // the row is gone (its person deleted or moved away)
		}
		r := ov.counters[dk].row
		r.Compact()
		derived.SetCounters(dk.Team, dk.DistinctID, r.Append(nil))
	}
	for _, gk := range ov.dirtyGroupCounters {
		r := ov.groupCounters[gk].row
		r.Compact()
		derived.SetGroupCounters(gk.Team, gk.TypeIndex, gk.Key, r.Append(nil))
	}
	for _, gk := range ov.dirtyGroups {
		sources.PutGroup(ov.groups[gk])
	}
	for _, k := range sortedKeys(ov.dirtyGroupTypes, func(a, b [2]int64) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	}) {
		sources.PutGroupType(store.GroupType{Team: k[0], Index: int(k[1]), Name: ov.dirtyGroupTypes[k]})
	}
	return nil
}

// readIndex reads the stored distinct ids of the dirty persons at misses
// into stored: in chunks of persons sorted by key with a store.IndexReader
// (one iterator per chunk), else one DistinctIDs call per person.
func (ov *overlay) readIndex(ctx context.Context, misses []int, stored [][]string) error {
	if len(misses) == 0 {
		return nil
	}
	if ir, ok := ov.st.(store.IndexReader); ok {
		// Sorted, so that each chunk is one range of the store's keys.
		slices.SortFunc(misses, func(a, b int) int {
			ka, kb := ov.dirtyPersons[a], ov.dirtyPersons[b]
			if c := cmp.Compare(ka.Team, kb.Team); c != 0 {
				return c
			}
			return cmp.Compare(ka.ID, kb.ID)
		})
		keys := make([]store.PersonKey, len(misses))
		for j, i := range misses {
			keys[j] = ov.dirtyPersons[i]
		}
		j := 0 // readChunks calls put in keys order
		return readChunks(ctx, ov.readConcurrency, keys, ir.DistinctIDsOf, func(_ store.PersonKey, ids []string, _ bool) {
			stored[misses[j]] = ids
			j++
		}, "distinct ids")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ov.readConcurrency)
	for _, i := range misses {
		pk := ov.dirtyPersons[i]
		g.Go(func() error {
			ids, err := ov.st.DistinctIDs(gctx, pk.Team, pk.ID)
			if err != nil {
				return fmt.Errorf("projector: read distinct ids of %d/%s: %w", pk.Team, pk.ID, err)
			}
			stored[i] = ids
			return nil
		})
	}
	return g.Wait()
}

// jsonValues converts a property map of JSON text to the store's form.
func jsonValues(m map[string]string) map[string][]byte {
	if len(m) == 0 {
		return nil
	}
	n := 0
	for _, v := range m {
		n += len(v)
	}
	buf := make([]byte, 0, n) // one allocation for the values
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		i := len(buf)
		buf = append(buf, v...)
		out[k] = buf[i:len(buf):len(buf)]
	}
	return out
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}
