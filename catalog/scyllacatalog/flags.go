package scyllacatalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func (c *Catalog) getFlag(ctx context.Context, team, id int64) (catalog.FlagRecord, error) {
	var f catalog.FlagRecord
	err := c.getData(ctx, &f, c.q.getFlag, team, id)
	return f, err
}

// claimState says whether takeClaim inserted or took over the claim (and
// so must release it if the write it guards fails) or found it already
// held by the flag.
type claimState int

const (
	claimHeld claimState = iota // the flag already held it
	claimTaken
)

// takeClaim makes flag id the holder of (team, key), or fails with
// ErrExists when a live flag holds it, or a claim younger than ClaimGrace.
func (c *Catalog) takeClaim(ctx context.Context, team int64, key string, id int64, now time.Time) (claimState, error) {
	applied, row, err := c.cas(ctx, "flag_key", c.q.insertClaim, team, key, id, now)
	if err != nil {
		return 0, fmt.Errorf("claim key %q: %w", key, err)
	}
	if applied {
		return claimTaken, nil
	}
	holder, _ := row["flag_id"].(int64)
	if holder == id {
		return claimHeld, nil
	}
	taken := fmt.Errorf("flag key %q: %w", key, catalog.ErrExists)
	claimedAt, _ := row["claimed_at"].(time.Time)
	if now.Sub(claimedAt) < c.cfg.ClaimGrace {
		return 0, taken
	}
	f, err := c.getFlag(ctx, team, holder)
	switch {
	case err == nil && !f.Flag.Deleted && f.Flag.Key == key:
		return 0, taken
	case err != nil && !errors.Is(err, catalog.ErrNotFound):
		return 0, fmt.Errorf("claim key %q: %w", key, err)
	}
	// The holder crashed between its claim and its write: take over.
	applied, _, err = c.cas(ctx, "flag_key", c.q.stealClaim, id, now, team, key, holder)
	if err != nil {
		return 0, fmt.Errorf("claim key %q: %w", key, err)
	}
	if !applied {
		return 0, taken
	}
	c.m.claimTakeovers.Inc()
	c.log.Info("took over a stale flag key claim", "team", team, "key", key, "from", holder, "to", id)
	return claimTaken, nil
}

// releaseClaim frees (team, key) if flag id holds it. A failure is logged:
// the claim is then stale and taken over after ClaimGrace.
func (c *Catalog) releaseClaim(ctx context.Context, team int64, key string, id int64) {
	if _, _, err := c.cas(context.WithoutCancel(ctx), "flag_key", c.q.delClaim, team, key, id); err != nil {
		c.log.Warn("flag key release failed", "team", team, "key", key, "flag", id, "err", err)
	}
}

// CreateFlag implements catalog.Flags: allocate the id, claim the key,
// insert the flag, append the activity entry.
func (c *Catalog) CreateFlag(ctx context.Context, r catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	out, err := c.createFlag(ctx, r, ch)
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: create flag %q: %w", r.Flag.Key, err)
	}
	return out, nil
}

func (c *Catalog) createFlag(ctx context.Context, r catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	if err := c.enter(ctx); err != nil {
		return r, err
	}
	if err := records.CheckChange(ch); err != nil {
		return r, err
	}
	team := r.Flag.TeamID
	if _, err := records.NewFlag(r, 1, c.now(), ch); err != nil {
		return r, err // refuse a bad record before allocating an id
	}
	if err := c.requireTeam(ctx, team); err != nil {
		return r, err
	}
	id, err := c.nextID(ctx, "flag")
	if err != nil {
		return r, err
	}
	now := c.now()
	nr, err := records.NewFlag(r, id, now, ch)
	if err != nil {
		return r, err
	}
	nr, raw, err := records.Encode(nr)
	if err != nil {
		return r, err
	}
	key, live := records.FlagClaim(nr)
	if live {
		if _, err := c.takeClaim(ctx, team, key, id, now); err != nil {
			return r, err
		}
	}
	applied, _, err := c.cas(ctx, "flag", c.q.insertFlag, team, id, nr.Flag.Version, string(raw))
	if err == nil && !applied {
		err = fmt.Errorf("flag id %d: %w", id, catalog.ErrExists) // a sequence bug
	}
	if err != nil {
		if live && !isTimeout(err) {
			c.releaseClaim(ctx, team, key, id)
		}
		return r, err
	}
	en, err := records.Entry(&c.ids, now, team, catalog.ScopeFlag, records.ItemID(id), records.ActionCreated, ch, nil, nr)
	if err != nil {
		return nr, err
	}
	c.appendActivity(ctx, en)
	return nr, nil
}

