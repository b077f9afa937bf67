package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/vexil-dev/vexil/flags"
)

// Sentinel errors. Backends wrap them with the operation
// ("catalog: update flag 7: catalog: version conflict"); test with errors.Is.
var (
	// ErrNotFound: no such team, key, flag, cohort, early access feature or job.
	ErrNotFound = errors.New("catalog: not found")
	// ErrConflict: the expected version is not the stored one (a lost
	// update), or the record is already in the state asked for (a key
	// revoked twice).
	ErrConflict = errors.New("catalog: version conflict")
	// ErrExists: the unique name is taken (a flag key in its team, a key id
	// or key hash, an explicit team id).
	ErrExists = errors.New("catalog: already exists")
	// ErrInvalid: the record cannot be stored as given (no team, no key, no
	// hash, a bad page cursor).
	ErrInvalid = errors.New("catalog: invalid record")
	// ErrClosed: the catalog was closed.
	ErrClosed = errors.New("catalog: closed")
)

// Catalog stores Vexil's definitions. Implementations are safe for concurrent
// use, also from several processes (nodes) sharing one database: every write
// of a versioned record is a compare-and-set on its version.
type Catalog interface {
	Teams
	Keys
	Flags
	Cohorts
	EarlyAccess
	Activity
	Jobs
	Markers
	Snapshotter
	// Close releases the catalog's resources.
	Close() error
}

// Teams stores teams (PostHog's projects).
type Teams interface {
	// CreateTeam stores a new team with Version 1. A zero ID allocates the
	// next id (monotonic, starting at 1); an explicit ID that is taken is
	// ErrExists.
	CreateTeam(ctx context.Context, t Team, ch Change) (Team, error)
	// GetTeam returns the team or ErrNotFound.
	GetTeam(ctx context.Context, id int64) (Team, error)
	// ListTeams returns all teams ordered by id.
	ListTeams(ctx context.Context) ([]Team, error)
	// UpdateTeam replaces the team if its stored Version is t.Version
	// (else ErrConflict) and returns it with Version+1.
	UpdateTeam(ctx context.Context, t Team, ch Change) (Team, error)
}

// Keys stores API keys, hashed.
type Keys interface {
	// PutKey stores a new key with Version 1. ID, Kind and Hash are
	// required; a taken ID or Hash is ErrExists.
	PutKey(ctx context.Context, k APIKey, ch Change) (APIKey, error)
	// GetKey returns the key by id, revoked or not, or ErrNotFound.
	GetKey(ctx context.Context, id string) (APIKey, error)
	// GetKeyByHash is the authentication path: one keyed read by the hash
	// of the secret. It returns revoked keys too; check RevokedAt.
	GetKeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	// ListKeys returns the keys that reach the team, revoked ones
	// included, ordered by id. Team 0 lists the keys with no Teams
	// (instance-wide keys).
	ListKeys(ctx context.Context, teamID int64) ([]APIKey, error)
	// RevokeKey sets RevokedAt to now. Revoking a revoked key is
	// ErrConflict.
	RevokeKey(ctx context.Context, id string, ch Change) (APIKey, error)
}

// Flags stores feature flags.
type Flags interface {
	// CreateFlag stores a new flag: r.Flag.TeamID and r.Flag.Key are
	// required, the ID is allocated (global sequence), Version is 1,
	// CreatedAt and UpdatedAt are now. A key already used by a live
	// (not deleted) flag of the team is ErrExists, also under concurrent
	// creates from several nodes.
	CreateFlag(ctx context.Context, r FlagRecord, ch Change) (FlagRecord, error)
	// GetFlag returns the flag by id, deleted or not, or ErrNotFound.
	GetFlag(ctx context.Context, teamID, id int64) (FlagRecord, error)
	// GetFlagByKey returns the live (not deleted) flag with this key.
	GetFlagByKey(ctx context.Context, teamID int64, key string) (FlagRecord, error)
	// ListFlags returns all the team's flags, archived and deleted ones
	// included, ordered by id; the caller filters.
	ListFlags(ctx context.Context, teamID int64) ([]FlagRecord, error)
	// UpdateFlag replaces the flag if its stored version is r.Flag.Version
	// (else ErrConflict) and returns it with Version+1 and UpdatedAt now.
	// Deleting is an update with Deleted set: it frees the key. Changing
	// the key claims the new one (ErrExists if taken).
	UpdateFlag(ctx context.Context, r FlagRecord, ch Change) (FlagRecord, error)
}

