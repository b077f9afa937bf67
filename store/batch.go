package store

// Batch collects writes for one Store.Apply. Writes to the same key are
// merged in the batch (the later one wins, row operations compose as
// documented on RowOp), so a backend sees each key at most once per kind and
// may apply the kinds in any order. The zero Batch is empty and ready to use.
// A Batch is not safe for concurrent use.
type Batch struct {
	persons     []*Person
	personIdx   map[PersonKey]int
	mappings    []Mapping
	mappingIdx  map[DistinctKey]int
	index       []IndexOp
	indexIdx    map[IndexEntry]int
	rows        []RowOp
	rowIdx      map[DistinctKey]int
	groups      []*Group
	groupIdx    map[GroupKey]int
	groupTypes  []GroupType
	gtIdx       map[[2]int64]int
	groupRes    []GroupResultsOp
	groupResIdx map[GroupKey]int
	groupCtr    []GroupCountersOp
	groupCtrIdx map[GroupKey]int
	expiries    []ExpiryOp
	expiryIdx   map[Expiry]int
	derived     bool
}

// GroupResultsOp is a versioned write of a group's Results (see
// Batch.SetGroupResults).
type GroupResultsOp struct {
	Group   GroupKey
	Results []byte
	Stamp   int64
}

// GroupCountersOp replaces a group's Counters (see Batch.SetGroupCounters).
type GroupCountersOp struct {
	Group    GroupKey
	Counters []byte
}

// ExpiryOp puts or deletes one expiry entry.
type ExpiryOp struct {
	Expiry Expiry
	Delete bool
}

// IndexOp puts or deletes one index entry.
type IndexOp struct {
	Entry  IndexEntry
	Delete bool
}

// RowOp is the merged set of writes to one row, applied in this order:
// Delete removes the whole row (reserved fields included); Put writes the
// person part (PersonID, PersonVersion, Revision, Properties) keeping the
// stored Results, ResultsStamp and Counters; SetResults writes Results if
// ResultsStamp wins over the stored stamp (ResultsWin), SetCounters
// replaces Counters. Reserved fields set on a row that has no person part are stored
// but the row stays invisible (GetRow: ErrNotFound) until a Put.
type RowOp struct {
	Team       int64
	DistinctID string
	Delete     bool
	// Put is the person part to write, nil for none. Its Results,
	// ResultsStamp and Counters are ignored.
	Put          *Row
	SetResults   bool
	Results      []byte
	ResultsStamp int64
	SetCounters  bool
	Counters     []byte
}

// SetDerived marks the batch as derived data that its writer recomputes
// when it is lost (precomputed results, the expiry index): a backend may
// then skip waiting for durability (pebblestore commits without fsync). An
// atomic backend still applies it all or nothing. Writes of the source of
// truth (persons, mappings, groups, rows' person part) must not be marked.
func (b *Batch) SetDerived() { b.derived = true }

// Derived reports whether SetDerived marked the batch.
func (b *Batch) Derived() bool { return b.derived }

// Len reports the number of merged writes in the batch.
func (b *Batch) Len() int {
	return len(b.persons) + len(b.mappings) + len(b.index) + len(b.rows) + len(b.groups) + len(b.groupTypes) +
		len(b.groupRes) + len(b.groupCtr) + len(b.expiries)
}

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	*b = Batch{}
}

// PutPerson stores the full state of p (tombstoned or not). The batch keeps
// the pointer: do not modify p before Apply returns.
func (b *Batch) PutPerson(p *Person) {
	k := PersonKey{p.Team, p.ID}
	if i, ok := b.personIdx[k]; ok {
		b.persons[i] = p
		return
	}
	if b.personIdx == nil {
		b.personIdx = map[PersonKey]int{}
	}
	b.personIdx[k] = len(b.persons)
	b.persons = append(b.persons, p)
}

// PutMapping stores a mapping register.
func (b *Batch) PutMapping(m Mapping) {
	k := DistinctKey{m.Team, m.DistinctID}
	if i, ok := b.mappingIdx[k]; ok {
		b.mappings[i] = m
		return
	}
	if b.mappingIdx == nil {
		b.mappingIdx = map[DistinctKey]int{}
	}
	b.mappingIdx[k] = len(b.mappings)
	b.mappings = append(b.mappings, m)
}

// PutIndex adds a person → distinct id index entry.
func (b *Batch) PutIndex(e IndexEntry) { b.indexOp(IndexOp{Entry: e}) }

