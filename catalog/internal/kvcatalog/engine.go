package kvcatalog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// Engine is a catalog.Catalog over a KV.
type Engine struct {
	kv     KV
	now    func() time.Time
	ids    records.EntryIDs
	closed atomic.Bool

	// mu serializes writes: a write reads, checks and commits while
	// holding it.
	mu sync.Mutex
	// closeMu is held shared by every call and exclusively by Close, so
	// that the KV is not closed under a reader.
	closeMu sync.RWMutex
}

var _ catalog.Catalog = (*Engine)(nil)

// New returns an engine over kv; now is the clock.
func New(kv KV, now func() time.Time) *Engine {
	return &Engine{kv: kv, now: now}
}

// Close closes the KV. Later calls return catalog.ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed.Swap(true) {
		return nil
	}
	return e.kv.Close()
}

// write runs fn under the write lock with a fresh view and a batch, then
// commits the batch if fn succeeded.
func (e *Engine) write(ctx context.Context, fn func(r Reader, b *Batch, now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var b Batch
	now := e.now().UTC()
	if err := e.kv.View(func(r Reader) error { return fn(r, &b, now) }); err != nil {
		return err
	}
	if len(b.Ops) == 0 {
		return nil
	}
	return e.kv.Commit(&b)
}

func (e *Engine) view(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	return e.kv.View(fn)
}

// point runs a single-read fn on the latest state, without a snapshot.
func (e *Engine) point(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed.Load() {
		return catalog.ErrClosed
	}
	return fn(e.kv.Latest())
}

func getJSON[T any](r Reader, key []byte) (T, bool, error) {
	var v T
	raw, ok, err := r.Get(key)
	if err != nil || !ok {
		return v, ok, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("decode %q: %w", key, err)
	}
	return v, true, nil
}

func scanJSON[T any](r Reader, prefix []byte, fn func(T) bool) error {
	return r.Scan(prefix, upper(prefix), func(k, v []byte) (bool, error) {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return false, fmt.Errorf("decode %q: %w", k, err)
		}
		return fn(x), nil
	})
}

// putRecord writes v and returns it as a read will return it.
func putRecord[T any](b *Batch, key []byte, v T) (T, error) {
	out, raw, err := records.Encode(v)
	if err != nil {
		return v, fmt.Errorf("%q: %w", key, err)
	}
	b.Set(key, raw)
	return out, nil
}

func setJSON(b *Batch, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	b.Set(key, raw)
	return nil
}

// nextSeq allocates the next value of a sequence in b.
func nextSeq(r Reader, b *Batch, name string) (int64, error) {
	key := newKey(tagSeq).last(name)
	raw, ok, err := r.Get(key)
	if err != nil {
		return 0, err
	}
	var v uint64
	if ok {
		v = binary.BigEndian.Uint64(raw)
	}
	v++
	b.Set(key, binary.BigEndian.AppendUint64(nil, v))
	return int64(v), nil
}

// bumpSeq makes the sequence at least v.
func bumpSeq(r Reader, b *Batch, name string, v int64) error {
	key := newKey(tagSeq).last(name)
	raw, ok, err := r.Get(key)
	if err != nil {
		return err
	}
	if ok && int64(binary.BigEndian.Uint64(raw)) >= v {
		return nil
	}
	b.Set(key, binary.BigEndian.AppendUint64(nil, uint64(v)))
	return nil
}

func (e *Engine) putEntry(b *Batch, en catalog.ActivityEntry) error {
	if err := setJSON(b, newKey(tagActivity).int(en.TeamID).inverted(en.ID), en); err != nil {
		return err
	}
	return setJSON(b, itemPrefix(en.TeamID, en.Scope, en.ItemID).inverted(en.ID), en)
}

func itemPrefix(team int64, scope catalog.Scope, item string) keyBuf {
	return newKey(tagItemActivity).int(team).str(string(scope)).str(item)
}

func teamKey(id int64) []byte { return newKey(tagTeam).int(id) }

