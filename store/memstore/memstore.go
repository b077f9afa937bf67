// Package memstore is an in-memory store.Store for tests: maps behind one
// mutex. Values are deep-copied on the way in and out, so callers cannot
// alias its state. It is not durable.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/internal/keyenc"
)

// Store is an in-memory store.Store. The zero value is not usable: call New.
type Store struct {
	// mu guards every field of state.
	mu struct {
		sync.RWMutex
		state
	}
	// usage holds the usage rows (store.UsageStore), apart from the state.
	usage usageTable
	// inbox holds the signal inbox (store.InboxStore), apart from the state.
	inbox inboxTable
}

type state struct {
	closed     bool
	persons    map[store.PersonKey]*store.Person
	mappings   map[store.DistinctKey]store.Mapping
	index      map[store.PersonKey]map[string]struct{} // person → distinct ids
	rows       map[store.DistinctKey]*rowRec
	groups     map[store.GroupKey]*store.Group
	groupRes   map[store.GroupKey]versioned // group results, put or not
	groupCtr   map[store.GroupKey][]byte    // group counters, put or not
	groupTypes map[[2]int64]string
	expiries   map[store.Expiry]struct{}
}

// versioned is stored results and their stamp.
type versioned struct {
	results []byte
	stamp   int64
}

// set writes results at stamp if they win over the stored ones.
func (v *versioned) set(results []byte, stamp int64) {
	if store.ResultsWin(stamp, results, v.stamp, v.results) {
		v.results, v.stamp = slices.Clone(results), stamp
	}
}

// rowRec is a stored row: the person part (present once put) and the
// reserved fields.
type rowRec struct {
	present  bool
	row      store.Row
	results  versioned
	counters []byte
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	s := &Store{}
	s.mu.persons = map[store.PersonKey]*store.Person{}
	s.mu.mappings = map[store.DistinctKey]store.Mapping{}
	s.mu.index = map[store.PersonKey]map[string]struct{}{}
	s.mu.rows = map[store.DistinctKey]*rowRec{}
	s.mu.groups = map[store.GroupKey]*store.Group{}
	s.mu.groupRes = map[store.GroupKey]versioned{}
	s.mu.groupCtr = map[store.GroupKey][]byte{}
	s.mu.groupTypes = map[[2]int64]string{}
	s.mu.expiries = map[store.Expiry]struct{}{}
	return s
}

func (s *Store) rlock(op string) error {
	s.mu.RLock()
	if s.mu.closed {
		s.mu.RUnlock()
		return fmt.Errorf("memstore: %s: %w", op, store.ErrClosed)
	}
	return nil
}

func (rec *rowRec) export() *store.Row {
	r := rec.row.Clone()
	r.Results, r.ResultsStamp = slices.Clone(rec.results.results), rec.results.stamp
	r.Counters = slices.Clone(rec.counters)
	return r
}

// LocalReads implements store.LocalReader: reads are from memory.
func (s *Store) LocalReads() bool { return true }

var _ store.LocalReader = (*Store)(nil)

