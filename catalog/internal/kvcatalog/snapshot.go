package kvcatalog

import (
	"context"
	"fmt"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// Snapshot implements catalog.Snapshotter: one consistent view.
func (e *Engine) Snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error) {
	s, err := viewValue(e, ctx, func(r Reader) (catalog.TeamSnapshot, error) {
		t, err := get[catalog.Team](r, teamKey(teamID))
		if err != nil {
			return catalog.TeamSnapshot{}, err
		}
		fs, err := listFlags(r, teamID)
		if err != nil {
			return catalog.TeamSnapshot{}, err
		}
		cs, err := listCohorts(r, teamID)
		if err != nil {
			return catalog.TeamSnapshot{}, err
		}
		es, err := listEarly(r, teamID)
		if err != nil {
			return catalog.TeamSnapshot{}, err
		}
		return records.Snapshot(t, fs, cs, es), nil
	})
	if err != nil {
		return catalog.TeamSnapshot{}, fmt.Errorf("catalog: snapshot of team %d: %w", teamID, err)
	}
	return s, nil
}