func requireTeam(r Reader, id int64) error {
	if err := records.CheckTeamID(id); err != nil {
		return err
	}
	_, ok, err := r.Get(teamKey(id))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("team %d: %w", id, catalog.ErrNotFound)
	}
	return nil
}

func conflict(what string, want, have int64) error {
	return fmt.Errorf("%s: version %d, stored %d: %w", what, want, have, catalog.ErrConflict)
}

// Teams.

// CreateTeam implements catalog.Teams.
func (e *Engine) CreateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	var out catalog.Team
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		id := t.ID
		if id == 0 {
			for {
				n, err := nextSeq(r, b, "team")
				if err != nil {
					return err
				}
				if _, ok, err := r.Get(teamKey(n)); err != nil {
					return err
				} else if !ok {
					id = n
					break
				}
			}
		} else {
			if _, ok, err := r.Get(teamKey(id)); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("team %d: %w", id, catalog.ErrExists)
			}
			if err := bumpSeq(r, b, "team", id); err != nil {
				return err
			}
		}
		nt, err := records.NewTeam(t, id, now)
		if err != nil {
			return err
		}
		en, err := records.Entry(&e.ids, now, id, catalog.ScopeTeam, records.ItemID(id), records.ActionCreated, ch, nil, nt)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, teamKey(id), nt); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: create team: %w", err)
	}
	return out, nil
}

// GetTeam implements catalog.Teams.
func (e *Engine) GetTeam(ctx context.Context, id int64) (catalog.Team, error) {
	var t catalog.Team
	err := e.point(ctx, func(r Reader) error {
		var ok bool
		var err error
		t, ok, err = getJSON[catalog.Team](r, teamKey(id))
		if err == nil && !ok {
			err = catalog.ErrNotFound
		}
		return err
	})
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: get team %d: %w", id, err)
	}
	return t, nil
}

// ListTeams implements catalog.Teams.
func (e *Engine) ListTeams(ctx context.Context) ([]catalog.Team, error) {
	var out []catalog.Team
	err := e.view(ctx, func(r Reader) error {
		return scanJSON(r, []byte{tagTeam}, func(t catalog.Team) bool { out = append(out, t); return true })
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list teams: %w", err)
	}
	return out, nil
}

// UpdateTeam implements catalog.Teams.
func (e *Engine) UpdateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	var out catalog.Team
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, ok, err := getJSON[catalog.Team](r, teamKey(t.ID))
		if err != nil {
			return err
		}
		if !ok {
			return catalog.ErrNotFound
		}
		if old.Version != t.Version {
			return conflict("team", t.Version, old.Version)
		}
		nt, err := records.UpdatedTeam(old, t, now)
		if err != nil {
			return err
		}
		en, err := records.Entry(&e.ids, now, nt.ID, catalog.ScopeTeam, records.ItemID(nt.ID), records.ActionUpdated, ch, old, nt)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, teamKey(nt.ID), nt); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: update team %d: %w", t.ID, err)
	}
	return out, nil
}

// Keys.

func keyKey(id string) []byte              { return newKey(tagKey).last(id) }
func keyHashKey(h []byte) []byte           { return newKey(tagKeyHash).last(string(h)) }
func keyTeamKey(t int64, id string) []byte { return newKey(tagKeyTeam).int(t).last(id) }

// PutKey implements catalog.Keys.
func (e *Engine) PutKey(ctx context.Context, k catalog.APIKey, ch catalog.Change) (catalog.APIKey, error) {
	var out catalog.APIKey
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		nk, err := records.NewKey(k, now)
		if err != nil {
			return err
		}
		for _, key := range [][]byte{keyKey(nk.ID), keyHashKey(nk.Hash)} {
			if _, ok, err := r.Get(key); err != nil {
				return err
			} else if ok {
				return catalog.ErrExists
			}
		}
		if out, err = putRecord(b, keyHashKey(nk.Hash), nk); err != nil {
			return err
		}
		b.Set(keyKey(nk.ID), nk.Hash)
		for _, t := range records.KeyTeams(nk) {
			b.Set(keyTeamKey(t, nk.ID), nil)
			en, err := records.Entry(&e.ids, now, t, catalog.ScopeKey, nk.ID, records.ActionCreated, ch, nil, nk)
			if err != nil {
				return err
			}
			if err := e.putEntry(b, en); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: put key %s: %w", k.ID, err)
	}
	return out, nil
}

