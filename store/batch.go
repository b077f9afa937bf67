package store

// Batch collects writes for one Store.Apply. Writes to the same key are
// merged in the batch (the later one wins, row operations compose as
// documented on RowOp), so a backend sees each key at most once per kind and
// may apply the kinds in any order. The zero Batch is empty and ready to use.
// A Batch is not safe for concurrent use.
type Batch struct {
	persons    []*Person
	personIdx  map[PersonKey]int
	mappings   []Mapping
	mappingIdx map[DistinctKey]int
	index      []IndexOp
	indexIdx   map[IndexEntry]int
	rows       []RowOp
	rowIdx     map[DistinctKey]int
	groups     []*Group
	groupIdx   map[GroupKey]int
	groupTypes []GroupType
	gtIdx      map[[2]int64]int
}

// IndexOp puts or deletes one index entry.
type IndexOp struct {
	Entry  IndexEntry
	Delete bool
}

// RowOp is the merged set of writes to one row, applied in this order:
// Delete removes the whole row (reserved fields included); Put writes the
// person part (PersonID, PersonVersion, Revision, Properties) keeping the
// stored Results and Counters; SetResults and SetCounters replace those
// fields. Reserved fields set on a row that has no person part are stored
// but the row stays invisible (GetRow: ErrNotFound) until a Put.
type RowOp struct {
	Team       int64
	DistinctID string
	Delete     bool
	// Put is the person part to write, nil for none. Its Results and
	// Counters are ignored.
	Put         *Row
	SetResults  bool
	Results     []byte
	SetCounters bool
	Counters    []byte
}

// Len reports the number of merged writes in the batch.
func (b *Batch) Len() int {
	return len(b.persons) + len(b.mappings) + len(b.index) + len(b.rows) + len(b.groups) + len(b.groupTypes)
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

// SetResults replaces the row's opaque Results.
func (b *Batch) SetResults(team int64, distinctID string, results []byte) {
	op := b.rowOp(team, distinctID)
	op.SetResults, op.Results = true, results
}

// SetCounters replaces the row's opaque Counters.
func (b *Batch) SetCounters(team int64, distinctID string, counters []byte) {
	op := b.rowOp(team, distinctID)
	op.SetCounters, op.Counters = true, counters
}

// PutGroup stores the full state of g. The batch keeps the pointer.
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

// Validate checks what every backend would refuse: group type indexes out
// of range and property JSON that is not an object. It returns an error
// wrapping ErrInvalid.
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
		if p := b.rows[i].Put; p != nil && !isObject(p.Properties) {
			return errInvalidf("row %d/%q: properties are not a JSON object", p.Team, p.DistinctID)
		}
	}
	return nil
}
