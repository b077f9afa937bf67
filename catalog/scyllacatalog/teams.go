package scyllacatalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func (c *Catalog) getTeam(ctx context.Context, id int64) (catalog.Team, error) {
	var t catalog.Team
	err := c.getData(ctx, &t, c.q.getTeam, id)
	if err != nil {
		err = fmt.Errorf("team %d: %w", id, err)
	}
	return t, err
}

// CreateTeam implements catalog.Teams. The listing index row is written
// before the team, so a crash leaves at worst an index row that ListTeams
// skips.
func (c *Catalog) CreateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	out, err := c.createTeam(ctx, t, ch)
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: create team: %w", err)
	}
	return out, nil
}

func (c *Catalog) createTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	if err := c.enter(ctx); err != nil {
		return t, err
	}
	if err := records.CheckChange(ch); err != nil {
		return t, err
	}
	for {
		id := t.ID
		if id == 0 {
			var err error
			if id, err = c.nextID(ctx, "team"); err != nil {
				return t, err
			}
		}
		now := c.now()
		nt, err := records.NewTeam(t, id, now)
		if err != nil {
			return t, err
		}
		nt, raw, err := records.Encode(nt)
		if err != nil {
			return t, err
		}
		if err := c.query(ctx, c.q.putTeamIndex, id).Exec(); err != nil {
			return t, err
		}
		applied, _, err := c.cas(ctx, "team", c.q.insertTeam, id, nt.Version, string(raw))
		if err != nil {
			return t, err
		}
		if !applied {
			if t.ID != 0 {
				return t, fmt.Errorf("team %d: %w", id, catalog.ErrExists)
			}
			continue // an explicit id took this one: allocate the next
		}
		en, err := records.Entry(&c.ids, now, id, catalog.ScopeTeam, records.ItemID(id), records.ActionCreated, ch, nil, nt)
		if err != nil {
			return nt, err
		}
		c.appendActivity(ctx, en)
		return nt, nil
	}
}

// GetTeam implements catalog.Teams.
func (c *Catalog) GetTeam(ctx context.Context, id int64) (catalog.Team, error) {
	if err := c.enter(ctx); err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: get team %d: %w", id, err)
	}
	t, err := c.getTeam(ctx, id)
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: get %w", err)
	}
	return t, nil
}

// ListTeams implements catalog.Teams: the index, then each team.
func (c *Catalog) ListTeams(ctx context.Context) ([]catalog.Team, error) {
	if err := c.enter(ctx); err != nil {
		return nil, fmt.Errorf("catalog: list teams: %w", err)
	}
	var ids []int64
	var id int64
	if err := each(c.query(ctx, c.q.listTeamIndex), []any{&id}, func() (bool, error) {
		ids = append(ids, id)
		return true, nil
	}); err != nil {
		return nil, fmt.Errorf("catalog: list teams: %w", err)
	}
	var out []catalog.Team
	for _, id := range ids {
		t, err := c.getTeam(ctx, id)
		if errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("catalog: list teams: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// UpdateTeam implements catalog.Teams.
func (c *Catalog) UpdateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	out, err := c.updateTeam(ctx, t, ch)
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: update team %d: %w", t.ID, err)
	}
	return out, nil
}

func (c *Catalog) updateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	if err := c.enter(ctx); err != nil {
		return t, err
	}
	if err := records.CheckChange(ch); err != nil {
		return t, err
	}
	old, err := c.getTeam(ctx, t.ID)
	if err != nil {
		return t, err
	}
	if old.Version != t.Version {
		return t, conflict("team", t.Version, old.Version)
	}
	now := c.now()
	nt, err := records.UpdatedTeam(old, t, now)
	if err != nil {
		return t, err
	}
	nt, raw, err := records.Encode(nt)
	if err != nil {
		return t, err
	}
	applied, row, err := c.cas(ctx, "team", c.q.updateTeam, nt.Version, string(raw), nt.ID, old.Version)
	if err != nil {
		return t, err
	}
	if !applied {
		return t, notApplied("team", t.Version, row)
	}
	en, err := records.Entry(&c.ids, now, nt.ID, catalog.ScopeTeam, records.ItemID(nt.ID), records.ActionUpdated, ch, old, nt)
	if err != nil {
		return nt, err
	}
	c.appendActivity(ctx, en)
	return nt, nil
}

// PutKey implements catalog.Keys: claim the id, index it under its teams,
// then insert the key row by hash; a taken hash undoes the first two.
func (c *Catalog) PutKey(ctx context.Context, k catalog.APIKey, ch catalog.Change) (catalog.APIKey, error) {
	out, err := c.putKey(ctx, k, ch)
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: put key %s: %w", k.ID, err)
	}
	return out, nil
}