// Cohorts stores cohorts and the members of static cohorts.
type Cohorts interface {
	// CreateCohort stores a new cohort: r.Cohort.TeamID is required, the ID
	// is allocated (global sequence), Version is 1.
	CreateCohort(ctx context.Context, r CohortRecord, ch Change) (CohortRecord, error)
	// GetCohort returns the cohort, deleted or not, or ErrNotFound.
	GetCohort(ctx context.Context, teamID, id int64) (CohortRecord, error)
	// ListCohorts returns all the team's cohorts, deleted included, by id.
	ListCohorts(ctx context.Context, teamID int64) ([]CohortRecord, error)
	// UpdateCohort is a compare-and-set on r.Cohort.Version (ErrConflict
	// on mismatch); it returns the cohort with Version+1.
	UpdateCohort(ctx context.Context, r CohortRecord, ch Change) (CohortRecord, error)
	// AddCohortMembers adds distinct ids to a static cohort (idempotent)
	// and records one activity entry. The cohort must exist.
	AddCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch Change) error
	// RemoveCohortMembers removes distinct ids (absent ones are ignored)
	// and records one activity entry.
	RemoveCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch Change) error
	// ListCohortMembers pages through the members in distinct id order.
	ListCohortMembers(ctx context.Context, teamID, cohortID int64, p Page) ([]string, string, error)
	// IsCohortMember reports whether the distinct id is a member.
	IsCohortMember(ctx context.Context, teamID, cohortID int64, distinctID string) (bool, error)
}

// EarlyAccess stores early access features.
type EarlyAccess interface {
	// CreateEarlyAccess stores a new feature: TeamID is required, the ID
	// (a random UUID string) is allocated, Version is 1.
	CreateEarlyAccess(ctx context.Context, f EarlyAccessFeature, ch Change) (EarlyAccessFeature, error)
	// GetEarlyAccess returns the feature or ErrNotFound.
	GetEarlyAccess(ctx context.Context, teamID int64, id string) (EarlyAccessFeature, error)
	// ListEarlyAccess returns the team's features ordered by CreatedAt,
	// then ID. Deleted features are included (Deleted set).
	ListEarlyAccess(ctx context.Context, teamID int64) ([]EarlyAccessFeature, error)
	// UpdateEarlyAccess is a compare-and-set on f.Version.
	UpdateEarlyAccess(ctx context.Context, f EarlyAccessFeature, ch Change) (EarlyAccessFeature, error)
}

// Activity reads the activity log. Entries are written by the catalog with
// the change they record; there is no separate append.
type Activity interface {
	// ListActivity returns entries newest first, at most q.Limit (default
	// 100, max 1000), and the cursor of the next page ("" at the end).
	ListActivity(ctx context.Context, q ActivityQuery) ([]ActivityEntry, string, error)
}

// Jobs stores blast-radius jobs; the admin API runs them.
type Jobs interface {
	// CreateJob stores a new job: TeamID is required; a zero ID allocates
	// a random one; Version is 1; CreatedAt is now.
	CreateJob(ctx context.Context, j BlastRadiusJob) (BlastRadiusJob, error)
	// GetJob returns the job or ErrNotFound.
	GetJob(ctx context.Context, teamID int64, id string) (BlastRadiusJob, error)
	// ListJobs returns the team's jobs, newest first.
	ListJobs(ctx context.Context, teamID int64) ([]BlastRadiusJob, error)
	// UpdateJob is a compare-and-set on j.Version (progress, result,
	// status, cancel request); it returns the job with Version+1.
	UpdateJob(ctx context.Context, j BlastRadiusJob) (BlastRadiusJob, error)
}

// Markers stores cluster-wide markers: small named records, written only by
// a compare-and-set, so that of several nodes starting at once on one
// catalog exactly one does a one-time job (seeding the demo, creating the
// first key) and the others read what it did.
type Markers interface {
	// GetMarker returns the marker or ErrNotFound.
	GetMarker(ctx context.Context, name string) (Marker, error)
	// PutMarker creates the marker when m.Version is 0 (ErrExists if it
	// exists), else replaces it if its stored Version is m.Version
	// (ErrConflict otherwise, ErrNotFound if there is none). It returns
	// the marker with Version+1 and UpdatedAt now. The name is 1 to
	// MaxMarkerName bytes, the value at most MaxMarkerValue bytes of JSON
	// (ErrInvalid otherwise).
	PutMarker(ctx context.Context, m Marker) (Marker, error)
}