// getKey reads a key by id: its hash, then the key.
func getKey(r Reader, id string) (catalog.APIKey, error) {
	hash, ok, err := r.Get(keyKey(id))
	if err != nil {
		return catalog.APIKey{}, err
	}
	if !ok {
		return catalog.APIKey{}, catalog.ErrNotFound
	}
	return getKeyByHash(r, hash)
}

func getKeyByHash(r Reader, hash []byte) (catalog.APIKey, error) {
	k, ok, err := getJSON[catalog.APIKey](r, keyHashKey(hash))
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return k, err
}

// GetKey implements catalog.Keys.
func (e *Engine) GetKey(ctx context.Context, id string) (catalog.APIKey, error) {
	var k catalog.APIKey
	err := e.view(ctx, func(r Reader) error {
		var err error
		k, err = getKey(r, id)
		return err
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key %s: %w", id, err)
	}
	return k, nil
}

// GetKeyByHash implements catalog.Keys.
func (e *Engine) GetKeyByHash(ctx context.Context, hash []byte) (catalog.APIKey, error) {
	var k catalog.APIKey
	err := e.point(ctx, func(r Reader) error {
		if len(hash) == 0 {
			return catalog.ErrNotFound
		}
		var err error
		k, err = getKeyByHash(r, hash)
		return err
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key by hash: %w", err)
	}
	return k, nil
}

// ListKeys implements catalog.Keys.
func (e *Engine) ListKeys(ctx context.Context, teamID int64) ([]catalog.APIKey, error) {
	var out []catalog.APIKey
	err := e.view(ctx, func(r Reader) error {
		prefix := newKey(tagKeyTeam).int(teamID)
		var ids []string
		if err := r.Scan(prefix, upper(prefix), func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(prefix):]))
			return true, nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			k, err := getKey(r, id)
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list keys of team %d: %w", teamID, err)
	}
	return out, nil
}

// RevokeKey implements catalog.Keys.
func (e *Engine) RevokeKey(ctx context.Context, id string, ch catalog.Change) (catalog.APIKey, error) {
	var out catalog.APIKey
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, err := getKey(r, id)
		if err != nil {
			return err
		}
		nk, err := records.Revoked(old, now)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, keyHashKey(nk.Hash), nk); err != nil {
			return err
		}
		for _, t := range records.KeyTeams(nk) {
			en, err := records.Entry(&e.ids, now, t, catalog.ScopeKey, nk.ID, records.ActionRevoked, ch, old, nk)
			if err != nil {
				return err
			}
			if err := e.putEntry(b, en); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: revoke key %s: %w", id, err)
	}
	return out, nil
}

// Flags.

func flagKey(team, id int64) []byte              { return newKey(tagFlag).int(team).int(id) }
func flagClaimKey(team int64, key string) []byte { return newKey(tagFlagKey).int(team).last(key) }

// claim takes (team, key) for flag id in b, or fails with ErrExists.
func claim(r Reader, b *Batch, team int64, key string, id int64) error {
	raw, ok, err := r.Get(flagClaimKey(team, key))
	if err != nil {
		return err
	}
	if ok && int64(binary.BigEndian.Uint64(raw)) != id {
		return fmt.Errorf("flag key %q: %w", key, catalog.ErrExists)
	}
	b.Set(flagClaimKey(team, key), binary.BigEndian.AppendUint64(nil, uint64(id)))
	return nil
}

