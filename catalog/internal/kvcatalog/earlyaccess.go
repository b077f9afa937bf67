package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func earlyKey(team int64, id string) []byte { return newKey(tagEarly).int(team).last(id) }

// CreateEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) CreateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.EarlyAccessFeature, error) {
		if err := requireTeam(r, f.TeamID); err != nil {
			return catalog.EarlyAccessFeature{}, err
		}
		nf, err := records.NewEarlyAccess(f, now, ch)
		if err != nil {
			return catalog.EarlyAccessFeature{}, err
		}
		return logged(e, b, now, earlyKey(nf.TeamID, nf.ID), nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, records.ActionCreated, ch, nil, nf)
	})
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: create early access feature: %w", err)
	}
	return out, nil
}

// GetEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) GetEarlyAccess(ctx context.Context, teamID int64, id string) (catalog.EarlyAccessFeature, error) {
	f, err := pointGet[catalog.EarlyAccessFeature](e, ctx, earlyKey(teamID, id))
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: get early access feature %s: %w", id, err)
	}
	return f, nil
}

// listEarly returns the team's features in the order of
// records.SortEarlyAccess.
func listEarly(r Reader, team int64) ([]catalog.EarlyAccessFeature, error) {
	out, err := list[catalog.EarlyAccessFeature](r, newKey(tagEarly).int(team))
	records.SortEarlyAccess(out)
	return out, err
}

// ListEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) ListEarlyAccess(ctx context.Context, teamID int64) ([]catalog.EarlyAccessFeature, error) {
	out, err := viewValue(e, ctx, func(r Reader) ([]catalog.EarlyAccessFeature, error) { return listEarly(r, teamID) })
	if err != nil {
		return nil, fmt.Errorf("catalog: list early access features of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateEarlyAccess implements catalog.EarlyAccess.
func (e *Engine) UpdateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	out, err := update(e, ctx, earlyKey(f.TeamID, f.ID), "early access feature", f.Version,
		func(old catalog.EarlyAccessFeature) int64 { return old.Version },
		func(r Reader, b *Batch, now time.Time, old catalog.EarlyAccessFeature) (catalog.EarlyAccessFeature, error) {
			nf, action, err := records.UpdatedEarlyAccess(old, f, now, ch)
			if err != nil {
				return catalog.EarlyAccessFeature{}, err
			}
			return logged(e, b, now, earlyKey(nf.TeamID, nf.ID), nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, action, ch, old, nf)
		})
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: update early access feature %s: %w", f.ID, err)
	}
	return out, nil
}
