package scyllacatalog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

// memberBatch is the number of member writes per UNLOGGED batch (one
// partition: the cohort's).
const memberBatch = 100

func (c *Catalog) getCohort(ctx context.Context, team, id int64) (catalog.CohortRecord, error) {
	var r catalog.CohortRecord
	err := c.getData(ctx, &r, c.q.getCohort, team, id)
	return r, err
}

// CreateCohort implements catalog.Cohorts.
func (c *Catalog) CreateCohort(ctx context.Context, r catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	out, err := c.createCohort(ctx, r, ch)
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: create cohort: %w", err)
	}
	return out, nil
}

func (c *Catalog) createCohort(ctx context.Context, r catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	if err := c.enter(ctx); err != nil {
		return r, err
	}
	if err := records.CheckChange(ch); err != nil {
		return r, err
	}
	team := r.Cohort.TeamID
	if err := c.requireTeam(ctx, team); err != nil {
		return r, err
	}
	id, err := c.nextID(ctx, "cohort")
	if err != nil {
		return r, err
	}
	now := c.now()
	nr, err := records.NewCohort(r, id, now, ch)
	if err != nil {
		return r, err
	}
	nr, raw, err := records.Encode(nr)
	if err != nil {
		return r, err
	}
	applied, _, err := c.cas(ctx, "cohort", c.q.insertCohort, team, id, nr.Cohort.Version, string(raw))
	if err == nil && !applied {
		err = fmt.Errorf("cohort id %d: %w", id, catalog.ErrExists)
	}
	if err != nil {
		return r, err
	}
	en, err := records.Entry(&c.ids, now, team, catalog.ScopeCohort, records.ItemID(id), records.ActionCreated, ch, nil, nr)
	if err != nil {
		return nr, err
	}
	c.appendActivity(ctx, en)
	return nr, nil
}

// GetCohort implements catalog.Cohorts.
func (c *Catalog) GetCohort(ctx context.Context, teamID, id int64) (catalog.CohortRecord, error) {
	err := c.enter(ctx)
	var r catalog.CohortRecord
	if err == nil {
		r, err = c.getCohort(ctx, teamID, id)
	}
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: get cohort %d: %w", id, err)
	}
	return r, nil
}

// ListCohorts implements catalog.Cohorts.
func (c *Catalog) ListCohorts(ctx context.Context, teamID int64) ([]catalog.CohortRecord, error) {
	err := c.enter(ctx)
	var out []catalog.CohortRecord
	if err == nil {
		out, err = listData[catalog.CohortRecord](ctx, c, c.q.listCohorts, teamID)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: list cohorts of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateCohort implements catalog.Cohorts.
func (c *Catalog) UpdateCohort(ctx context.Context, r catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	out, err := c.updateCohort(ctx, r, ch)
	if err != nil {
		return catalog.CohortRecord{}, fmt.Errorf("catalog: update cohort %d: %w", r.Cohort.ID, err)
	}
	return out, nil
}

func (c *Catalog) updateCohort(ctx context.Context, r catalog.CohortRecord, ch catalog.Change) (catalog.CohortRecord, error) {
	if err := c.enter(ctx); err != nil {
		return r, err
	}
	if err := records.CheckChange(ch); err != nil {
		return r, err
	}
	team, id := r.Cohort.TeamID, r.Cohort.ID
	old, err := c.getCohort(ctx, team, id)
	if err != nil {
		return r, err
	}
	if old.Cohort.Version != r.Cohort.Version {
		return r, conflict("cohort", r.Cohort.Version, old.Cohort.Version)
	}
	now := c.now()
	nr, action := records.UpdatedCohort(old, r, now, ch)
	nr, raw, err := records.Encode(nr)
	if err != nil {
		return r, err
	}
	applied, row, err := c.cas(ctx, "cohort", c.q.updateCohort, nr.Cohort.Version, string(raw), team, id, old.Cohort.Version)
	if err == nil && !applied {
		err = notApplied("cohort", r.Cohort.Version, row)
	}
	if err != nil {
		return r, err
	}
	en, err := records.Entry(&c.ids, now, team, catalog.ScopeCohort, records.ItemID(id), action, ch, old, nr)
	if err != nil {
		return nr, err
	}
	c.appendActivity(ctx, en)
	return nr, nil
}

func (c *Catalog) changeMembers(ctx context.Context, team, cohort int64, ids []string, ch catalog.Change, add bool) error {
	if err := c.enter(ctx); err != nil {
		return err
	}
	if err := records.CheckChange(ch); err != nil {
		return err
	}
	ids, err := records.CheckMembers(ids)
	if err != nil {
		return err
	}
	if _, err := c.getCohort(ctx, team, cohort); err != nil {
		return err
	}
	stmt, action := c.q.delMember, records.ActionMembersRemoved
	if add {
		stmt, action = c.q.putMember, records.ActionMembersAdded
	}
	for start := 0; start < len(ids); start += memberBatch {
		b := c.sess.Batch(gocql.UnloggedBatch).WithContext(ctx)
		for _, id := range ids[start:min(start+memberBatch, len(ids))] {
			b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: []any{team, cohort, id}, Idempotent: true})
		}
		if err := b.Exec(); err != nil {
			return err
		}
	}
	en, err := records.Entry(&c.ids, c.now(), team, catalog.ScopeCohort, records.ItemID(cohort), action, records.MembersDiff(ch, ids), nil, nil)
	if err != nil {
		return err
	}
	c.appendActivity(ctx, en)
	return nil
}