// CreateFlag implements catalog.Flags.
func (e *Engine) CreateFlag(ctx context.Context, rec catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	var out catalog.FlagRecord
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		team := rec.Flag.TeamID
		if err := requireTeam(r, team); err != nil {
			return err
		}
		id, err := nextSeq(r, b, "flag")
		if err != nil {
			return err
		}
		nr, err := records.NewFlag(rec, id, now, ch)
		if err != nil {
			return err
		}
		if key, live := records.FlagClaim(nr); live {
			if err := claim(r, b, team, key, id); err != nil {
				return err
			}
		}
		en, err := records.Entry(&e.ids, now, team, catalog.ScopeFlag, records.ItemID(id), records.ActionCreated, ch, nil, nr)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, flagKey(team, id), nr); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: create flag %q: %w", rec.Flag.Key, err)
	}
	return out, nil
}

func getFlag(r Reader, team, id int64) (catalog.FlagRecord, error) {
	f, ok, err := getJSON[catalog.FlagRecord](r, flagKey(team, id))
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return f, err
}

// GetFlag implements catalog.Flags.
func (e *Engine) GetFlag(ctx context.Context, teamID, id int64) (catalog.FlagRecord, error) {
	var f catalog.FlagRecord
	err := e.point(ctx, func(r Reader) error {
		var err error
		f, err = getFlag(r, teamID, id)
		return err
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %d: %w", id, err)
	}
	return f, nil
}

// GetFlagByKey implements catalog.Flags.
func (e *Engine) GetFlagByKey(ctx context.Context, teamID int64, key string) (catalog.FlagRecord, error) {
	var f catalog.FlagRecord
	err := e.view(ctx, func(r Reader) error {
		raw, ok, err := r.Get(flagClaimKey(teamID, key))
		if err != nil {
			return err
		}
		if !ok {
			return catalog.ErrNotFound
		}
		f, err = getFlag(r, teamID, int64(binary.BigEndian.Uint64(raw)))
		if err == nil && (f.Flag.Deleted || f.Flag.Key != key) {
			err = catalog.ErrNotFound
		}
		return err
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %q: %w", key, err)
	}
	return f, nil
}

func listFlags(r Reader, team int64) ([]catalog.FlagRecord, error) {
	var out []catalog.FlagRecord
	err := scanJSON(r, newKey(tagFlag).int(team), func(f catalog.FlagRecord) bool { out = append(out, f); return true })
	return out, err
}

// ListFlags implements catalog.Flags.
func (e *Engine) ListFlags(ctx context.Context, teamID int64) ([]catalog.FlagRecord, error) {
	var out []catalog.FlagRecord
	err := e.view(ctx, func(r Reader) error {
		var err error
		out, err = listFlags(r, teamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list flags of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateFlag implements catalog.Flags.
func (e *Engine) UpdateFlag(ctx context.Context, rec catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	var out catalog.FlagRecord
	team, id := rec.Flag.TeamID, rec.Flag.ID
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, err := getFlag(r, team, id)
		if err != nil {
			return err
		}
		if old.Flag.Version != rec.Flag.Version {
			return conflict("flag", rec.Flag.Version, old.Flag.Version)
		}
		nr, action, err := records.UpdatedFlag(old, rec, now, ch)
		if err != nil {
			return err
		}
		if oldKey, release, newKey, take := records.ClaimChange(old, nr); release || take {
			if take {
				if err := claim(r, b, team, newKey, id); err != nil {
					return err
				}
			}
			if release && !(take && oldKey == newKey) {
				b.Delete(flagClaimKey(team, oldKey))
			}
		}
		en, err := records.Entry(&e.ids, now, team, catalog.ScopeFlag, records.ItemID(id), action, ch, old, nr)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, flagKey(team, id), nr); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: update flag %d: %w", id, err)
	}
	return out, nil
}

// Cohorts.

func cohortKey(team, id int64) []byte { return newKey(tagCohort).int(team).int(id) }

func memberPrefix(team, cohort int64) keyBuf { return newKey(tagMember).int(team).int(cohort) }

// CreateCohort implements catalog.Cohorts.
func (e *Engine) CreateCohort(ctx context.Context, rec catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	var out catalog.CohortRecord
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		team := rec.Cohort.TeamID
		if err := requireTeam(r, team); err != nil {
			return err
		}
		id, err := nextSeq(r, b, "cohort")
		if err != nil {
			return err
		}
		nr, err := records.NewCohort(rec, id, now, ch)
		if err != nil {
			return err
		}
		en, err := records.Entry(&e.ids, now, team, catalog.ScopeCohort, records.ItemID(id), records.ActionCreated, ch, nil, nr)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, cohortKey(team, id), nr); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: create cohort: %w", err)
	}
	return out, nil
}

func getCohort(r Reader, team, id int64) (catalog.CohortRecord, error) {
	c, ok, err := getJSON[catalog.CohortRecord](r, cohortKey(team, id))
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return c, err
}

// GetCohort implements catalog.Cohorts.
func (e *Engine) GetCohort(ctx context.Context, teamID, id int64) (catalog.CohortRecord, error) {
	var c catalog.CohortRecord
	err := e.point(ctx, func(r Reader) error {
		var err error
		c, err = getCohort(r, teamID, id)
		return err
	})
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: get cohort %d: %w", id, err)
	}
	return c, nil
}

func listCohorts(r Reader, team int64) ([]catalog.CohortRecord, error) {
	var out []catalog.CohortRecord
	err := scanJSON(r, newKey(tagCohort).int(team), func(c catalog.CohortRecord) bool { out = append(out, c); return true })
	return out, err
}

// ListCohorts implements catalog.Cohorts.
func (e *Engine) ListCohorts(ctx context.Context, teamID int64) ([]catalog.CohortRecord, error) {
	var out []catalog.CohortRecord
	err := e.view(ctx, func(r Reader) error {
		var err error
		out, err = listCohorts(r, teamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list cohorts of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateCohort implements catalog.Cohorts.
func (e *Engine) UpdateCohort(ctx context.Context, rec catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	var out catalog.CohortRecord
	team, id := rec.Cohort.TeamID, rec.Cohort.ID
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, err := getCohort(r, team, id)
		if err != nil {
			return err
		}
		if old.Cohort.Version != rec.Cohort.Version {
			return conflict("cohort", rec.Cohort.Version, old.Cohort.Version)
		}
		nr, action := records.UpdatedCohort(old, rec, now, ch)
		en, err := records.Entry(&e.ids, now, team, catalog.ScopeCohort, records.ItemID(id), action, ch, old, nr)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, cohortKey(team, id), nr); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: update cohort %d: %w", id, err)
	}
	return out, nil
}

func (e *Engine) changeMembers(ctx context.Context, team, cohort int64, ids []string, ch catalog.Change, add bool) error {
	ids, err := records.CheckMembers(ids)
	if err != nil {
		return err
	}
	return e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		if _, err := getCohort(r, team, cohort); err != nil {
			return err
		}
		action := records.ActionMembersRemoved
		if add {
			action = records.ActionMembersAdded
		}
		for _, id := range ids {
			if add {
				b.Set(memberPrefix(team, cohort).last(id), nil)
			} else {
				b.Delete(memberPrefix(team, cohort).last(id))
			}
		}
		en, err := records.Entry(&e.ids, now, team, catalog.ScopeCohort, records.ItemID(cohort), action, records.MembersDiff(ch, ids), nil, nil)
		if err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
}

// AddCohortMembers implements catalog.Cohorts.
func (e *Engine) AddCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error {
	if err := e.changeMembers(ctx, teamID, cohortID, distinctIDs, ch, true); err != nil {
		return fmt.Errorf("catalog: add members to cohort %d: %w", cohortID, err)
	}
	return nil
}

// RemoveCohortMembers implements catalog.Cohorts.
func (e *Engine) RemoveCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error {
	if err := e.changeMembers(ctx, teamID, cohortID, distinctIDs, ch, false); err != nil {
		return fmt.Errorf("catalog: remove members from cohort %d: %w", cohortID, err)
	}
	return nil
}

// ListCohortMembers implements catalog.Cohorts. The cursor is the last
// distinct id returned, base64url-encoded.
func (e *Engine) ListCohortMembers(ctx context.Context, teamID, cohortID int64, p catalog.Page) ([]string, string, error) {
	var out []string
	var next string
	err := e.view(ctx, func(r Reader) error {
		if _, err := getCohort(r, teamID, cohortID); err != nil {
			return err
		}
		prefix := memberPrefix(teamID, cohortID)
		lower := []byte(prefix)
		if p.Cursor != "" {
			last, err := base64.RawURLEncoding.DecodeString(p.Cursor)
			if err != nil {
				return fmt.Errorf("cursor: %w", catalog.ErrInvalid)
			}
			lower = after(prefix.last(string(last)))
		}
		limit := p.EffectiveLimit()
		return r.Scan(lower, upper(prefix), func(k, _ []byte) (bool, error) {
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1]))
				return false, nil
			}
			out = append(out, string(k[len(prefix):]))
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list members of cohort %d: %w", cohortID, err)
	}
	return out, next, nil
}

// IsCohortMember implements catalog.Cohorts.
func (e *Engine) IsCohortMember(ctx context.Context, teamID, cohortID int64, distinctID string) (bool, error) {
	var member bool
	err := e.point(ctx, func(r Reader) error {
		var err error
		_, member, err = r.Get(memberPrefix(teamID, cohortID).last(distinctID))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("catalog: cohort %d member: %w", cohortID, err)
	}
	return member, nil
}

// Early access features.

func earlyKey(team int64, id string) []byte { return newKey(tagEarly).int(team).last(id) }

// CreateEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) CreateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	var out catalog.EarlyAccessFeature
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		if err := requireTeam(r, f.TeamID); err != nil {
			return err
		}
		nf, err := records.NewEarlyAccess(f, now, ch)
		if err != nil {
			return err
		}
		en, err := records.Entry(&e.ids, now, nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, records.ActionCreated, ch, nil, nf)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, earlyKey(nf.TeamID, nf.ID), nf); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: create early access feature: %w", err)
	}
	return out, nil
}