// Marker bounds.
const (
	MaxMarkerName  = 200
	MaxMarkerValue = 64 << 10
)

// Marker is a cluster-wide marker (Markers). Value is the owner's JSON.
type Marker struct {
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value,omitempty"`
	Version   int64           `json:"version"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Snapshotter reads what the evaluation side needs to compile a team.
type Snapshotter interface {
	// Snapshot returns the team and its live definitions: flags not
	// deleted, cohorts not deleted, group types, property matching
	// version and time zone. ErrNotFound if the team does not exist.
	Snapshot(ctx context.Context, teamID int64) (TeamSnapshot, error)
}

// Restorer loads a team's definitions as another catalog held them (a
// snapshot's): the team, flags, cohorts and early access features keep
// their ids and versions, so flags still reference the same cohorts and
// flags, and /flags answers the same versions. Id sequences move past the
// restored ids. A team that exists is refused (ErrExists) unless replace,
// which overwrites the records of the same ids and keeps the others. The
// Pebble, in-memory and ScyllaDB catalogs implement it.
type Restorer interface {
	RestoreTeam(ctx context.Context, s TeamSnapshot, replace bool, ch Change) error
}

// Team is a project: the unit that owns flags, cohorts and keys.
type Team struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Timezone string `json:"timezone,omitempty"` // IANA; empty is UTC
	// GroupTypes maps a group type index (0..flags.MaxGroupTypes-1) to its
	// name ("company").
	GroupTypes map[int]string `json:"group_types,omitempty"`
	// PropertyMatchingVersion is 1 (the default when 0) or 2.
	PropertyMatchingVersion int       `json:"property_matching_version,omitempty"`
	Version                 int64     `json:"version"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
}

// KeyKind is the kind of an API key.
type KeyKind string

// Key kinds: phc_, phs_ and phx_ keys.
const (
	KeyProjectToken KeyKind = "project_token" // evaluation only; public
	KeySecure       KeyKind = "secure"        // local-evaluation definitions
	KeyPersonal     KeyKind = "personal"      // management API, with scopes
)

// APIKey is a stored API key. The secret itself is never stored: Hash is
// the SHA-256 of it (or another digest the caller chooses).
type APIKey struct {
	ID   string  `json:"id"`
	Kind KeyKind `json:"kind"`
	// Prefix is the start of the secret, for display ("phx_a1b2").
	Prefix string `json:"prefix"`
	Hash   []byte `json:"hash"`
	// Teams the key reaches. Project tokens and secure keys have exactly
	// one; a personal key may have several, or none (instance-wide).
	Teams     []int64   `json:"teams,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Label     string    `json:"label,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is zero while the key is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Version   int64     `json:"version"`
}

// Revoked reports whether the key was revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// FlagRecord is a stored flag. Flag.Version is the compare-and-set version;
// Flag.Deleted and Flag.Active live inside the flag.
type FlagRecord struct {
	Flag      flags.Flag `json:"flag"`
	Archived  bool       `json:"archived,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

// CohortRecord is a stored cohort. Cohort.Version is the compare-and-set
// version. Members of a static cohort are stored apart (AddCohortMembers).
type CohortRecord struct {
	Cohort      flags.Cohort `json:"cohort"`
	Description string       `json:"description,omitempty"`
	Deleted     bool         `json:"deleted,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	CreatedBy   string       `json:"created_by,omitempty"`
	UpdatedBy   string       `json:"updated_by,omitempty"`
}

// Stage is an early access feature's stage.
type Stage string

// Stages, as PostHog names them.
const (
	StageConcept  Stage = "concept"
	StageAlpha    Stage = "alpha"
	StageBeta     Stage = "beta"
	StageGA       Stage = "general-availability"
	StageArchived Stage = "archived"
)

