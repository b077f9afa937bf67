package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// RestoreTeam implements catalog.Restorer in one batch: the team, its
// flags (with their key claims), cohorts and early access features keep
// their ids and versions, and the id sequences move past them so that
// later creations do not collide.
func (e *Engine) RestoreTeam(ctx context.Context, s catalog.TeamSnapshot, replace bool, ch catalog.Change) error {
	t := s.Team
	err := e.write(ctx, func(r Reader, b *Batch, now time.Time) error {
		if err := records.CheckTeamID(t.ID); err != nil {
			return err
		}
		if _, ok, err := r.Get(teamKey(t.ID)); err != nil {
			return err
		} else if ok && !replace {
			return fmt.Errorf("team %d: %w", t.ID, catalog.ErrExists)
		}
		t.CreatedAt, t.UpdatedAt = now, now
		if _, err := logged(e, b, now, teamKey(t.ID), t.ID, catalog.ScopeTeam, records.ItemID(t.ID), records.ActionCreated, ch, nil, t); err != nil {
			return err
		}
		if err := bumpSeq(r, b, "team", t.ID); err != nil {
			return err
		}
		for _, f := range s.Definitions.Flags {
			f.TeamID = t.ID
			rec := catalog.FlagRecord{Flag: f, CreatedAt: now, UpdatedAt: now, CreatedBy: ch.Actor, UpdatedBy: ch.Actor}
			if key, live := records.FlagClaim(rec); live {
				if err := claim(r, b, t.ID, key, f.ID); err != nil {
					return err
				}
			}
			if _, err := putRecord(b, flagKey(t.ID, f.ID), rec); err != nil {
				return err
			}
			if err := bumpSeq(r, b, "flag", f.ID); err != nil {
				return err
			}
		}
		for _, c := range s.Definitions.Cohorts {
			c.TeamID = t.ID
			rec := catalog.CohortRecord{Cohort: c, CreatedAt: now, UpdatedAt: now, CreatedBy: ch.Actor, UpdatedBy: ch.Actor}
			if _, err := putRecord(b, cohortKey(t.ID, c.ID), rec); err != nil {
				return err
			}
			if err := bumpSeq(r, b, "cohort", c.ID); err != nil {
				return err
			}
		}
		for _, f := range s.EarlyAccess {
			f.TeamID = t.ID
			if _, err := putRecord(b, earlyKey(t.ID, f.ID), f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: restore team %d: %w", t.ID, err)
	}
	return nil
}