// AddCohortMembers implements catalog.Cohorts.
func (c *Catalog) AddCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error {
	if err := c.changeMembers(ctx, teamID, cohortID, distinctIDs, ch, true); err != nil {
		return fmt.Errorf("catalog: add members to cohort %d: %w", cohortID, err)
	}
	return nil
}

// RemoveCohortMembers implements catalog.Cohorts.
func (c *Catalog) RemoveCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error {
	if err := c.changeMembers(ctx, teamID, cohortID, distinctIDs, ch, false); err != nil {
		return fmt.Errorf("catalog: remove members from cohort %d: %w", cohortID, err)
	}
	return nil
}

// ListCohortMembers implements catalog.Cohorts. The cursor is the last
// distinct id returned, base64url-encoded (as in the embedded backends).
func (c *Catalog) ListCohortMembers(ctx context.Context, teamID, cohortID int64, p catalog.Page) ([]string, string, error) {
	out, next, err := c.listMembers(ctx, teamID, cohortID, p)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list members of cohort %d: %w", cohortID, err)
	}
	return out, next, nil
}

func (c *Catalog) listMembers(ctx context.Context, teamID, cohortID int64, p catalog.Page) ([]string, string, error) {
	if err := c.enter(ctx); err != nil {
		return nil, "", err
	}
	after := ""
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("cursor: %w", catalog.ErrInvalid)
		}
		after = string(b)
	}
	if _, err := c.getCohort(ctx, teamID, cohortID); err != nil {
		return nil, "", err
	}
	limit := p.EffectiveLimit()
	var out []string
	var id string
	err := each(c.query(ctx, c.q.listMembers, teamID, cohortID, after, limit+1), []any{&id}, func() (bool, error) {
		out = append(out, id)
		return len(out) <= limit, nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(out[limit-1]))
	}
	return out, next, nil
}

// IsCohortMember implements catalog.Cohorts.
func (c *Catalog) IsCohortMember(ctx context.Context, teamID, cohortID int64, distinctID string) (bool, error) {
	if err := c.enter(ctx); err != nil {
		return false, fmt.Errorf("catalog: cohort %d member: %w", cohortID, err)
	}
	var id string
	err := c.query(ctx, c.q.getMember, teamID, cohortID, distinctID).Scan(&id)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("catalog: cohort %d member: %w", cohortID, err)
	}
	return true, nil
}

func (c *Catalog) getEarly(ctx context.Context, team int64, id string) (catalog.EarlyAccessFeature, error) {
	var f catalog.EarlyAccessFeature
	err := c.getData(ctx, &f, c.q.getEarly, team, id)
	return f, err
}

// CreateEarlyAccess implements catalog.EarlyAccess.
func (c *Catalog) CreateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	out, err := c.createEarly(ctx, f, ch)
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: create early access feature: %w", err)
	}
	return out, nil
}

func (c *Catalog) createEarly(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	if err := c.enter(ctx); err != nil {
		return f, err
	}
	if err := records.CheckChange(ch); err != nil {
		return f, err
	}
	now := c.now()
	nf, err := records.NewEarlyAccess(f, now, ch)
	if err != nil {
		return f, err
	}
	if err := c.requireTeam(ctx, f.TeamID); err != nil {
		return f, err
	}
	nf, raw, err := records.Encode(nf)
	if err != nil {
		return f, err
	}
	applied, _, err := c.cas(ctx, "early_access", c.q.insertEarly, nf.TeamID, nf.ID, nf.Version, string(raw))
	if err == nil && !applied {
		err = fmt.Errorf("early access feature %s: %w", nf.ID, catalog.ErrExists)
	}
	if err != nil {
		return f, err
	}
	en, err := records.Entry(&c.ids, now, nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, records.ActionCreated, ch, nil, nf)
	if err != nil {
		return nf, err
	}
	c.appendActivity(ctx, en)
	return nf, nil
}