func getEarly(r Reader, team int64, id string) (catalog.EarlyAccessFeature, error) {
	f, ok, err := getJSON[catalog.EarlyAccessFeature](r, earlyKey(team, id))
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return f, err
}

// GetEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) GetEarlyAccess(ctx context.Context, teamID int64, id string) (catalog.EarlyAccessFeature, error) {
	var f catalog.EarlyAccessFeature
	err := e.point(ctx, func(r Reader) error {
		var err error
		f, err = getEarly(r, teamID, id)
		return err
	})
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: get early access feature %s: %w", id, err)
	}
	return f, nil
}

func listEarly(r Reader, team int64) ([]catalog.EarlyAccessFeature, error) {
	var out []catalog.EarlyAccessFeature
	err := scanJSON(r, newKey(tagEarly).int(team), func(f catalog.EarlyAccessFeature) bool { out = append(out, f); return true })
	records.SortEarlyAccess(out)
	return out, err
}

// ListEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) ListEarlyAccess(ctx context.Context, teamID int64) ([]catalog.EarlyAccessFeature, error) {
	var out []catalog.EarlyAccessFeature
	err := e.view(ctx, func(r Reader) error {
		var err error
		out, err = listEarly(r, teamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list early access features of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) UpdateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	var out catalog.EarlyAccessFeature
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, err := getEarly(r, f.TeamID, f.ID)
		if err != nil {
			return err
		}
		if old.Version != f.Version {
			return conflict("early access feature", f.Version, old.Version)
		}
		nf, action, err := records.UpdatedEarlyAccess(old, f, now, ch)
		if err != nil {
			return err
		}
		en, err := records.Entry(&e.ids, now, nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, action, ch, old, nf)
		if err != nil {
			return err
		}
		if out, err = putRecord(b, earlyKey(nf.TeamID, nf.ID), nf); err != nil {
			return err
		}
		return e.putEntry(b, en)
	})
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: update early access feature %s: %w", f.ID, err)
	}
	return out, nil
}