// DeleteIndex removes a person → distinct id index entry.
func (b *Batch) DeleteIndex(e IndexEntry) { b.indexOp(IndexOp{Entry: e, Delete: true}) }

func (b *Batch) indexOp(op IndexOp) {
	if i, ok := b.indexIdx[op.Entry]; ok {
		b.index[i] = op
		return
	}
	if b.indexIdx == nil {
		b.indexIdx = map[IndexEntry]int{}
	}
	b.indexIdx[op.Entry] = len(b.index)
	b.index = append(b.index, op)
}

func (b *Batch) rowOp(team int64, distinctID string) *RowOp {
	k := DistinctKey{team, distinctID}
	if i, ok := b.rowIdx[k]; ok {
		return &b.rows[i]
	}
	if b.rowIdx == nil {
		b.rowIdx = map[DistinctKey]int{}
	}
	b.rowIdx[k] = len(b.rows)
	b.rows = append(b.rows, RowOp{Team: team, DistinctID: distinctID})
	return &b.rows[len(b.rows)-1]
}

// PutRow writes the person part of r (keyed by r.Team, r.DistinctID),
// keeping the stored Results and Counters. The batch keeps the pointer.
func (b *Batch) PutRow(r *Row) {
	op := b.rowOp(r.Team, r.DistinctID)
	op.Put = r
}

// DeleteRow removes the row of (team, distinctID) entirely, and cancels
// earlier writes to it in this batch.
func (b *Batch) DeleteRow(team int64, distinctID string) {
	op := b.rowOp(team, distinctID)
	*op = RowOp{Team: team, DistinctID: distinctID, Delete: true}
}

// SetResults writes the row's opaque Results, versioned by stamp
// (microseconds since the Unix epoch from the writer's hybrid logical
// clock, > 0): the write takes effect iff ResultsWin(stamp, results,
// stored stamp, stored results), so racing writers converge on the same
// value in any order. Two SetResults of one row in a batch keep the
// winner. Backends compare atomically with respect to concurrent Apply
// calls.
func (b *Batch) SetResults(team int64, distinctID string, results []byte, stamp int64) {
	op := b.rowOp(team, distinctID)
	if op.SetResults && !ResultsWin(stamp, results, op.ResultsStamp, op.Results) {
		return
	}
	op.SetResults, op.Results, op.ResultsStamp = true, results, stamp
}

// SetCounters replaces the row's opaque Counters.
func (b *Batch) SetCounters(team int64, distinctID string, counters []byte) {
	op := b.rowOp(team, distinctID)
	op.SetCounters, op.Counters = true, counters
}

// PutGroup stores the full state of g, keeping the stored Results and
// ResultsStamp (g's are ignored). The batch keeps the pointer.
func (b *Batch) PutGroup(g *Group) {
	k := GroupKey{g.Team, g.TypeIndex, g.Key}
	if i, ok := b.groupIdx[k]; ok {
		b.groups[i] = g
		return
	}
	if b.groupIdx == nil {
		b.groupIdx = map[GroupKey]int{}
	}
	b.groupIdx[k] = len(b.groups)
	b.groups = append(b.groups, g)
}

// PutGroupType stores a group type name (use MergeGroupTypeName with the
// stored one first so that replays converge).
func (b *Batch) PutGroupType(gt GroupType) {
	k := [2]int64{gt.Team, int64(gt.Index)}
	if i, ok := b.gtIdx[k]; ok {
		b.groupTypes[i] = gt
		return
	}
	if b.gtIdx == nil {
		b.gtIdx = map[[2]int64]int{}
	}
	b.gtIdx[k] = len(b.groupTypes)
	b.groupTypes = append(b.groupTypes, gt)
}

// SetGroupResults writes a group's opaque Results, versioned by stamp with
// the rule of SetResults. Results of a group that was never put are stored
// but invisible (GetGroup: ErrNotFound) until PutGroup.
func (b *Batch) SetGroupResults(team int64, typeIndex int, key string, results []byte, stamp int64) {
	k := GroupKey{team, typeIndex, key}
	if i, ok := b.groupResIdx[k]; ok {
		if op := &b.groupRes[i]; ResultsWin(stamp, results, op.Stamp, op.Results) {
			op.Results, op.Stamp = results, stamp
		}
		return
	}
	if b.groupResIdx == nil {
		b.groupResIdx = map[GroupKey]int{}
	}
	b.groupResIdx[k] = len(b.groupRes)
	b.groupRes = append(b.groupRes, GroupResultsOp{Group: k, Results: results, Stamp: stamp})
}