// GetEarlyAccess implements catalog.EarlyAccess.
func (c *Catalog) GetEarlyAccess(ctx context.Context, teamID int64, id string) (catalog.EarlyAccessFeature, error) {
	err := c.enter(ctx)
	var f catalog.EarlyAccessFeature
	if err == nil {
		f, err = c.getEarly(ctx, teamID, id)
	}
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: get early access feature %s: %w", id, err)
	}
	return f, nil
}

func (c *Catalog) listEarly(ctx context.Context, teamID int64) ([]catalog.EarlyAccessFeature, error) {
	out, err := listData[catalog.EarlyAccessFeature](ctx, c, c.q.listEarly, teamID)
	records.SortEarlyAccess(out)
	return out, err
}

// ListEarlyAccess implements catalog.EarlyAccess.
func (c *Catalog) ListEarlyAccess(ctx context.Context, teamID int64) ([]catalog.EarlyAccessFeature, error) {
	err := c.enter(ctx)
	var out []catalog.EarlyAccessFeature
	if err == nil {
		out, err = c.listEarly(ctx, teamID)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: list early access features of team %d: %w", teamID, err)
	}
	return out, nil
}

// UpdateEarlyAccess implements catalog.EarlyAccess.
func (c *Catalog) UpdateEarlyAccess(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	out, err := c.updateEarly(ctx, f, ch)
	if err != nil {
		return catalog.EarlyAccessFeature{}, fmt.Errorf("catalog: update early access feature %s: %w", f.ID, err)
	}
	return out, nil
}

func (c *Catalog) updateEarly(ctx context.Context, f catalog.EarlyAccessFeature, ch catalog.Change) (catalog.EarlyAccessFeature, error) {
	if err := c.enter(ctx); err != nil {
		return f, err
	}
	if err := records.CheckChange(ch); err != nil {
		return f, err
	}
	old, err := c.getEarly(ctx, f.TeamID, f.ID)
	if err != nil {
		return f, err
	}
	if old.Version != f.Version {
		return f, conflict("early access feature", f.Version, old.Version)
	}
	now := c.now()
	nf, action, err := records.UpdatedEarlyAccess(old, f, now, ch)
	if err != nil {
		return f, err
	}
	nf, raw, err := records.Encode(nf)
	if err != nil {
		return f, err
	}
	applied, row, err := c.cas(ctx, "early_access", c.q.updateEarly, nf.Version, string(raw), nf.TeamID, nf.ID, old.Version)
	if err == nil && !applied {
		err = notApplied("early access feature", f.Version, row)
	}
	if err != nil {
		return f, err
	}
	en, err := records.Entry(&c.ids, now, nf.TeamID, catalog.ScopeEarlyAccess, nf.ID, action, ch, old, nf)
	if err != nil {
		return nf, err
	}
	c.appendActivity(ctx, en)
	return nf, nil
}

// ListActivity implements catalog.Activity: newest first from the per-team
// or per-record table; the cursor is the id of the last entry returned.
func (c *Catalog) ListActivity(ctx context.Context, q catalog.ActivityQuery) ([]catalog.ActivityEntry, string, error) {
	out, next, err := c.listActivity(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list activity: %w", err)
	}
	return out, next, nil
}