// Activity.

// ListActivity implements catalog.Activity. The cursor is the id of the
// last entry returned.
func (e *Engine) ListActivity(ctx context.Context, q catalog.ActivityQuery) ([]catalog.ActivityEntry, string, error) {
	if err := records.CheckQuery(q); err != nil {
		return nil, "", fmt.Errorf("catalog: list activity: %w", err)
	}
	var out []catalog.ActivityEntry
	var next string
	err := e.view(ctx, func(r Reader) error {
		prefix := newKey(tagActivity).int(q.TeamID)
		if q.ItemID != "" {
			prefix = itemPrefix(q.TeamID, q.Scope, q.ItemID)
		}
		lower := []byte(prefix)
		if q.Cursor != "" {
			lower = after(keyBuf(bytes.Clone(prefix)).inverted(q.Cursor))
		}
		limit := q.EffectiveLimit()
		return r.Scan(lower, upper(prefix), func(k, v []byte) (bool, error) {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			var en catalog.ActivityEntry
			if err := json.Unmarshal(v, &en); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, en)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list activity: %w", err)
	}
	return out, next, nil
}

// Jobs.

func jobKey(team int64, id string) []byte { return newKey(tagJob).int(team).last(id) }

// CreateJob implements catalog.Jobs.
func (e *Engine) CreateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	var out catalog.BlastRadiusJob
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		if err := requireTeam(r, j.TeamID); err != nil {
			return err
		}
		nj, err := records.NewJob(j, now)
		if err != nil {
			return err
		}
		if _, ok, err := r.Get(jobKey(nj.TeamID, nj.ID)); err != nil {
			return err
		} else if ok {
			return catalog.ErrExists
		}
		out, err = putRecord(b, jobKey(nj.TeamID, nj.ID), nj)
		return err
	})
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: create job: %w", err)
	}
	return out, nil
}

