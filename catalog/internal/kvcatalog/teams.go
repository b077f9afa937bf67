package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func teamKey(id int64) []byte { return newKey(tagTeam).int(id) }

// requireTeam fails with catalog.ErrNotFound unless team id exists.
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

// CreateTeam implements catalog.Teams.
func (e *Engine) CreateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.Team, error) {
		id, err := allocTeamID(r, b, t.ID)
		if err != nil {
			return catalog.Team{}, err
		}
		nt, err := records.NewTeam(t, id, now)
		if err != nil {
			return catalog.Team{}, err
		}
		return logged(e, b, now, teamKey(id), id, catalog.ScopeTeam, records.ItemID(id), records.ActionCreated, ch, nil, nt)
	})
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: create team: %w", err)
	}
	return out, nil
}

// allocTeamID returns the id of a new team: the next free value of the
// team sequence when id is 0, else id if it is free (the sequence then
// moves past it).
func allocTeamID(r Reader, b *Batch, id int64) (int64, error) {
	if id != 0 {
		if _, ok, err := r.Get(teamKey(id)); err != nil {
			return 0, err
		} else if ok {
			return 0, fmt.Errorf("team %d: %w", id, catalog.ErrExists)
		}
		return id, bumpSeq(r, b, "team", id)
	}
	for {
		n, err := nextSeq(r, b, "team")
		if err != nil {
			return 0, err
		}
		if _, ok, err := r.Get(teamKey(n)); err != nil {
			return 0, err
		} else if !ok {
			return n, nil
		}
	}
}

// GetTeam implements catalog.Teams.
func (e *Engine) GetTeam(ctx context.Context, id int64) (catalog.Team, error) {
	t, err := pointGet[catalog.Team](e, ctx, teamKey(id))
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: get team %d: %w", id, err)
	}
	return t, nil
}

// ListTeams implements catalog.Teams.
func (e *Engine) ListTeams(ctx context.Context) ([]catalog.Team, error) {
	out, err := viewList[catalog.Team](e, ctx, []byte{tagTeam})
	if err != nil {
		return nil, fmt.Errorf("catalog: list teams: %w", err)
	}
	return out, nil
}

// UpdateTeam implements catalog.Teams.
func (e *Engine) UpdateTeam(ctx context.Context, t catalog.Team, ch catalog.Change) (catalog.Team, error) {
	out, err := update(e, ctx, teamKey(t.ID), "team", t.Version, func(old catalog.Team) int64 { return old.Version },
		func(r Reader, b *Batch, now time.Time, old catalog.Team) (catalog.Team, error) {
			nt, err := records.UpdatedTeam(old, t, now)
			if err != nil {
				return catalog.Team{}, err
			}
			return logged(e, b, now, teamKey(nt.ID), nt.ID, catalog.ScopeTeam, records.ItemID(nt.ID), records.ActionUpdated, ch, old, nt)
		})
	if err != nil {
		return catalog.Team{}, fmt.Errorf("catalog: update team %d: %w", t.ID, err)
	}
	return out, nil
}
