package store

import (
	"cmp"
	"context"
	"errors"
	"strings"
)

// Sentinel errors. Backends wrap them with %w and the operation; test them
// with errors.Is.
var (
	// ErrNotFound reports that the entity does not exist (or, for a row, that
	// its person is deleted).
	ErrNotFound = errors.New("store: not found")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid reports an invalid argument: a group type index outside
	// 0..MaxGroupTypeIndex, a negative limit, a malformed cursor, a
	// property value that is not JSON.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrCorrupt reports stored bytes that do not decode.
	ErrCorrupt = errors.New("store: corrupt data")
)

// MaxGroupTypeIndex is the largest accepted group type index (PostHog uses
// 0..4).
const MaxGroupTypeIndex = 255

// Reader is what the evaluation path reads: one keyed read per row or group.
type Reader interface {
	// GetRow returns the row of (team, distinctID), or an error wrapping
	// ErrNotFound when there is none or its person is deleted.
	GetRow(ctx context.Context, team int64, distinctID string) (*Row, error)
	// GetGroup returns the group (team, typeIndex, key), or an error wrapping
	// ErrNotFound.
	GetGroup(ctx context.Context, team int64, typeIndex int, key string) (*Group, error)
}

// LocalReader is implemented by a Reader whose reads stay on the node
// (memstore, pebblestore): they wait on no network, and nothing can
// interrupt one once it started, so a deadline on its context bounds
// nothing. Callers that put a timer on each read of a remote store
// (scyllastore) skip it for a reader whose LocalReads is true; the
// context still carries the caller's cancellation. A wrapper of a reader
// forwards LocalReads only if it adds no wait of its own.
type LocalReader interface {
	Reader
	// LocalReads reports whether every read is local.
	LocalReads() bool
}

// RowBufferReader is implemented by a Reader that can read a row into
// memory its caller provides (pebblestore): a caller that reads a row per
// request keeps one buffer, rather than leaving a copy of every row read
// to the collector.
type RowBufferReader interface {
	// GetRowBuffer is GetRow into row, whose byte fields and PersonID are
	// in buf's memory (grown when too small, and returned whatever the
	// error). They are the caller's until it reuses buf: nothing of them
	// may be kept past that (copy what is kept, PersonID included).
	GetRowBuffer(ctx context.Context, team int64, distinctID string, row *Row, buf []byte) ([]byte, error)
}

