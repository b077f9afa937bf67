// Package records holds what every catalog backend does the same way before
// it writes: checking a record, filling its ids, versions and timestamps,
// deciding which flag key it claims, and building the activity entry that
// goes with it. Backends differ only in how they store the result.
package records

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

// Actions recorded by default.
const (
	ActionCreated        = "created"
	ActionUpdated        = "updated"
	ActionDeleted        = "deleted"
	ActionRestored       = "restored"
	ActionRevoked        = "revoked"
	ActionMembersAdded   = "members_added"
	ActionMembersRemoved = "members_removed"
)

// EntryIDs generates time-ordered activity entry ids: 16 hex digits of Unix
// nanoseconds, made strictly increasing within the process, then 8 random
// hex digits so that two nodes writing in the same nanosecond differ.
type EntryIDs struct {
	mu   sync.Mutex
	last int64 // guarded by mu: the last nanosecond value handed out
}

// Next returns a new id for an entry written at now.
func (g *EntryIDs) Next(now time.Time) string {
	n := now.UnixNano()
	g.mu.Lock()
	if n <= g.last {
		n = g.last + 1
	}
	g.last = n
	g.mu.Unlock()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%016x%08x", uint64(n), binary.BigEndian.Uint32(b[:]))
}

// EntryIDLen is the length of an activity entry id.
const EntryIDLen = 24

// CheckEntryID reports whether s has the shape of an entry id (a cursor).
func CheckEntryID(s string) error {
	if len(s) != EntryIDLen {
		return fmt.Errorf("cursor %q: %w", s, catalog.ErrInvalid)
	}
	if _, err := hex.DecodeString(s); err != nil || strings.ToLower(s) != s {
		return fmt.Errorf("cursor %q: %w", s, catalog.ErrInvalid)
	}
	return nil
}

// RandomID returns a random (version 4) UUID string.
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Entry builds the activity entry of a write. before may be nil (create).
func Entry(g *EntryIDs, now time.Time, team int64, scope catalog.Scope, item, action string, ch catalog.Change, before, after any) (catalog.ActivityEntry, error) {
	e := catalog.ActivityEntry{
		TeamID: team,
		ID:     g.Next(now),
		At:     now,
		Actor:  ch.Actor,
		Scope:  scope,
		ItemID: item,
		Action: action,
		Diff:   ch.Diff,
	}
	if ch.Action != "" {
		e.Action = ch.Action
	}
	var err error
	if before != nil {
		if e.Before, err = json.Marshal(before); err != nil {
			return e, fmt.Errorf("activity before: %w", err)
		}
	}
	if after != nil {
		if e.After, err = json.Marshal(after); err != nil {
			return e, fmt.Errorf("activity after: %w", err)
		}
	}
	if len(e.Diff) > 0 && !json.Valid(e.Diff) {
		return e, fmt.Errorf("activity diff is not JSON: %w", catalog.ErrInvalid)
	}
	return e, nil
}

// CheckChange refuses a change whose diff is not JSON.
func CheckChange(ch catalog.Change) error {
	if len(ch.Diff) > 0 && !json.Valid(ch.Diff) {
		return fmt.Errorf("activity diff is not JSON: %w", catalog.ErrInvalid)
	}
	return nil
}

// ItemID formats a numeric id as an activity item id.
func ItemID(id int64) string { return strconv.FormatInt(id, 10) }