func (c *Catalog) putKey(ctx context.Context, k catalog.APIKey, ch catalog.Change) (catalog.APIKey, error) {
	if err := c.enter(ctx); err != nil {
		return k, err
	}
	if err := records.CheckChange(ch); err != nil {
		return k, err
	}
	now := c.now()
	nk, err := records.NewKey(k, now)
	if err != nil {
		return k, err
	}
	nk, raw, err := records.Encode(nk)
	if err != nil {
		return k, err
	}
	applied, _, err := c.cas(ctx, "key", c.q.claimKeyID, nk.ID, nk.Hash)
	if err != nil {
		return k, err
	}
	if !applied {
		return k, fmt.Errorf("key id: %w", catalog.ErrExists)
	}
	teams := records.KeyTeams(nk)
	for _, t := range teams {
		if err := c.query(ctx, c.q.putKeyTeam, t, nk.ID).Exec(); err != nil {
			return k, err
		}
	}
	applied, _, err = c.cas(ctx, "key", c.q.insertKey, nk.Hash, nk.ID, nk.Version, string(raw))
	if err != nil {
		return k, err
	}
	if !applied {
		for _, t := range teams {
			if err := c.query(ctx, c.q.delKeyTeam, t, nk.ID).Exec(); err != nil {
				c.log.Warn("key index cleanup failed", "key", nk.ID, "team", t, "err", err)
			}
		}
		if _, _, err := c.cas(ctx, "key", c.q.releaseKeyID, nk.ID, nk.Hash); err != nil {
			c.log.Warn("key id release failed", "key", nk.ID, "err", err)
		}
		return k, fmt.Errorf("key hash: %w", catalog.ErrExists)
	}
	var entries []catalog.ActivityEntry
	for _, t := range teams {
		en, err := records.Entry(&c.ids, now, t, catalog.ScopeKey, nk.ID, records.ActionCreated, ch, nil, nk)
		if err != nil {
			return nk, err
		}
		entries = append(entries, en)
	}
	c.appendActivity(ctx, entries...)
	return nk, nil
}

func (c *Catalog) keyByHash(ctx context.Context, hash []byte) (catalog.APIKey, error) {
	var k catalog.APIKey
	if len(hash) == 0 {
		return k, catalog.ErrNotFound
	}
	err := c.getData(ctx, &k, c.q.getKeyByHash, hash)
	return k, err
}

func (c *Catalog) keyByID(ctx context.Context, id string) (catalog.APIKey, error) {
	var hash []byte
	if err := c.query(ctx, c.q.getKeyID, id).Scan(&hash); err != nil {
		if errors.Is(err, gocql.ErrNotFound) {
			err = catalog.ErrNotFound
		}
		return catalog.APIKey{}, err
	}
	k, err := c.keyByHash(ctx, hash)
	if err == nil && k.ID != id {
		err = catalog.ErrNotFound // an id claim whose key insert lost
	}
	return k, err
}

// GetKey implements catalog.Keys.
func (c *Catalog) GetKey(ctx context.Context, id string) (catalog.APIKey, error) {
	err := c.enter(ctx)
	var k catalog.APIKey
	if err == nil {
		k, err = c.keyByID(ctx, id)
	}
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key %s: %w", id, err)
	}
	return k, nil
}

// GetKeyByHash implements catalog.Keys: one keyed read.
func (c *Catalog) GetKeyByHash(ctx context.Context, hash []byte) (catalog.APIKey, error) {
	err := c.enter(ctx)
	var k catalog.APIKey
	if err == nil {
		k, err = c.keyByHash(ctx, hash)
	}
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: get key by hash: %w", err)
	}
	return k, nil
}

// ListKeys implements catalog.Keys.
func (c *Catalog) ListKeys(ctx context.Context, teamID int64) ([]catalog.APIKey, error) {
	if err := c.enter(ctx); err != nil {
		return nil, fmt.Errorf("catalog: list keys of team %d: %w", teamID, err)
	}
	var ids []string
	var id string
	if err := each(c.query(ctx, c.q.listKeyTeam, teamID), []any{&id}, func() (bool, error) {
		ids = append(ids, id)
		return true, nil
	}); err != nil {
		return nil, fmt.Errorf("catalog: list keys of team %d: %w", teamID, err)
	}
	var out []catalog.APIKey
	for _, id := range ids {
		k, err := c.keyByID(ctx, id)
		if errors.Is(err, catalog.ErrNotFound) {
			continue // index row of a put that lost its hash
		}
		if err != nil {
			return nil, fmt.Errorf("catalog: list keys of team %d: %w", teamID, err)
		}
		if !slices.Contains(records.KeyTeams(k), teamID) {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}

// RevokeKey implements catalog.Keys: a conditional update of the row that
// authentication reads.
func (c *Catalog) RevokeKey(ctx context.Context, id string, ch catalog.Change) (catalog.APIKey, error) {
	out, err := c.revokeKey(ctx, id, ch)
	if err != nil {
		return catalog.APIKey{}, fmt.Errorf("catalog: revoke key %s: %w", id, err)
	}
	return out, nil
}

func (c *Catalog) revokeKey(ctx context.Context, id string, ch catalog.Change) (catalog.APIKey, error) {
	if err := c.enter(ctx); err != nil {
		return catalog.APIKey{}, err
	}
	if err := records.CheckChange(ch); err != nil {
		return catalog.APIKey{}, err
	}
	old, err := c.keyByID(ctx, id)
	if err != nil {
		return old, err
	}
	now := c.now()
	nk, err := records.Revoked(old, now)
	if err != nil {
		return old, err
	}
	nk, raw, err := records.Encode(nk)
	if err != nil {
		return old, err
	}
	applied, row, err := c.cas(ctx, "key", c.q.updateKey, nk.Version, string(raw), nk.Hash, old.Version)
	if err != nil {
		return old, err
	}
	if !applied {
		return old, notApplied("key", old.Version, row)
	}
	var entries []catalog.ActivityEntry
	for _, t := range records.KeyTeams(nk) {
		en, err := records.Entry(&c.ids, now, t, catalog.ScopeKey, nk.ID, records.ActionRevoked, ch, old, nk)
		if err != nil {
			return nk, err
		}
		entries = append(entries, en)
	}
	c.appendActivity(ctx, entries...)
	return nk, nil
}
