package kvcatalog

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// A flag is stored under its id; a live flag claims its key in its team
// (the claim holds the flag id).
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
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.FlagRecord, error) {
		team := rec.Flag.TeamID
		if err := requireTeam(r, team); err != nil {
			return catalog.FlagRecord{}, err
		}
		id, err := nextSeq(r, b, "flag")
		if err != nil {
			return catalog.FlagRecord{}, err
		}
		nr, err := records.NewFlag(rec, id, now, ch)
		if err != nil {
			return catalog.FlagRecord{}, err
		}
		if key, live := records.FlagClaim(nr); live {
			if err := claim(r, b, team, key, id); err != nil {
				return catalog.FlagRecord{}, err
			}
		}
		return logged(e, b, now, flagKey(team, id), team, catalog.ScopeFlag, records.ItemID(id), records.ActionCreated, ch, nil, nr)
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: create flag %q: %w", rec.Flag.Key, err)
	}
	return out, nil
}

// GetFlag implements catalog.Flags.
func (e *Engine) GetFlag(ctx context.Context, teamID, id int64) (catalog.FlagRecord, error) {
	f, err := pointGet[catalog.FlagRecord](e, ctx, flagKey(teamID, id))
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %d: %w", id, err)
	}
	return f, nil
}

// GetFlagByKey implements catalog.Flags.
func (e *Engine) GetFlagByKey(ctx context.Context, teamID int64, key string) (catalog.FlagRecord, error) {
	f, err := viewValue(e, ctx, func(r Reader) (catalog.FlagRecord, error) {
		raw, ok, err := r.Get(flagClaimKey(teamID, key))
		if err != nil {
			return catalog.FlagRecord{}, err
		}
		if !ok {
			return catalog.FlagRecord{}, catalog.ErrNotFound
		}
		f, err := get[catalog.FlagRecord](r, flagKey(teamID, int64(binary.BigEndian.Uint64(raw))))
		if err == nil && (f.Flag.Deleted || f.Flag.Key != key) {
			err = catalog.ErrNotFound
		}
		return f, err
	})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: get flag %q: %w", key, err)
	}
	return f, nil
}

func listFlags(r Reader, team int64) ([]catalog.FlagRecord, error) {
	return list[catalog.FlagRecord](r, newKey(tagFlag).int(team))
}

// ListFlags implements catalog.Flags.
func (e *Engine) ListFlags(ctx context.Context, teamID int64) ([]catalog.FlagRecord, error) {
	out, err := viewList[catalog.FlagRecord](e, ctx, newKey(tagFlag).int(teamID))
	if err != nil {
		return nil, fmt.Errorf("catalog: list flags of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateFlag implements catalog.Flags.
func (e *Engine) UpdateFlag(ctx context.Context, rec catalog.FlagRecord, ch catalog.Change) (catalog.FlagRecord, error) {
	team, id := rec.Flag.TeamID, rec.Flag.ID
	out, err := update(e, ctx, flagKey(team, id), "flag", rec.Flag.Version, func(old catalog.FlagRecord) int64 { return old.Flag.Version },
		func(r Reader, b *Batch, now time.Time, old catalog.FlagRecord) (catalog.FlagRecord, error) {
			nr, action, err := records.UpdatedFlag(old, rec, now, ch)
			if err != nil {
				return catalog.FlagRecord{}, err
			}
			if oldKey, release, newKey, take := records.ClaimChange(old, nr); release || take {
				if take {
					if err := claim(r, b, team, newKey, id); err != nil {
						return catalog.FlagRecord{}, err
					}
				}
				if release && !(take && oldKey == newKey) {
					b.Delete(flagClaimKey(team, oldKey))
				}
			}
			return logged(e, b, now, flagKey(team, id), team, catalog.ScopeFlag, records.ItemID(id), action, ch, old, nr)
		})
	if err != nil {
		return catalog.FlagRecord{}, fmt.Errorf("catalog: update flag %d: %w", id, err)
	}
	return out, nil
}