// EarlyAccessFeature is a feature users may opt into, tied to a flag.
type EarlyAccessFeature struct {
	ID               string    `json:"id"`
	TeamID           int64     `json:"team_id"`
	Key              string    `json:"key,omitempty"`
	Name             string    `json:"name"`
	Description      string    `json:"description,omitempty"`
	Stage            Stage     `json:"stage"`
	DocumentationURL string    `json:"documentation_url,omitempty"`
	FlagID           int64     `json:"flag_id,omitempty"`
	Deleted          bool      `json:"deleted,omitempty"`
	Version          int64     `json:"version"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	CreatedBy        string    `json:"created_by,omitempty"`
	UpdatedBy        string    `json:"updated_by,omitempty"`
}

// Change says who makes a write; the catalog turns it into the
// ActivityEntry stored with the write.
type Change struct {
	// Actor is the API key id of the caller ("cli" or "system" otherwise).
	Actor string
	// Action defaults to "created", "updated", "deleted" (when the write
	// sets Deleted), "revoked", "members_added" or "members_removed".
	Action string
	// Diff is the caller's description of what changed (optional JSON).
	Diff json.RawMessage
}

// Scope names the kind of record an activity entry is about.
type Scope string

// Activity scopes.
const (
	ScopeTeam        Scope = "team"
	ScopeKey         Scope = "key"
	ScopeFlag        Scope = "flag"
	ScopeCohort      Scope = "cohort"
	ScopeEarlyAccess Scope = "early_access"
)

// ActivityEntry records one committed change.
type ActivityEntry struct {
	TeamID int64 `json:"team_id"`
	// ID is time-ordered: a later entry has a larger ID (as a string).
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Scope  Scope     `json:"scope"`
	ItemID string    `json:"item_id"` // decimal for flags, cohorts, teams
	Action string    `json:"action"`
	// Before and After are the record's JSON before and after the change
	// (Before is null on create).
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	Diff   json.RawMessage `json:"diff,omitempty"`
}

// ActivityQuery selects activity entries: the team's, or one item's when
// Scope and ItemID are set.
type ActivityQuery struct {
	TeamID int64
	Scope  Scope
	ItemID string
	Page
}

// Page asks for one page of a list: at most Limit items (0: the default)
// after Cursor, an opaque value returned with the previous page ("" for
// the first).
type Page struct {
	Limit  int
	Cursor string
}

// Page limits.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// JobStatus is a blast-radius job's state.
type JobStatus string

// Job states.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobDone      JobStatus = "done"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
)

// BlastRadiusJob is a stored blast-radius computation: how many persons a
// flag definition would reach.
type BlastRadiusJob struct {
	ID     string    `json:"id"`
	TeamID int64     `json:"team_id"`
	Status JobStatus `json:"status"`
	// Request is the caller's input (the flag definition), opaque here.
	Request json.RawMessage `json:"request,omitempty"`
	// Done and Total are the progress (persons evaluated / to evaluate).
	Done            int64              `json:"done"`
	Total           int64              `json:"total"`
	Result          *BlastRadiusResult `json:"result,omitempty"`
	Error           string             `json:"error,omitempty"`
	CancelRequested bool               `json:"cancel_requested,omitempty"`
	CreatedBy       string             `json:"created_by,omitempty"`
	CreatedAt       time.Time          `json:"created_at"`
	UpdatedAt       time.Time          `json:"updated_at"`
	FinishedAt      time.Time          `json:"finished_at,omitzero"`
	Version         int64              `json:"version"`
}

// BlastRadiusResult is what a finished (or partial) job found.
type BlastRadiusResult struct {
	Evaluated int64            `json:"evaluated"`
	Matched   int64            `json:"matched"`
	ByVariant map[string]int64 `json:"by_variant,omitempty"`
	// Sample holds some matched distinct ids.
	Sample []string `json:"sample,omitempty"`
	// Groups evaluated and matched (value changed), by transition, and
	// some matched as "<type index>:<key>": for flags with group-aggregated
	// conditions.
	GroupsEvaluated int64            `json:"groups_evaluated,omitempty"`
	GroupsMatched   int64            `json:"groups_matched,omitempty"`
	GroupsByVariant map[string]int64 `json:"groups_by_variant,omitempty"`
	GroupSample     []string         `json:"group_sample,omitempty"`
}

// TeamSnapshot is a team's live definitions in one read.
type TeamSnapshot struct {
	Team Team
	// Definitions is ready for flags.Compile: flags and cohorts not
	// deleted (archived flags included), the team's group types, property
	// matching version and time zone.
	Definitions flags.Definitions
	// EarlyAccess holds the features not deleted.
	EarlyAccess []EarlyAccessFeature
}

// EffectiveLimit returns the page size to use: Limit clamped to
// MaxPageLimit, DefaultPageLimit when zero or negative.
func (p Page) EffectiveLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}