// SetGroupCounters replaces a group's opaque Counters (the last call for a
// group in a batch wins). PutGroup keeps them; a group never put shows none.
func (b *Batch) SetGroupCounters(team int64, typeIndex int, key string, counters []byte) {
	k := GroupKey{team, typeIndex, key}
	if i, ok := b.groupCtrIdx[k]; ok {
		b.groupCtr[i].Counters = counters
		return
	}
	if b.groupCtrIdx == nil {
		b.groupCtrIdx = map[GroupKey]int{}
	}
	b.groupCtrIdx[k] = len(b.groupCtr)
	b.groupCtr = append(b.groupCtr, GroupCountersOp{Group: k, Counters: counters})
}

// PutExpiry adds an entry to the expiry index (idempotent).
func (b *Batch) PutExpiry(e Expiry) { b.expiryOp(ExpiryOp{Expiry: e}) }

// DeleteExpiry removes an entry from the expiry index (idempotent).
func (b *Batch) DeleteExpiry(e Expiry) { b.expiryOp(ExpiryOp{Expiry: e, Delete: true}) }

func (b *Batch) expiryOp(op ExpiryOp) {
	if i, ok := b.expiryIdx[op.Expiry]; ok {
		b.expiries[i] = op
		return
	}
	if b.expiryIdx == nil {
		b.expiryIdx = map[Expiry]int{}
	}
	b.expiryIdx[op.Expiry] = len(b.expiries)
	b.expiries = append(b.expiries, op)
}

// Persons returns the persons to store, in first-write order. Backends
// must not modify the returned slices or what they point to.
func (b *Batch) Persons() []*Person { return b.persons }

// Mappings returns the mappings to store.
func (b *Batch) Mappings() []Mapping { return b.mappings }

// Index returns the index operations.
func (b *Batch) Index() []IndexOp { return b.index }

// Rows returns the merged row operations.
func (b *Batch) Rows() []RowOp { return b.rows }

// Groups returns the groups to store.
func (b *Batch) Groups() []*Group { return b.groups }

// GroupTypes returns the group types to store.
func (b *Batch) GroupTypes() []GroupType { return b.groupTypes }

// GroupResults returns the versioned group results writes.
func (b *Batch) GroupResults() []GroupResultsOp { return b.groupRes }

// GroupCounters returns the group counters writes.
func (b *Batch) GroupCounters() []GroupCountersOp { return b.groupCtr }

// Expiries returns the expiry index operations.
func (b *Batch) Expiries() []ExpiryOp { return b.expiries }

// Validate checks what every backend would refuse: group type indexes out
// of range, property JSON that is not an object, results stamps <= 0 and
// empty expiry targets. It returns an error wrapping ErrInvalid.
func (b *Batch) Validate() error {
	for _, g := range b.groups {
		if err := checkTypeIndex(g.TypeIndex); err != nil {
			return err
		}
	}
	for _, gt := range b.groupTypes {
		if err := checkTypeIndex(gt.Index); err != nil {
			return err
		}
	}
	for i := range b.rows {
		op := &b.rows[i]
		if p := op.Put; p != nil && !isObject(p.Properties) {
			return errInvalidf("row %d/%q: properties are not a JSON object", p.Team, p.DistinctID)
		}
		if op.SetResults && op.ResultsStamp <= 0 {
			return errInvalidf("row %d/%q: results stamp %d is not positive", op.Team, op.DistinctID, op.ResultsStamp)
		}
	}
	for _, op := range b.groupRes {
		if err := checkTypeIndex(op.Group.TypeIndex); err != nil {
			return err
		}
		if op.Stamp <= 0 {
			return errInvalidf("group %d/%d/%q: results stamp %d is not positive", op.Group.Team, op.Group.TypeIndex, op.Group.Key, op.Stamp)
		}
	}
	for _, op := range b.groupCtr {
		if err := checkTypeIndex(op.Group.TypeIndex); err != nil {
			return err
		}
	}
	for _, op := range b.expiries {
		if op.Expiry.Target == "" {
			return errInvalidf("expiry %d/%d: empty target", op.Expiry.Team, op.Expiry.At)
		}
	}
	return nil
}
