package snapshot

import (
	"github.com/vexil-dev/vexil/store"
)

// The tables of a snapshot, one Parquet file set each, in the order a
// restore loads them. Column names are snake_case so that DuckDB, pandas and
// Spark read them without renaming. Properties are canonical JSON text;
// persons' and groups' registers are also kept in the store's own binary
// encoding (column state), which a restore needs to rebuild them exactly.
const (
	TablePersons    = "persons"
	TableMappings   = "mappings"
	TableIndex      = "person_distinct_ids"
	TableRows       = "rows"
	TableGroups     = "groups"
	TableGroupTypes = "group_types"
)

// Tables lists every table, in restore order.
var Tables = []string{TablePersons, TableMappings, TableIndex, TableRows, TableGroups, TableGroupTypes}

// derivedTables are computed by the projector from the sources (persons and
// mappings): a resumed snapshot rescans them whenever it rescans a source,
// so that a source is never scanned after what is derived from it (see the
// package documentation on consistency).
var derivedTables = map[string]bool{TableIndex: true, TableRows: true}

// PersonRecord is one row of the persons table.
type PersonRecord struct {
	Team          int64  `parquet:"team"`
	PersonID      string `parquet:"person_id"`
	Version       int64  `parquet:"version"`
	Deleted       bool   `parquet:"deleted"`
	DeleteVersion int64  `parquet:"delete_version"`
	// State is store.Person's binary encoding (every register).
	State []byte `parquet:"state"`
}

// MappingRecord is one row of the mappings table (distinct id → person).
type MappingRecord struct {
	Team       int64  `parquet:"team"`
	DistinctID string `parquet:"distinct_id"`
	PersonID   string `parquet:"person_id"`
	Version    int64  `parquet:"version"`
}

// IndexRecord is one row of the person → distinct ids index.
type IndexRecord struct {
	Team       int64  `parquet:"team"`
	PersonID   string `parquet:"person_id"`
	DistinctID string `parquet:"distinct_id"`
}

// RowRecord is one evaluation row: the person's effective properties as
// JSON, the precomputed flag results with their stamp, the behavioural
// counters.
type RowRecord struct {
	Team          int64  `parquet:"team"`
	DistinctID    string `parquet:"distinct_id"`
	PersonID      string `parquet:"person_id"`
	PersonVersion int64  `parquet:"person_version"`
	Revision      uint64 `parquet:"revision"`
	Properties    string `parquet:"properties,json"`
	Results       []byte `parquet:"results"`
	ResultsStamp  int64  `parquet:"results_stamp"`
	Counters      []byte `parquet:"counters"`
}

// GroupRecord is one group.
type GroupRecord struct {
	Team         int64  `parquet:"team"`
	TypeIndex    int32  `parquet:"type_index"`
	GroupKey     string `parquet:"group_key"`
	Version      int64  `parquet:"version"`
	Properties   string `parquet:"properties,json"`
	Revision     uint64 `parquet:"revision"`
	Results      []byte `parquet:"results"`
	ResultsStamp int64  `parquet:"results_stamp"`
	// State is store.Group's binary encoding (registers included).
	State []byte `parquet:"state"`
}

// GroupTypeRecord is one group type name.
type GroupTypeRecord struct {
	Team  int64  `parquet:"team"`
	Index int32  `parquet:"type_index"`
	Name  string `parquet:"name"`
}

// tableOf names the table of an entity and its team.
func tableOf(e store.Entity) (string, int64) {
	switch {
	case e.Person != nil:
		return TablePersons, e.Person.Team
	case e.Mapping != nil:
		return TableMappings, e.Mapping.Team
	case e.Index != nil:
		return TableIndex, e.Index.Team
	case e.Row != nil:
		return TableRows, e.Row.Team
	case e.Group != nil:
		return TableGroups, e.Group.Team
	case e.GroupType != nil:
		return TableGroupTypes, e.GroupType.Team
	}
	return "", 0
}

func personRecord(p *store.Person) (PersonRecord, error) {
	state, err := p.MarshalBinary()
	return PersonRecord{Team: p.Team, PersonID: p.ID, Version: p.Version, Deleted: p.Deleted,
		DeleteVersion: p.DeleteVersion, State: state}, err
}

func rowRecord(r *store.Row) RowRecord {
	return RowRecord{Team: r.Team, DistinctID: r.DistinctID, PersonID: r.PersonID, PersonVersion: r.PersonVersion,
		Revision: r.Revision, Properties: string(r.Properties), Results: r.Results, ResultsStamp: r.ResultsStamp,
		Counters: r.Counters}
}

func groupRecord(g *store.Group) (GroupRecord, error) {
	state, err := g.MarshalBinary()
	return GroupRecord{Team: g.Team, TypeIndex: int32(g.TypeIndex), GroupKey: g.Key, Version: g.Version,
		Properties: string(g.Properties), Revision: g.Revision, Results: g.Results, ResultsStamp: g.ResultsStamp,
		State: state}, err
}