// CheckText refuses a string that an index key cannot hold (NUL bytes) or
// that is empty when required.
func CheckText(what, s string, required bool) error {
	if required && s == "" {
		return fmt.Errorf("%s is empty: %w", what, catalog.ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL byte: %w", what, catalog.ErrInvalid)
	}
	return nil
}

// CheckTeamID refuses team ids below 1.
func CheckTeamID(id int64) error {
	if id <= 0 {
		return fmt.Errorf("team id %d: %w", id, catalog.ErrInvalid)
	}
	return nil
}

// CheckQuery checks an activity query.
func CheckQuery(q catalog.ActivityQuery) error {
	if q.TeamID < 0 {
		return fmt.Errorf("team id %d: %w", q.TeamID, catalog.ErrInvalid)
	}
	if (q.Scope == "") != (q.ItemID == "") {
		return fmt.Errorf("activity query needs both scope and item id, or neither: %w", catalog.ErrInvalid)
	}
	if err := CheckText("scope", string(q.Scope), false); err != nil {
		return err
	}
	if err := CheckText("item id", q.ItemID, false); err != nil {
		return err
	}
	if q.Cursor != "" {
		return CheckEntryID(q.Cursor)
	}
	return nil
}

// CheckMembers refuses empty or NUL-holding distinct ids and returns them
// sorted without duplicates.
func CheckMembers(ids []string) ([]string, error) {
	out := slices.Clone(ids)
	for _, id := range out {
		if err := CheckText("distinct id", id, true); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// NewTeam fills a team being created.
func NewTeam(t catalog.Team, id int64, now time.Time) (catalog.Team, error) {
	if err := checkTeam(t); err != nil {
		return t, err
	}
	t.ID = id
	t.Version = 1
	t.CreatedAt, t.UpdatedAt = now, now
	t.GroupTypes = cloneGroupTypes(t.GroupTypes)
	return t, nil
}

// UpdatedTeam is t as stored over old.
func UpdatedTeam(old, t catalog.Team, now time.Time) (catalog.Team, error) {
	if err := checkTeam(t); err != nil {
		return t, err
	}
	t.ID = old.ID
	t.Version = old.Version + 1
	t.CreatedAt = old.CreatedAt
	t.UpdatedAt = now
	t.GroupTypes = cloneGroupTypes(t.GroupTypes)
	return t, nil
}

func checkTeam(t catalog.Team) error {
	if t.ID < 0 {
		return fmt.Errorf("team id %d: %w", t.ID, catalog.ErrInvalid)
	}
	for i := range t.GroupTypes {
		if i < 0 || i >= flags.MaxGroupTypes {
			return fmt.Errorf("group type index %d: %w", i, catalog.ErrInvalid)
		}
	}
	if t.PropertyMatchingVersion < 0 || t.PropertyMatchingVersion > 2 {
		return fmt.Errorf("property matching version %d: %w", t.PropertyMatchingVersion, catalog.ErrInvalid)
	}
	return nil
}

func cloneGroupTypes(m map[int]string) map[int]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[int]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// NewKey fills a key being stored.
func NewKey(k catalog.APIKey, now time.Time) (catalog.APIKey, error) {
	if err := CheckText("key id", k.ID, true); err != nil {
		return k, err
	}
	switch k.Kind {
	case catalog.KeyProjectToken, catalog.KeySecure:
		if len(k.Teams) != 1 {
			return k, fmt.Errorf("%s key needs exactly one team: %w", k.Kind, catalog.ErrInvalid)
		}
	case catalog.KeyPersonal:
	default:
		return k, fmt.Errorf("key kind %q: %w", k.Kind, catalog.ErrInvalid)
	}
	if len(k.Hash) == 0 {
		return k, fmt.Errorf("key %s has no hash: %w", k.ID, catalog.ErrInvalid)
	}
	teams := slices.Clone(k.Teams)
	slices.Sort(teams)
	teams = slices.Compact(teams)
	for _, t := range teams {
		if err := CheckTeamID(t); err != nil {
			return k, err
		}
	}
	k.Teams = teams
	k.Hash = slices.Clone(k.Hash)
	k.Scopes = slices.Clone(k.Scopes)
	k.Version = 1
	k.CreatedAt = now
	k.RevokedAt = time.Time{}
	return k, nil
}

// KeyTeams returns the teams under which a key is listed and its activity
// recorded: its Teams, or team 0 for an instance-wide key.
func KeyTeams(k catalog.APIKey) []int64 {
	if len(k.Teams) == 0 {
		return []int64{0}
	}
	return k.Teams
}

// Revoked is k revoked at now, or ErrConflict if it already is.
func Revoked(k catalog.APIKey, now time.Time) (catalog.APIKey, error) {
	if k.Revoked() {
		return k, fmt.Errorf("key %s already revoked: %w", k.ID, catalog.ErrConflict)
	}
	k.RevokedAt = now
	k.Version++
	return k, nil
}

// NewFlag fills a flag being created.
func NewFlag(r catalog.FlagRecord, id int64, now time.Time, ch catalog.Change) (catalog.FlagRecord, error) {
	if err := CheckTeamID(r.Flag.TeamID); err != nil {
		return r, err
	}
	if err := CheckText("flag key", r.Flag.Key, true); err != nil {
		return r, err
	}
	r.Flag.ID = id
	r.Flag.Version = 1
	r.CreatedAt, r.UpdatedAt = now, now
	if r.CreatedBy == "" {
		r.CreatedBy = ch.Actor
	}
	r.UpdatedBy = r.CreatedBy
	return r, nil
}

// UpdatedFlag is r as stored over old, with the action to record.
// The caller has checked r.Flag.Version == old.Flag.Version.
func UpdatedFlag(old, r catalog.FlagRecord, now time.Time, ch catalog.Change) (catalog.FlagRecord, string, error) {
	if err := CheckText("flag key", r.Flag.Key, true); err != nil {
		return r, "", err
	}
	r.Flag.ID = old.Flag.ID
	r.Flag.TeamID = old.Flag.TeamID
	r.Flag.Version = old.Flag.Version + 1
	r.CreatedAt, r.CreatedBy = old.CreatedAt, old.CreatedBy
	r.UpdatedAt = now
	r.UpdatedBy = ch.Actor
	return r, deleteAction(old.Flag.Deleted, r.Flag.Deleted), nil
}

// FlagClaim is the key a flag holds in its team: its key while it is live.
func FlagClaim(r catalog.FlagRecord) (string, bool) {
	if r.Flag.Deleted {
		return "", false
	}
	return r.Flag.Key, true
}

// ClaimChange says how an update moves a flag's key claim: release old (if
// releaseOld), take new (if takeNew). Nothing moves when both are the same.
func ClaimChange(old, r catalog.FlagRecord) (oldKey string, releaseOld bool, newKey string, takeNew bool) {
	ok, oldLive := FlagClaim(old)
	nk, newLive := FlagClaim(r)
	if oldLive == newLive && ok == nk {
		return "", false, "", false
	}
	return ok, oldLive, nk, newLive
}

func deleteAction(wasDeleted, isDeleted bool) string {
	switch {
	case !wasDeleted && isDeleted:
		return ActionDeleted
	case wasDeleted && !isDeleted:
		return ActionRestored
	}
	return ActionUpdated
}

// NewCohort fills a cohort being created.
func NewCohort(r catalog.CohortRecord, id int64, now time.Time, ch catalog.Change) (catalog.CohortRecord, error) {
	if err := CheckTeamID(r.Cohort.TeamID); err != nil {
		return r, err
	}
	r.Cohort.ID = id
	r.Cohort.Version = 1
	r.CreatedAt, r.UpdatedAt = now, now
	if r.CreatedBy == "" {
		r.CreatedBy = ch.Actor
	}
	r.UpdatedBy = r.CreatedBy
	return r, nil
}

// UpdatedCohort is r as stored over old, with the action to record.
func UpdatedCohort(old, r catalog.CohortRecord, now time.Time, ch catalog.Change) (catalog.CohortRecord, string) {
	r.Cohort.ID = old.Cohort.ID
	r.Cohort.TeamID = old.Cohort.TeamID
	r.Cohort.Version = old.Cohort.Version + 1
	r.CreatedAt, r.CreatedBy = old.CreatedAt, old.CreatedBy
	r.UpdatedAt = now
	r.UpdatedBy = ch.Actor
	return r, deleteAction(old.Deleted, r.Deleted)
}

// MembersDiff is the diff recorded for a member change when the caller
// gave none: {"distinct_ids": [...]}.
func MembersDiff(ch catalog.Change, ids []string) catalog.Change {
	if len(ch.Diff) == 0 {
		ch.Diff, _ = json.Marshal(map[string][]string{"distinct_ids": ids})
	}
	return ch
}

// NewEarlyAccess fills a feature being created.
func NewEarlyAccess(f catalog.EarlyAccessFeature, now time.Time, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	if err := CheckTeamID(f.TeamID); err != nil {
		return f, err
	}
	if err := checkStage(f.Stage); err != nil {
		return f, err
	}
	f.ID = RandomID()
	f.Version = 1
	f.CreatedAt, f.UpdatedAt = now, now
	if f.CreatedBy == "" {
		f.CreatedBy = ch.Actor
	}
	f.UpdatedBy = f.CreatedBy
	return f, nil
}

// UpdatedEarlyAccess is f as stored over old, with the action to record.
func UpdatedEarlyAccess(old, f catalog.EarlyAccessFeature, now time.Time, ch catalog.Change) (catalog.EarlyAccessFeature, string, error) {
	if err := checkStage(f.Stage); err != nil {
		return f, "", err
	}
	f.ID, f.TeamID = old.ID, old.TeamID
	f.Version = old.Version + 1
	f.CreatedAt, f.CreatedBy = old.CreatedAt, old.CreatedBy
	f.UpdatedAt = now
	f.UpdatedBy = ch.Actor
	return f, deleteAction(old.Deleted, f.Deleted), nil
}

func checkStage(s catalog.Stage) error {
	switch s {
	case catalog.StageConcept, catalog.StageAlpha, catalog.StageBeta, catalog.StageGA, catalog.StageArchived:
		return nil
	}
	return fmt.Errorf("early access stage %q: %w", s, catalog.ErrInvalid)
}

// SortEarlyAccess orders features by CreatedAt, then ID.
func SortEarlyAccess(fs []catalog.EarlyAccessFeature) {
	slices.SortFunc(fs, func(a, b catalog.EarlyAccessFeature) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// NewJob fills a job being created.
func NewJob(j catalog.BlastRadiusJob, now time.Time) (catalog.BlastRadiusJob, error) {
	if err := CheckTeamID(j.TeamID); err != nil {
		return j, err
	}
	if j.ID == "" {
		j.ID = RandomID()
	}
	if err := CheckText("job id", j.ID, true); err != nil {
		return j, err
	}
	if j.Status == "" {
		j.Status = catalog.JobQueued
	}
	j.Version = 1
	j.CreatedAt, j.UpdatedAt = now, now
	return j, nil
}

// UpdatedJob is j as stored over old.
func UpdatedJob(old, j catalog.BlastRadiusJob, now time.Time) catalog.BlastRadiusJob {
	j.ID, j.TeamID = old.ID, old.TeamID
	j.Version = old.Version + 1
	j.CreatedAt, j.CreatedBy = old.CreatedAt, old.CreatedBy
	j.UpdatedAt = now
	return j
}

// SortJobs orders jobs newest first (CreatedAt, then ID, descending).
func SortJobs(js []catalog.BlastRadiusJob) {
	slices.SortFunc(js, func(a, b catalog.BlastRadiusJob) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
}

// Snapshot assembles a team's live definitions.
func Snapshot(t catalog.Team, fs []catalog.FlagRecord, cs []catalog.CohortRecord, es []catalog.EarlyAccessFeature) catalog.TeamSnapshot {
	s := catalog.TeamSnapshot{
		Team: t,
		Definitions: flags.Definitions{
			GroupTypes:              cloneGroupTypes(t.GroupTypes),
			PropertyMatchingVersion: t.PropertyMatchingVersion,
			Timezone:                t.Timezone,
		},
	}
	if s.Definitions.PropertyMatchingVersion == 0 {
		s.Definitions.PropertyMatchingVersion = 1
	}
	for _, f := range fs {
		if !f.Flag.Deleted {
			s.Definitions.Flags = append(s.Definitions.Flags, f.Flag)
		}
	}
	for _, c := range cs {
		if !c.Deleted {
			s.Definitions.Cohorts = append(s.Definitions.Cohorts, c.Cohort)
		}
	}
	for _, e := range es {
		if !e.Deleted {
			s.EarlyAccess = append(s.EarlyAccess, e)
		}
	}
	return s
}

// Encode returns v's JSON and v as decoded from it, so that what a write
// returns is exactly what a later read returns.
func Encode[T any](v T) (T, []byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return v, nil, fmt.Errorf("encode: %w", err)
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		return v, nil, fmt.Errorf("decode: %w", err)
	}
	return out, raw, nil
}

// PutMarker checks m and returns it as stored: Version+1, UpdatedAt now.
func PutMarker(m catalog.Marker, now time.Time) (catalog.Marker, error) {
	if m.Name == "" || len(m.Name) > catalog.MaxMarkerName {
		return m, fmt.Errorf("marker name of %d bytes (1 to %d): %w", len(m.Name), catalog.MaxMarkerName, catalog.ErrInvalid)
	}
	if len(m.Value) > catalog.MaxMarkerValue {
		return m, fmt.Errorf("marker %s: value of %d bytes, more than %d: %w", m.Name, len(m.Value), catalog.MaxMarkerValue, catalog.ErrInvalid)
	}
	if len(m.Value) > 0 && !json.Valid(m.Value) {
		return m, fmt.Errorf("marker %s: value is not JSON: %w", m.Name, catalog.ErrInvalid)
	}
	if m.Version < 0 {
		return m, fmt.Errorf("marker %s: version %d: %w", m.Name, m.Version, catalog.ErrInvalid)
	}
	m.Version++
	m.UpdatedAt = now
	return m, nil
}
