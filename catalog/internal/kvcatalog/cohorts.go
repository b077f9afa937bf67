package kvcatalog

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// A cohort is stored under its id; each static member is a key of its own
// under the cohort's member prefix.
func cohortKey(team, id int64) []byte { return newKey(tagCohort).int(team).int(id) }

func memberPrefix(team, cohort int64) keyBuf { return newKey(tagMember).int(team).int(cohort) }

// CreateCohort implements catalog.Cohorts.
func (e *Engine) CreateCohort(ctx context.Context, rec catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.CohortRecord, error) {
		team := rec.Cohort.TeamID
		if err := requireTeam(r, team); err != nil {
			return catalog.CohortRecord{}, err
		}
		id, err := nextSeq(r, b, "cohort")
		if err != nil {
			return catalog.CohortRecord{}, err
		}
		nr, err := records.NewCohort(rec, id, now, ch)
		if err != nil {
			return catalog.CohortRecord{}, err
		}
		return logged(e, b, now, cohortKey(team, id), team, catalog.ScopeCohort, records.ItemID(id), records.ActionCreated, ch, nil, nr)
	})
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: create cohort: %w", err)
	}
	return out, nil
}

// GetCohort implements catalog.Cohorts.
func (e *Engine) GetCohort(ctx context.Context, teamID, id int64) (catalog.CohortRecord, error) {
	c, err := pointGet[catalog.CohortRecord](e, ctx, cohortKey(teamID, id))
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: get cohort %d: %w", id, err)
	}
	return c, nil
}

func listCohorts(r Reader, team int64) ([]catalog.CohortRecord, error) {
	return list[catalog.CohortRecord](r, newKey(tagCohort).int(team))
}

// ListCohorts implements catalog.Cohorts.
func (e *Engine) ListCohorts(ctx context.Context, teamID int64) ([]catalog.CohortRecord, error) {
	out, err := viewList[catalog.CohortRecord](e, ctx, newKey(tagCohort).int(teamID))
	if err != nil {
		return nil, fmt.Errorf("catalog: list cohorts of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateCohort implements catalog.Cohorts.
func (e *Engine) UpdateCohort(ctx context.Context, rec catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	team, id := rec.Cohort.TeamID, rec.Cohort.ID
	out, err := update(e, ctx, cohortKey(team, id), "cohort", rec.Cohort.Version, func(old catalog.CohortRecord) int64 { return old.Cohort.Version },
		func(r Reader, b *Batch, now time.Time, old catalog.CohortRecord) (catalog.CohortRecord, error) {
			nr, action := records.UpdatedCohort(old, rec, now, ch)
			return logged(e, b, now, cohortKey(team, id), team, catalog.ScopeCohort, records.ItemID(id), action, ch, old, nr)
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
		if _, err := get[catalog.CohortRecord](r, cohortKey(team, cohort)); err != nil {
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
		if _, err := get[catalog.CohortRecord](r, cohortKey(teamID, cohortID)); err != nil {
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
