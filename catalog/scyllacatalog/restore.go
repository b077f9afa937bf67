package scyllacatalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// RestoreTeam implements catalog.Restorer. Every record is a conditional
// insert (an update of the version found, with replace), as the other
// writes, so a concurrent write is not lost silently; the team is written
// last, so a failure leaves no team that lists half its definitions. The
// restore is not atomic: run it again with replace after a failure.
func (c *Catalog) RestoreTeam(ctx context.Context, s catalog.TeamSnapshot, replace bool, ch catalog.Change) error {
	if err := c.restoreTeam(ctx, s, replace, ch); err != nil {
		return fmt.Errorf("catalog: restore team %d: %w", s.Team.ID, err)
	}
	return nil
}

func (c *Catalog) restoreTeam(ctx context.Context, s catalog.TeamSnapshot, replace bool, ch catalog.Change) error {
	if err := c.enter(ctx); err != nil {
		return err
	}
	t := s.Team
	if err := records.CheckTeamID(t.ID); err != nil {
		return err
	}
	now := c.now()
	put := func(kind, insert, update string, key []any, version int64, v any) error {
		_, raw, err := records.Encode(v)
		if err != nil {
			return err
		}
		applied, row, err := c.cas(ctx, kind, insert, append(append([]any{}, key...), version, string(raw))...)
		if err != nil || applied {
			return err
		}
		if !replace {
			return fmt.Errorf("%s %v: %w", kind, key, catalog.ErrExists)
		}
		old, _ := row["version"].(int64)
		args := append(append([]any{version, string(raw)}, key...), old)
		applied, _, err = c.cas(ctx, kind, update, args...)
		if err == nil && !applied {
			err = fmt.Errorf("%s %v: %w", kind, key, catalog.ErrConflict)
		}
		return err
	}
	if !replace {
		if err := c.requireTeam(ctx, t.ID); err == nil {
			return fmt.Errorf("team %d: %w", t.ID, catalog.ErrExists)
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
	}
	for _, f := range s.Definitions.Flags {
		f.TeamID = t.ID
		rec := catalog.FlagRecord{Flag: f, CreatedAt: now, UpdatedAt: now, CreatedBy: ch.Actor, UpdatedBy: ch.Actor}
		if key, live := records.FlagClaim(rec); live {
			if _, err := c.takeClaim(ctx, t.ID, key, f.ID, now); err != nil {
				return err
			}
		}
		if err := put("flag", c.q.insertFlag, c.q.updateFlag, []any{t.ID, f.ID}, f.Version, rec); err != nil {
			return err
		}
		if err := c.raiseSeq(ctx, "flag", f.ID); err != nil {
			return err
		}
	}
	for _, co := range s.Definitions.Cohorts {
		co.TeamID = t.ID
		rec := catalog.CohortRecord{Cohort: co, CreatedAt: now, UpdatedAt: now, CreatedBy: ch.Actor, UpdatedBy: ch.Actor}
		if err := put("cohort", c.q.insertCohort, c.q.updateCohort, []any{t.ID, co.ID}, co.Version, rec); err != nil {
			return err
		}
		if err := c.raiseSeq(ctx, "cohort", co.ID); err != nil {
			return err
		}
	}
	for _, f := range s.EarlyAccess {
		f.TeamID = t.ID
		if err := put("early_access", c.q.insertEarly, c.q.updateEarly, []any{t.ID, f.ID}, f.Version, f); err != nil {
			return err
		}
	}
	t.CreatedAt, t.UpdatedAt = now, now
	if err := c.query(ctx, c.q.putTeamIndex, t.ID).Exec(); err != nil {
		return err
	}
	if err := put("team", c.q.insertTeam, c.q.updateTeam, []any{t.ID}, t.Version, t); err != nil {
		return err
	}
	if err := c.raiseSeq(ctx, "team", t.ID); err != nil {
		return err
	}
	en, err := records.Entry(&c.ids, now, t.ID, catalog.ScopeTeam, records.ItemID(t.ID), records.ActionCreated, ch, nil, t)
	if err != nil {
		return err
	}
	c.appendActivity(ctx, en)
	return nil
}

// raiseSeq moves sequence name to at least v, so that nextID never hands
// out a restored id.
func (c *Catalog) raiseSeq(ctx context.Context, name string, v int64) error {
	for range c.cfg.SequenceRetries {
		var cur int64
		err := c.query(ctx, c.q.getSeq, name).Scan(&cur)
		known := err == nil
		if err != nil && !errors.Is(err, gocql.ErrNotFound) {
			return fmt.Errorf("sequence %s: %w", name, err)
		}
		if known && cur >= v {
			return nil
		}
		var applied bool
		if known {
			applied, _, err = c.cas(ctx, "sequence", c.q.advanceSeq, v, name, cur)
		} else {
			applied, _, err = c.cas(ctx, "sequence", c.q.startSeq, name, v)
		}
		if err != nil {
			return fmt.Errorf("sequence %s: %w", name, err)
		}
		if applied {
			return nil
		}
	}
	return fmt.Errorf("sequence %s: still contended after %d attempts", name, c.cfg.SequenceRetries)
}