// Store is the full store interface, implemented by memstore, pebblestore
// and scyllastore. Methods are safe for concurrent use. Every write goes
// through Apply. Person ids, distinct ids and group keys are non-empty
// valid UTF-8 of at most a few KiB (the ingest guarantees it); backends may
// refuse others.
type Store interface {
	Reader

	// GetPerson returns the canonical state of a person, tombstoned or not,
	// or an error wrapping ErrNotFound.
	GetPerson(ctx context.Context, team int64, personID string) (*Person, error)
	// GetPersons returns the persons among keys that exist, tombstoned ones
	// included; missing keys are absent from the map.
	GetPersons(ctx context.Context, keys []PersonKey) (map[PersonKey]*Person, error)
	// GetMapping returns the distinct id's mapping register, or an error
	// wrapping ErrNotFound.
	GetMapping(ctx context.Context, team int64, distinctID string) (Mapping, error)
	// GetMappings returns the mappings among keys that exist; missing keys
	// are absent from the map.
	GetMappings(ctx context.Context, keys []DistinctKey) (map[DistinctKey]Mapping, error)
	// DistinctIDs returns the person → distinct ids index entries of a
	// person, sorted bytewise. It may hold ids whose mapping has since
	// moved; callers check the mapping.
	DistinctIDs(ctx context.Context, team int64, personID string) ([]string, error)
	// GetGroupTypes returns a team's group type mappings sorted by index.
	GetGroupTypes(ctx context.Context, team int64) ([]GroupType, error)

	// ScanRows returns up to limit visible rows of a team starting at cursor
	// ("" = the beginning). Page.Next is "" after the last page. The order
	// is deterministic for a given content (memstore and pebblestore:
	// distinct id bytewise); every row present for the whole scan is
	// returned exactly once. limit <= 0 means DefaultScanLimit.
	ScanRows(ctx context.Context, team int64, cursor string, limit int) (RowPage, error)

	// ScanGroups returns up to limit groups of (team, typeIndex) starting
	// at cursor, with the contract of ScanRows (memstore and pebblestore:
	// group key bytewise). Groups that have results but were never put are
	// not returned. A typeIndex out of range is an error wrapping
	// ErrInvalid.
	ScanGroups(ctx context.Context, team int64, typeIndex int, cursor string, limit int) (GroupPage, error)

	// DueExpiries returns the expiry entries with At <= until across all
	// teams, ordered by (At, Team, Target), at most limit of them (limit
	// <= 0 means DefaultScanLimit). The entries stay until a batch deletes
	// them (Batch.DeleteExpiry).
	DueExpiries(ctx context.Context, until int64, limit int) ([]Expiry, error)

	// Apply writes b atomically where the backend can (memstore, Pebble) and
	// durably in every backend: when Apply returns nil, every write in b
	// survives a crash, unless b is marked Derived (then a crash may lose
	// it, whole). Applying an empty batch is a no-op. A batch that
	// fails b.Validate is refused (ErrInvalid) before anything is written.
	Apply(ctx context.Context, b *Batch) error

	// Dump calls fn once for every stored entity: persons (tombstoned
	// included), mappings, index entries, visible rows, groups and group
	// types. Expiry entries are scheduling data, not state: Dump does not
	// visit them (nor group results stored for a group never put). The order is backend-defined; storetest.Digest sorts. An error
	// from fn stops the walk and is returned. fn may read the store.
	Dump(ctx context.Context, fn func(Entity) error) error

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// DefaultScanLimit is the page size of ScanRows, ScanGroups and
// DueExpiries when limit <= 0.
const DefaultScanLimit = 1000

// RowPage is one page of ScanRows.
type RowPage struct {
	// Rows in scan order.
	Rows []*Row
	// Next is the cursor of the following page, "" when there is none.
	Next string
}

// GroupPage is one page of ScanGroups.
type GroupPage struct {
	// Groups in scan order.
	Groups []*Group
	// Next is the cursor of the following page, "" when there is none.
	Next string
}

// Expiry is one entry of the time-ordered expiry index: the precompute
// worker recomputes Target's stored results when At is reached. The same
// (Team, At, Target) is one entry.
type Expiry struct {
	Team int64
	// At is the due time in Unix milliseconds.
	At int64
	// Target is opaque to the store (e.g. "r:<distinct id>"): non-empty
	// valid UTF-8.
	Target string
}

// CompareExpiry orders expiry entries by (At, Team, Target), the order of
// DueExpiries.
func CompareExpiry(a, b Expiry) int {
	if c := cmp.Compare(a.At, b.At); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	return strings.Compare(a.Target, b.Target)
}

// PersonKey identifies a person.
type PersonKey struct {
	Team int64
	ID   string
}

// DistinctKey identifies a distinct id (its mapping and its row).
type DistinctKey struct {
	Team       int64
	DistinctID string
}

// GroupKey identifies a group.
type GroupKey struct {
	Team      int64
	TypeIndex int
	Key       string
}

// Register is one version-stamped property register. Value is compact JSON
// text (numbers keep their original text); nil means a tombstone in an S
// register ($unset) and a blanked value in an O register.
type Register struct {
	Version int64
	Value   []byte
}

// Person is the canonical property state of a person: see the package
// documentation for the rules.
type Person struct {
	Team int64
	ID   string
	// Version is the highest version of any update or delete applied.
	Version int64
	// Deleted is set once a delete has been applied; DeleteVersion is the
	// highest delete version.
	Deleted       bool
	DeleteVersion int64
	// Set holds the S registers ($set / $unset), SetOnce the O registers.
	Set     map[string]Register
	SetOnce map[string]Register
}

// Mapping is the distinct id → person register: last writer wins by
// Version, ties go to the bytewise larger PersonID.
type Mapping struct {
	Team       int64
	DistinctID string
	PersonID   string
	Version    int64
}

// IndexEntry is one person → distinct id index entry.
type IndexEntry struct {
	Team       int64
	PersonID   string
	DistinctID string
}

// Row is the unit of evaluation for (Team, DistinctID).
type Row struct {
	Team       int64
	DistinctID string
	// PersonID is the person the distinct id maps to.
	PersonID string
	// PersonVersion is the person's Version when the row was derived.
	PersonVersion int64
	// Revision is xxhash64 of Properties: it changes exactly when the
	// effective properties do.
	Revision uint64
	// Properties is the person's effective properties as a canonical JSON
	// object (keys sorted bytewise, values as written).
	Properties []byte
	// Results and Counters are opaque, owned by later stages (precomputed
	// flag results, behavioural counters); person rewrites keep them.
	Results  []byte
	Counters []byte
	// ResultsStamp is the stamp of the stored Results (see
	// Batch.SetResults), 0 when none were written.
	ResultsStamp int64
}

// Group is the state of one group: S registers as for persons (no
// $set_once), and the effective properties derived from them.
type Group struct {
	Team      int64
	TypeIndex int
	Key       string
	// Version is the highest version applied.
	Version int64
	// Set holds the S registers.
	Set map[string]Register
	// Properties is the effective properties as a canonical JSON object and
	// Revision its xxhash64, as for rows. Group.ApplyUpdate keeps them.
	Properties []byte
	Revision   uint64
	// Results is opaque (precomputed flag results for the group), written
	// only by Batch.SetGroupResults with ResultsStamp as for rows; PutGroup
	// keeps the stored ones and ignores these fields.
	Results      []byte
	ResultsStamp int64
	// Counters is opaque (the behavioural counters of group-aggregated
	// cohorts, package flags/counters), written only by
	// Batch.SetGroupCounters; PutGroup keeps the stored ones and ignores
	// this field. Counters of a group never put are not visible (a backend
	// may drop them).
	Counters []byte
}

// GroupType maps a group type index to its name within a team.
type GroupType struct {
	Team  int64
	Index int
	Name  string
}

// Entity is one item of Dump: exactly one field is non-nil.
type Entity struct {
	Person    *Person
	Mapping   *Mapping
	Index     *IndexEntry
	Row       *Row
	Group     *Group
	GroupType *GroupType
}
