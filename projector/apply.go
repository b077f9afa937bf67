package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
	"github.com/vexil-dev/vexil/store"
)

// overlay is the state one batch reads and changes: what was read from the
// store, updated in place as the batch's messages are applied in order, and
// the set of keys changed. It becomes one store.Batch.
type overlay struct {
	st store.Store
	// readConcurrency bounds concurrent store reads.
	readConcurrency int
	// cache is the index cache (nil when disabled); read only here.
	cache *indexCache
	// indexRead collects what was read from the store's index.
	indexRead map[store.PersonKey][]string

	// persons holds every person read or created; a nil value records that
	// the store has none (DeriveRow then sees an empty person).
	persons      map[store.PersonKey]*store.Person
	dirtyPersons map[store.PersonKey]struct{}
	// mappings holds every mapping read; a zero Mapping records none.
	mappings      map[store.DistinctKey]*store.Mapping
	dirtyMappings map[store.DistinctKey]struct{}
	// indexOps are the person → distinct id index changes, in order.
	indexOps []store.IndexOp
	// indexDelta is the net index change per person in this batch:
	// distinct id → true (added) or false (removed).
	indexDelta map[store.PersonKey]map[string]bool
	// dirtyRows are the rows to derive again at the end of the batch.
	dirtyRows map[store.DistinctKey]struct{}

	groups      map[store.GroupKey]*store.Group
	dirtyGroups map[store.GroupKey]struct{}
	// groupTypes holds the stored names per team (read once per team) and
	// the names changed by the batch.
	groupTypes      map[int64]map[int]string
	dirtyGroupTypes map[[2]int64]string
}

// write is a prepared batch: the store writes of a batch of messages, as
// one store.Batch (derived is empty) or, for a store whose Apply is not
// atomic, as derived writes to apply before the sources.
type write struct {
	derived store.Batch // rows and index; applied first
	sources store.Batch // persons, mappings, groups, group types
	// indexRead holds the distinct ids read from the store (before this
	// batch), for the index cache once the batch is committed.
	indexRead map[store.PersonKey][]string
}

// prepare applies the valid messages of b, in order, to an overlay of the
// state they touch and returns the store writes. A message the convergence
// logic refuses becomes poison (ingest.ReasonStoreRejected). Errors are
// store read failures (transient: the batch is retried).
func (p *Projector) prepare(ctx context.Context, b *batch) (*write, error) {
	ov := &overlay{
		st:              p.cfg.Store,
		readConcurrency: p.cfg.ReadConcurrency,
		cache:           p.cache,
		indexRead:       map[store.PersonKey][]string{},
		persons:         map[store.PersonKey]*store.Person{},
		dirtyPersons:    map[store.PersonKey]struct{}{},
		mappings:        map[store.DistinctKey]*store.Mapping{},
		dirtyMappings:   map[store.DistinctKey]struct{}{},
		indexDelta:      map[store.PersonKey]map[string]bool{},
		dirtyRows:       map[store.DistinctKey]struct{}{},
		groups:          map[store.GroupKey]*store.Group{},
		dirtyGroups:     map[store.GroupKey]struct{}{},
		groupTypes:      map[int64]map[int]string{},
		dirtyGroupTypes: map[[2]int64]string{},
	}
	if err := ov.prefetch(ctx, b); err != nil {
		return nil, err
	}
	for i := range b.items {
		it := &b.items[i]
		if it.env == nil {
			continue
		}
		if err := ov.apply(ctx, it.env); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				it.env, it.poison = nil, &ingest.Error{Reason: ingest.ReasonStoreRejected, Text: err.Error()}
				continue
			}
			return nil, err
		}
	}
	w := &write{indexRead: ov.indexRead}
	derived := &w.derived
	if p.cfg.AtomicStore {
		derived = &w.sources
	}
	if err := ov.finish(ctx, derived, &w.sources); err != nil {
		return nil, err
	}
	return w, nil
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
			// What the store holds now is unknown: start over.
			if p.cache != nil {
				p.cache.reset()
			}
			return fmt.Errorf("projector: store apply: %w", err)
		}
	}
	if p.cache != nil {
		for k, ids := range w.indexRead {
			p.cache.put(k, ids)
		}
		for _, b := range []*store.Batch{&w.derived, &w.sources} {
			for _, op := range b.Index() {
				p.cache.apply(op)
			}
		}
	}
	return nil
}