func (c *Catalog) listActivity(ctx context.Context, q catalog.ActivityQuery) ([]catalog.ActivityEntry, string, error) {
	if err := c.enter(ctx); err != nil {
		return nil, "", err
	}
	if err := records.CheckQuery(q); err != nil {
		return nil, "", err
	}
	limit := q.EffectiveLimit()
	var stmt string
	var args []any
	switch {
	case q.ItemID == "" && q.Cursor == "":
		stmt, args = c.q.listActivity, []any{q.TeamID, limit + 1}
	case q.ItemID == "":
		stmt, args = c.q.listActivityAfter, []any{q.TeamID, q.Cursor, limit + 1}
	case q.Cursor == "":
		stmt, args = c.q.listItemActivity, []any{q.TeamID, string(q.Scope), q.ItemID, limit + 1}
	default:
		stmt, args = c.q.listItemActivityAfter, []any{q.TeamID, string(q.Scope), q.ItemID, q.Cursor, limit + 1}
	}
	out, err := listData[catalog.ActivityEntry](ctx, c, stmt, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

func (c *Catalog) getJob(ctx context.Context, team int64, id string) (catalog.BlastRadiusJob, error) {
	var j catalog.BlastRadiusJob
	err := c.getData(ctx, &j, c.q.getJob, team, id)
	return j, err
}

// CreateJob implements catalog.Jobs.
func (c *Catalog) CreateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	out, err := c.createJob(ctx, j)
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: create job: %w", err)
	}
	return out, nil
}

func (c *Catalog) createJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	if err := c.enter(ctx); err != nil {
		return j, err
	}
	nj, err := records.NewJob(j, c.now())
	if err != nil {
		return j, err
	}
	if err := c.requireTeam(ctx, j.TeamID); err != nil {
		return j, err
	}
	nj, raw, err := records.Encode(nj)
	if err != nil {
		return j, err
	}
	applied, _, err := c.cas(ctx, "job", c.q.insertJob, nj.TeamID, nj.ID, nj.Version, string(raw))
	if err == nil && !applied {
		err = fmt.Errorf("job %s: %w", nj.ID, catalog.ErrExists)
	}
	if err != nil {
		return j, err
	}
	return nj, nil
}

// GetJob implements catalog.Jobs.
func (c *Catalog) GetJob(ctx context.Context, teamID int64, id string) (catalog.BlastRadiusJob, error) {
	err := c.enter(ctx)
	var j catalog.BlastRadiusJob
	if err == nil {
		j, err = c.getJob(ctx, teamID, id)
	}
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: get job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs implements catalog.Jobs.
func (c *Catalog) ListJobs(ctx context.Context, teamID int64) ([]catalog.BlastRadiusJob, error) {
	err := c.enter(ctx)
	var out []catalog.BlastRadiusJob
	if err == nil {
		out, err = listData[catalog.BlastRadiusJob](ctx, c, c.q.listJobs, teamID)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: list jobs of team %d: %w", teamID, err)
	}
	records.SortJobs(out)
	return out, nil
}

// UpdateJob implements catalog.Jobs.
func (c *Catalog) UpdateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	out, err := c.updateJob(ctx, j)
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: update job %s: %w", j.ID, err)
	}
	return out, nil
}

func (c *Catalog) updateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	if err := c.enter(ctx); err != nil {
		return j, err
	}
	old, err := c.getJob(ctx, j.TeamID, j.ID)
	if err != nil {
		return j, err
	}
	if old.Version != j.Version {
		return j, conflict("job", j.Version, old.Version)
	}
	nj, raw, err := records.Encode(records.UpdatedJob(old, j, c.now()))
	if err != nil {
		return j, err
	}
	applied, row, err := c.cas(ctx, "job", c.q.updateJob, nj.Version, string(raw), nj.TeamID, nj.ID, old.Version)
	if err == nil && !applied {
		err = notApplied("job", j.Version, row)
	}
	if err != nil {
		return j, err
	}
	return nj, nil
}

// Snapshot implements catalog.Snapshotter.
func (c *Catalog) Snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error) {
	s, err := c.snapshot(ctx, teamID)
	if err != nil {
		return catalog.TeamSnapshot{}, fmt.Errorf("catalog: snapshot of team %d: %w", teamID, err)
	}
	return s, nil
}

func (c *Catalog) snapshot(ctx context.Context, teamID int64) (catalog.TeamSnapshot, error) {
	if err := c.enter(ctx); err != nil {
		return catalog.TeamSnapshot{}, err
	}
	t, err := c.getTeam(ctx, teamID)
	if err != nil {
		return catalog.TeamSnapshot{}, err
	}
	fs, err := listData[catalog.FlagRecord](ctx, c, c.q.listFlags, teamID)
	if err != nil {
		return catalog.TeamSnapshot{}, err
	}
	cs, err := listData[catalog.CohortRecord](ctx, c, c.q.listCohorts, teamID)
	if err != nil {
		return catalog.TeamSnapshot{}, err
	}
	es, err := c.listEarly(ctx, teamID)
	if err != nil {
		return catalog.TeamSnapshot{}, err
	}
	return records.Snapshot(t, fs, cs, es), nil
}