// GetRow implements store.Reader.
func (s *Store) GetRow(ctx context.Context, team int64, distinctID string) (*store.Row, error) {
	if err := s.rlock("get row"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	rec, ok := s.mu.rows[store.DistinctKey{Team: team, DistinctID: distinctID}]
	if !ok || !rec.present {
		return nil, fmt.Errorf("memstore: get row %d/%q: %w", team, distinctID, store.ErrNotFound)
	}
	return rec.export(), nil
}

// GetGroup implements store.Reader.
func (s *Store) GetGroup(ctx context.Context, team int64, typeIndex int, key string) (*store.Group, error) {
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return nil, fmt.Errorf("memstore: get group: %w", err)
	}
	if err := s.rlock("get group"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	k := store.GroupKey{Team: team, TypeIndex: typeIndex, Key: key}
	if _, ok := s.mu.groups[k]; !ok {
		return nil, fmt.Errorf("memstore: get group %d/%d/%q: %w", team, typeIndex, key, store.ErrNotFound)
	}
	return s.exportGroup(k), nil
}

// exportGroup returns a copy of the put group k with its results. The
// caller holds the lock.
func (s *Store) exportGroup(k store.GroupKey) *store.Group {
	g := s.mu.groups[k].Clone()
	res := s.mu.groupRes[k]
	g.Results, g.ResultsStamp = slices.Clone(res.results), res.stamp
	g.Counters = slices.Clone(s.mu.groupCtr[k])
	return g
}

// GetPerson implements store.Store.
func (s *Store) GetPerson(ctx context.Context, team int64, personID string) (*store.Person, error) {
	if err := s.rlock("get person"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	p, ok := s.mu.persons[store.PersonKey{Team: team, ID: personID}]
	if !ok {
		return nil, fmt.Errorf("memstore: get person %d/%q: %w", team, personID, store.ErrNotFound)
	}
	return p.Clone(), nil
}

// GetPersons implements store.Store.
func (s *Store) GetPersons(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey]*store.Person, error) {
	if err := s.rlock("get persons"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make(map[store.PersonKey]*store.Person, len(keys))
	for _, k := range keys {
		if p, ok := s.mu.persons[k]; ok {
			out[k] = p.Clone()
		}
	}
	return out, nil
}

// GetMapping implements store.Store.
func (s *Store) GetMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error) {
	if err := s.rlock("get mapping"); err != nil {
		return store.Mapping{}, err
	}
	defer s.mu.RUnlock()
	m, ok := s.mu.mappings[store.DistinctKey{Team: team, DistinctID: distinctID}]
	if !ok {
		return store.Mapping{}, fmt.Errorf("memstore: get mapping %d/%q: %w", team, distinctID, store.ErrNotFound)
	}
	return m, nil
}

// GetMappings implements store.Store.
func (s *Store) GetMappings(ctx context.Context, keys []store.DistinctKey) (map[store.DistinctKey]store.Mapping, error) {
	if err := s.rlock("get mappings"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make(map[store.DistinctKey]store.Mapping, len(keys))
	for _, k := range keys {
		if m, ok := s.mu.mappings[k]; ok {
			out[k] = m
		}
	}
	return out, nil
}

// DistinctIDs implements store.Store.
func (s *Store) DistinctIDs(ctx context.Context, team int64, personID string) ([]string, error) {
	if err := s.rlock("distinct ids"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var ids []string
	for id := range s.mu.index[store.PersonKey{Team: team, ID: personID}] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// GetGroupTypes implements store.Store.
func (s *Store) GetGroupTypes(ctx context.Context, team int64) ([]store.GroupType, error) {
	if err := s.rlock("get group types"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.GroupType
	for k, name := range s.mu.groupTypes {
		if k[0] == team {
			out = append(out, store.GroupType{Team: team, Index: int(k[1]), Name: name})
		}
	}
	slices.SortFunc(out, func(a, b store.GroupType) int { return a.Index - b.Index })
	return out, nil
}

// ScanRows implements store.Store: rows in distinct id byte order.
func (s *Store) ScanRows(ctx context.Context, team int64, cursor string, limit int) (store.RowPage, error) {
	after, hasAfter, err := decodeCursor(cursor)
	if err != nil {
		return store.RowPage{}, fmt.Errorf("memstore: scan rows: %w", err)
	}
	if err := s.rlock("scan rows"); err != nil {
		return store.RowPage{}, err
	}
	defer s.mu.RUnlock()
	var ids []string
	for k, rec := range s.mu.rows {
		if k.Team == team && rec.present && (!hasAfter || k.DistinctID > after) {
			ids = append(ids, k.DistinctID)
		}
	}
	rows, next := scanPage(ids, limit, func(id string) *store.Row {
		return s.mu.rows[store.DistinctKey{Team: team, DistinctID: id}].export()
	})
	return store.RowPage{Rows: rows, Next: next}, nil
}

// ScanGroups implements store.Store: groups in key byte order.
func (s *Store) ScanGroups(ctx context.Context, team int64, typeIndex int, cursor string, limit int) (store.GroupPage, error) {
	if err := store.CheckTypeIndex(typeIndex); err != nil {
		return store.GroupPage{}, fmt.Errorf("memstore: scan groups: %w", err)
	}
	after, hasAfter, err := decodeCursor(cursor)
	if err != nil {
		return store.GroupPage{}, fmt.Errorf("memstore: scan groups: %w", err)
	}
	if err := s.rlock("scan groups"); err != nil {
		return store.GroupPage{}, err
	}
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.mu.groups {
		if k.Team == team && k.TypeIndex == typeIndex && (!hasAfter || k.Key > after) {
			keys = append(keys, k.Key)
		}
	}
	groups, next := scanPage(keys, limit, func(key string) *store.Group {
		return s.exportGroup(store.GroupKey{Team: team, TypeIndex: typeIndex, Key: key})
	})
	return store.GroupPage{Groups: groups, Next: next}, nil
}

// decodeCursor returns the key a scan cursor resumes after; has is false
// for "" (the beginning).
func decodeCursor(cursor string) (after string, has bool, err error) {
	if cursor == "" {
		return "", false, nil
	}
	if after, err = keyenc.DecodeCursor(cursor); err != nil {
		return "", false, fmt.Errorf("cursor %q: %w", cursor, store.ErrInvalid)
	}
	return after, true, nil
}

// scanPage sorts keys and returns the items of the first limit of them
// (limit <= 0: store.DefaultScanLimit), and the cursor after the last one
// when more follow.
func scanPage[T any](keys []string, limit int, get func(string) T) ([]T, string) {
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	slices.Sort(keys)
	var items []T
	for i, k := range keys {
		if i == limit {
			return items, keyenc.EncodeCursor(keys[i-1])
		}
		items = append(items, get(k))
	}
	return items, ""
}

// DueExpiries implements store.Store.
func (s *Store) DueExpiries(ctx context.Context, until int64, limit int) ([]store.Expiry, error) {
	if limit <= 0 {
		limit = store.DefaultScanLimit
	}
	if err := s.rlock("due expiries"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.Expiry
	for e := range s.mu.expiries {
		if e.At <= until {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, store.CompareExpiry)
	return out[:min(len(out), limit)], nil
}

// Apply implements store.Store: atomic under the lock.
func (s *Store) Apply(ctx context.Context, b *store.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("memstore: apply: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: apply: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return fmt.Errorf("memstore: apply: %w", store.ErrClosed)
	}
	for _, p := range b.Persons() {
		s.mu.persons[store.PersonKey{Team: p.Team, ID: p.ID}] = p.Clone()
	}
	for _, m := range b.Mappings() {
		s.mu.mappings[store.DistinctKey{Team: m.Team, DistinctID: m.DistinctID}] = m
	}
	for _, op := range b.Index() {
		pk := store.PersonKey{Team: op.Entry.Team, ID: op.Entry.PersonID}
		ids := s.mu.index[pk]
		switch {
		case op.Delete && ids != nil:
			delete(ids, op.Entry.DistinctID)
			if len(ids) == 0 {
				delete(s.mu.index, pk)
			}
		case !op.Delete:
			if ids == nil {
				ids = map[string]struct{}{}
				s.mu.index[pk] = ids
			}
			ids[op.Entry.DistinctID] = struct{}{}
		}
	}
	for _, op := range b.Rows() {
		k := store.DistinctKey{Team: op.Team, DistinctID: op.DistinctID}
		rec := s.mu.rows[k]
		if op.Delete {
			rec = nil
		}
		if op.Put == nil && !op.SetResults && !op.SetCounters {
			delete(s.mu.rows, k)
			continue
		}
		if rec == nil {
			rec = &rowRec{}
		} else {
			c := *rec
			rec = &c
		}
		if op.Put != nil {
			rec.present = true
			rec.row = store.Row{
				Team: op.Team, DistinctID: op.DistinctID, PersonID: op.Put.PersonID,
				PersonVersion: op.Put.PersonVersion, Revision: op.Put.Revision,
				Properties: slices.Clone(op.Put.Properties),
			}
		}
		if op.SetResults {
			rec.results.set(op.Results, op.ResultsStamp)
		}
		if op.SetCounters {
			rec.counters = slices.Clone(op.Counters)
		}
		s.mu.rows[k] = rec
	}
	for _, g := range b.Groups() {
		g = g.Clone()
		g.Results, g.ResultsStamp = nil, 0 // kept in groupRes
		g.Counters = nil                   // kept in groupCtr
		s.mu.groups[store.GroupKey{Team: g.Team, TypeIndex: g.TypeIndex, Key: g.Key}] = g
	}
	for _, op := range b.GroupResults() {
		v := s.mu.groupRes[op.Group]
		v.set(op.Results, op.Stamp)
		s.mu.groupRes[op.Group] = v
	}
	for _, op := range b.GroupCounters() {
		if len(op.Counters) == 0 {
			delete(s.mu.groupCtr, op.Group)
		} else {
			s.mu.groupCtr[op.Group] = slices.Clone(op.Counters)
		}
	}
	for _, op := range b.Expiries() {
		if op.Delete {
			delete(s.mu.expiries, op.Expiry)
		} else {
			s.mu.expiries[op.Expiry] = struct{}{}
		}
	}
	for _, gt := range b.GroupTypes() {
		s.mu.groupTypes[[2]int64{gt.Team, int64(gt.Index)}] = gt.Name
	}
	return nil
}

// Dump implements store.Store: entities in kind, then key order.
func (s *Store) Dump(ctx context.Context, fn func(store.Entity) error) error {
	if err := s.rlock("dump"); err != nil {
		return err
	}
	// Copy out under the lock, call fn without it (fn may read the store).
	var ents []store.Entity
	for _, k := range sortedKeys(s.mu.persons, func(a, b store.PersonKey) int {
		return cmpTeam(a.Team, b.Team, a.ID, b.ID)
	}) {
		ents = append(ents, store.Entity{Person: s.mu.persons[k].Clone()})
	}
	for _, k := range sortedKeys(s.mu.mappings, func(a, b store.DistinctKey) int {
		return cmpTeam(a.Team, b.Team, a.DistinctID, b.DistinctID)
	}) {
		m := s.mu.mappings[k]
		ents = append(ents, store.Entity{Mapping: &m})
	}
	for _, k := range sortedKeys(s.mu.index, func(a, b store.PersonKey) int {
		return cmpTeam(a.Team, b.Team, a.ID, b.ID)
	}) {
		for _, id := range sortedKeys(s.mu.index[k], strings.Compare) {
			ents = append(ents, store.Entity{Index: &store.IndexEntry{Team: k.Team, PersonID: k.ID, DistinctID: id}})
		}
	}
	for _, k := range sortedKeys(s.mu.rows, func(a, b store.DistinctKey) int {
		return cmpTeam(a.Team, b.Team, a.DistinctID, b.DistinctID)
	}) {
		if rec := s.mu.rows[k]; rec.present {
			ents = append(ents, store.Entity{Row: rec.export()})
		}
	}
	for _, k := range sortedKeys(s.mu.groups, func(a, b store.GroupKey) int {
		if a.Team != b.Team || a.TypeIndex != b.TypeIndex {
			return cmpTeam(a.Team, b.Team, "", "")*2 + (a.TypeIndex - b.TypeIndex)
		}
		return strings.Compare(a.Key, b.Key)
	}) {
		ents = append(ents, store.Entity{Group: s.exportGroup(k)})
	}
	for _, k := range sortedKeys(s.mu.groupTypes, func(a, b [2]int64) int {
		return cmpTeam(a[0], b[0], "", "")*2 + int(a[1]-b[1])
	}) {
		ents = append(ents, store.Entity{GroupType: &store.GroupType{Team: k[0], Index: int(k[1]), Name: s.mu.groupTypes[k]}})
	}
	s.mu.RUnlock()
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstore: dump: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return fmt.Errorf("memstore: close: %w", store.ErrClosed)
	}
	s.mu.closed = true
	return nil
}

func cmpTeam(ta, tb int64, a, b string) int {
	switch {
	case ta < tb:
		return -1
	case ta > tb:
		return 1
	}
	return strings.Compare(a, b)
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}