// prefetch reads, in bulk, the persons and mappings the batch names.
func (ov *overlay) prefetch(ctx context.Context, b *batch) error {
	var pkeys []store.PersonKey
	var dkeys []store.DistinctKey
	seenP := map[store.PersonKey]struct{}{}
	seenD := map[store.DistinctKey]struct{}{}
	addP := func(team int64, id string) {
		k := store.PersonKey{Team: team, ID: id}
		if _, ok := seenP[k]; !ok {
			seenP[k] = struct{}{}
			pkeys = append(pkeys, k)
		}
	}
	addD := func(team int64, ids []string) {
		for _, id := range ids {
			k := store.DistinctKey{Team: team, DistinctID: id}
			if _, ok := seenD[k]; !ok {
				seenD[k] = struct{}{}
				dkeys = append(dkeys, k)
			}
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
	return ov.loadMappings(ctx, dkeys)
}

func (ov *overlay) loadPersons(ctx context.Context, keys []store.PersonKey) error {
	return readChunks(ctx, ov.readConcurrency, keys, ov.st.GetPersons, func(k store.PersonKey, p *store.Person, ok bool) {
		ov.persons[k] = p // nil when absent
	}, "persons")
}

func (ov *overlay) loadMappings(ctx context.Context, keys []store.DistinctKey) error {
	return readChunks(ctx, ov.readConcurrency, keys, ov.st.GetMappings, func(k store.DistinctKey, m store.Mapping, ok bool) {
		ov.mappings[k] = &m // a zero Mapping when absent
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
	g, gctx := errgroup.WithContext(ctx)
	size := (len(keys) + n - 1) / n
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
	for i, k := range keys {
		v, ok := results[i/size][k]
		put(k, v, ok)
	}
	return nil
}

// person returns the overlay's person, creating an empty one to change.
func (ov *overlay) person(ctx context.Context, k store.PersonKey) (*store.Person, error) {
	p, ok := ov.persons[k]
	if !ok {
		if err := ov.loadPersons(ctx, []store.PersonKey{k}); err != nil {
			return nil, err
		}
		p = ov.persons[k]
	}
	if p == nil {
		p = store.NewPerson(k.Team, k.ID)
		ov.persons[k] = p
	}
	return p, nil
}

func (ov *overlay) mapping(ctx context.Context, k store.DistinctKey) (*store.Mapping, error) {
	m, ok := ov.mappings[k]
	if !ok {
		if err := ov.loadMappings(ctx, []store.DistinctKey{k}); err != nil {
			return nil, err
		}
		m = ov.mappings[k]
	}
	return m, nil
}

// apply applies one valid message to the overlay.
func (ov *overlay) apply(ctx context.Context, env *ingestv1.Envelope) error {
	switch k := env.GetKind().(type) {
	case *ingestv1.Envelope_PersonUpdate:
		m := k.PersonUpdate
		pk := store.PersonKey{Team: m.Team, ID: m.PersonId}
		p, err := ov.person(ctx, pk)
		if err != nil {
			return err
		}
		changed, err := p.ApplyUpdate(store.PersonUpdate{
			Version: m.GetVersion(), Set: jsonValues(m.Set), SetOnce: jsonValues(m.SetOnce), Unset: m.Unset,
		})
		if err != nil {
			return err
		}
		if changed {
			ov.dirtyPersons[pk] = struct{}{}
		}
		return ov.assert(ctx, m.Team, m.PersonId, m.DistinctIds, m.GetVersion())
	case *ingestv1.Envelope_PersonMerge:
		m := k.PersonMerge
		return ov.assert(ctx, m.Team, m.PersonId, m.DistinctIds, m.GetVersion())
	case *ingestv1.Envelope_PersonDelete:
		m := k.PersonDelete
		pk := store.PersonKey{Team: m.Team, ID: m.PersonId}
		p, err := ov.person(ctx, pk)
		if err != nil {
			return err
		}
		if p.ApplyDelete(m.GetVersion()) {
			ov.dirtyPersons[pk] = struct{}{}
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
		if changed {
			ov.dirtyGroups[gk] = struct{}{}
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
		return ov.applyEvent(ctx, k.Event)
	}
	return fmt.Errorf("%w: no message", store.ErrInvalid)
}

// applyEvent is the seam for behavioural counters. Events are validated
// (package ingest) and acknowledged; the real-time cohorts issue counts them
// here, in the same overlay, so that counters land in the batch's one
// durable write (store.Batch.SetCounters) and are acknowledged with it.
// Counting must be idempotent under redelivery: key increments by the
// event's uuid.
func (ov *overlay) applyEvent(ctx context.Context, ev *ingestv1.Event) error {
	return nil
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
		m, err := ov.mapping(ctx, dk)
		if err != nil {
			return err
		}
		old := m.PersonID
		if !m.Merge(store.Mapping{Team: team, DistinctID: id, PersonID: personID, Version: version}) {
			if m.PersonID != personID {
				ov.index(store.IndexEntry{Team: team, PersonID: personID, DistinctID: id}, false)
			}
			continue
		}
		ov.dirtyMappings[dk] = struct{}{}
		ov.dirtyRows[dk] = struct{}{}
		if old != "" && old != m.PersonID {
			ov.index(store.IndexEntry{Team: team, PersonID: old, DistinctID: id}, false)
		}
		ov.index(store.IndexEntry{Team: team, PersonID: m.PersonID, DistinctID: id}, true)
	}
	return nil
}

func (ov *overlay) index(e store.IndexEntry, add bool) {
	ov.indexOps = append(ov.indexOps, store.IndexOp{Entry: e, Delete: !add})
	pk := store.PersonKey{Team: e.Team, ID: e.PersonID}
	d := ov.indexDelta[pk]
	if d == nil {
		d = map[string]bool{}
		ov.indexDelta[pk] = d
	}
	d[e.DistinctID] = add
}

func (ov *overlay) group(ctx context.Context, k store.GroupKey) (*store.Group, error) {
	if g, ok := ov.groups[k]; ok {
		return g, nil
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
	// Rows of changed persons: their stored index plus this batch's delta.
	dirty := sortedKeys(ov.dirtyPersons, comparePersonKeys)
	stored := make([][]string, len(dirty))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ov.readConcurrency)
	for i, pk := range dirty {
		if ids, ok := ov.cache.get(pk); ok {
			stored[i] = ids
			continue
		}
		g.Go(func() error {
			ids, err := ov.st.DistinctIDs(gctx, pk.Team, pk.ID)
			if err != nil {
				return fmt.Errorf("projector: read distinct ids of %d/%s: %w", pk.Team, pk.ID, err)
			}
			stored[i] = ids
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, pk := range dirty {
		if _, ok := ov.cache.get(pk); !ok {
			ov.indexRead[pk] = stored[i]
		}
		for _, id := range stored[i] {
			if add, ok := ov.indexDelta[pk][id]; !ok || add {
				ov.dirtyRows[store.DistinctKey{Team: pk.Team, DistinctID: id}] = struct{}{}
			}
		}
		for id, add := range ov.indexDelta[pk] {
			if add {
				ov.dirtyRows[store.DistinctKey{Team: pk.Team, DistinctID: id}] = struct{}{}
			}
		}
	}
	// Mappings and owners not read yet (index entries found above).
	rows := sortedKeys(ov.dirtyRows, compareDistinctKeys)
	var missingD []store.DistinctKey
	for _, dk := range rows {
		if _, ok := ov.mappings[dk]; !ok {
			missingD = append(missingD, dk)
		}
	}
	if err := ov.loadMappings(ctx, missingD); err != nil {
		return err
	}
	var missingP []store.PersonKey
	seen := map[store.PersonKey]struct{}{}
	for _, dk := range rows {
		m := ov.mappings[dk]
		if m.PersonID == "" {
			continue
		}
		pk := store.PersonKey{Team: dk.Team, ID: m.PersonID}
		if _, ok := ov.persons[pk]; !ok {
			if _, dup := seen[pk]; !dup {
				seen[pk] = struct{}{}
				missingP = append(missingP, pk)
			}
		}
	}
	if err := ov.loadPersons(ctx, missingP); err != nil {
		return err
	}

	for _, pk := range sortedKeys(ov.dirtyPersons, comparePersonKeys) {
		sources.PutPerson(ov.persons[pk])
	}
	for _, dk := range sortedKeys(ov.dirtyMappings, compareDistinctKeys) {
		sources.PutMapping(*ov.mappings[dk])
	}
	b := derived
	for _, op := range ov.indexOps {
		if op.Delete {
			b.DeleteIndex(op.Entry)
		} else {
			b.PutIndex(op.Entry)
		}
	}
	for _, dk := range rows {
		m := ov.mappings[dk]
		if m.PersonID == "" {
			continue // a stale index entry without a mapping: no row
		}
		row, ok := store.DeriveRow(*m, ov.persons[store.PersonKey{Team: dk.Team, ID: m.PersonID}])
		if ok {
			b.PutRow(row)
		} else {
			b.DeleteRow(dk.Team, dk.DistinctID)
		}
	}
	b = sources
	for _, gk := range sortedKeys(ov.dirtyGroups, compareGroupKeys) {
		b.PutGroup(ov.groups[gk])
	}
	for _, k := range sortedKeys(ov.dirtyGroupTypes, func(a, b [2]int64) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	}) {
		b.PutGroupType(store.GroupType{Team: k[0], Index: int(k[1]), Name: ov.dirtyGroupTypes[k]})
	}
	return nil
}

// jsonValues converts a property map of JSON text to the store's form.
func jsonValues(m map[string]string) map[string][]byte {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
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

func comparePersonKeys(a, b store.PersonKey) int {
	if c := cmp.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func compareDistinctKeys(a, b store.DistinctKey) int {
	if c := cmp.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	return cmp.Compare(a.DistinctID, b.DistinctID)
}

func compareGroupKeys(a, b store.GroupKey) int {
	if c := cmp.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	if c := cmp.Compare(a.TypeIndex, b.TypeIndex); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}