// isTimeout reports an error after which a conditional write may or may not
// have applied.
func isTimeout(err error) bool {
	var wt *gocql.RequestErrWriteTimeout
	return errors.As(err, &wt) || errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, context.DeadlineExceeded)
}

// GetFlag implements catalog.Flags.
func (c *Catalog) GetFlag(ctx context.Context, teamID, id int64) (catalog.FlagRecord, error) {
	err := c.enter(ctx)
	var f catalog.FlagRecord
	if err == nil {
		f, err = c.getFlag(ctx, teamID, id)
	}
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %d: %w", id, err)
	}
	return f, nil
}

// GetFlagByKey implements catalog.Flags: the claim, then the flag it names,
// which must still be live under that key.
func (c *Catalog) GetFlagByKey(ctx context.Context, teamID int64, key string) (catalog.FlagRecord, error) {
	f, err := c.getFlagByKey(ctx, teamID, key)
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %q: %w", key, err)
	}
	return f, nil
}

func (c *Catalog) getFlagByKey(ctx context.Context, teamID int64, key string) (catalog.FlagRecord, error) {
	if err := c.enter(ctx); err != nil {
		return catalog.FlagRecord{}, err
	}
	var id int64
	if err := c.query(ctx, c.q.getClaim, teamID, key).Scan(&id); err != nil {
		if errors.Is(err, gocql.ErrNotFound) {
			err = catalog.ErrNotFound
		}
		return catalog.FlagRecord{}, err
	}
	f, err := c.getFlag(ctx, teamID, id)
	if err == nil && (f.Flag.Deleted || f.Flag.Key != key) {
		err = catalog.ErrNotFound
	}
	return f, err
}

// ListFlags implements catalog.Flags: one partition, by id.
func (c *Catalog) ListFlags(ctx context.Context, teamID int64) ([]catalog.FlagRecord, error) {
	err := c.enter(ctx)
	var out []catalog.FlagRecord
	if err == nil {
		out, err = listData[catalog.FlagRecord](ctx, c, c.q.listFlags, teamID)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: list flags of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateFlag implements catalog.Flags: claim a new key first, then the
// conditional update, then release the old key.
func (c *Catalog) UpdateFlag(ctx context.Context, r catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	out, err := c.updateFlag(ctx, r, ch)
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: update flag %d: %w", r.Flag.ID, err)
	}
	return out, nil
}

func (c *Catalog) updateFlag(ctx context.Context, r catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	if err := c.enter(ctx); err != nil {
		return r, err
	}
	if err := records.CheckChange(ch); err != nil {
		return r, err
	}
	team, id := r.Flag.TeamID, r.Flag.ID
	old, err := c.getFlag(ctx, team, id)
	if err != nil {
		return r, err
	}
	if old.Flag.Version != r.Flag.Version {
		return r, conflict("flag", r.Flag.Version, old.Flag.Version)
	}
	now := c.now()
	nr, action, err := records.UpdatedFlag(old, r, now, ch)
	if err != nil {
		return r, err
	}
	nr, raw, err := records.Encode(nr)
	if err != nil {
		return r, err
	}
	oldKey, release, newKey, take := records.ClaimChange(old, nr)
	state := claimHeld
	if take {
		if state, err = c.takeClaim(ctx, team, newKey, id, now); err != nil {
			return r, err
		}
	}
	applied, row, err := c.cas(ctx, "flag", c.q.updateFlag, nr.Flag.Version, string(raw), team, id, old.Flag.Version)
	if err == nil && !applied {
		err = notApplied("flag", r.Flag.Version, row)
	}
	if err != nil {
		if take && state == claimTaken && !isTimeout(err) {
			c.releaseClaim(ctx, team, newKey, id)
		}
		return r, err
	}
	if release && !(take && oldKey == newKey) {
		c.releaseClaim(ctx, team, oldKey, id)
	}
	en, err := records.Entry(&c.ids, now, team, catalog.ScopeFlag, records.ItemID(id), action, ch, old, nr)
	if err != nil {
		return nr, err
	}
	c.appendActivity(ctx, en)
	return nr, nil
}