func getJob(r Reader, team int64, id string) (catalog.BlastRadiusJob, error) {
	j, ok, err := getJSON[catalog.BlastRadiusJob](r, jobKey(team, id))
	if err == nil && !ok {
		err = catalog.ErrNotFound
	}
	return j, err
}

// GetJob implements catalog.Jobs.
func (e *Engine) GetJob(ctx context.Context, teamID int64, id string) (catalog.BlastRadiusJob, error) {
	var j catalog.BlastRadiusJob
	err := e.point(ctx, func(r Reader) error {
		var err error
		j, err = getJob(r, teamID, id)
		return err
	})
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: get job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs implements catalog.Jobs.
func (e *Engine) ListJobs(ctx context.Context, teamID int64) ([]catalog.BlastRadiusJob, error) {
	var out []catalog.BlastRadiusJob
	err := e.view(ctx, func(r Reader) error {
		return scanJSON(r, newKey(tagJob).int(teamID), func(j catalog.BlastRadiusJob) bool { out = append(out, j); return true })
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: list jobs of team %d: %w", teamID, err)
	}
	records.SortJobs(out)
	return out, nil
}

// UpdateJob implements catalog.Jobs.
func (e *Engine) UpdateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	var out catalog.BlastRadiusJob
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		old, err := getJob(r, j.TeamID, j.ID)
		if err != nil {
			return err
		}
		if old.Version != j.Version {
			return conflict("job", j.Version, old.Version)
		}
		out, err = putRecord(b, jobKey(j.TeamID, j.ID), records.UpdatedJob(old, j, now))
		return err
	})
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: update job %s: %w", j.ID, err)
	}
	return out, nil
}

// Snapshot implements catalog.Snapshotter: one consistent view.
func (e *Engine) Snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error) {
	var s catalog.TeamSnapshot
	err := e.view(ctx, func(r Reader) error {
		t, ok, err := getJSON[catalog.Team](r, teamKey(teamID))
		if err != nil {
			return err
		}
		if !ok {
			return catalog.ErrNotFound
		}
		fs, err := listFlags(r, teamID)
		if err != nil {
			return err
		}
		cs, err := listCohorts(r, teamID)
		if err != nil {
			return err
		}
		es, err := listEarly(r, teamID)
		if err != nil {
			return err
		}
		s = records.Snapshot(t, fs, cs, es)
		return nil
	})
	if err != nil {
		return catalog.TeamSnapshot{}, fmt.Errorf("catalog: snapshot of team %d: %w", teamID, err)
	}
	return s, nil
}
