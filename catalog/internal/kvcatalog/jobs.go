package kvcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/internal/records"
)

func jobKey(team int64, id string) []byte { return newKey(tagJob).int(team).last(id) }

// CreateJob implements catalog.Jobs.
func (e *Engine) CreateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	out, err := writeValue(e, ctx, func(r Reader, b *Batch, now time.Time) (catalog.BlastRadiusJob, error) {
		if err := requireTeam(r, j.TeamID); err != nil {
			return catalog.BlastRadiusJob{}, err
		}
		nj, err := records.NewJob(j, now)
		if err != nil {
			return catalog.BlastRadiusJob{}, err
		}
		if _, ok, err := r.Get(jobKey(nj.TeamID, nj.ID)); err != nil {
			return catalog.BlastRadiusJob{}, err
		} else if ok {
			return catalog.BlastRadiusJob{}, catalog.ErrExists
		}
		return putRecord(b, jobKey(nj.TeamID, nj.ID), nj)
	})
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: create job: %w", err)
	}
	return out, nil
}

// GetJob implements catalog.Jobs.
func (e *Engine) GetJob(ctx context.Context, teamID int64, id string) (catalog.BlastRadiusJob, error) {
	j, err := pointGet[catalog.BlastRadiusJob](e, ctx, jobKey(teamID, id))
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: get job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs implements catalog.Jobs.
func (e *Engine) ListJobs(ctx context.Context, teamID int64) ([]catalog.BlastRadiusJob, error) {
	out, err := viewList[catalog.BlastRadiusJob](e, ctx, newKey(tagJob).int(teamID))
	if err != nil {
		return nil, fmt.Errorf("catalog: list jobs of team %d: %w", teamID, err)
	}
	records.SortJobs(out)
	return out, nil
}

// UpdateJob implements catalog.Jobs.
func (e *Engine) UpdateJob(ctx context.Context, j catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
	out, err := update(e, ctx, jobKey(j.TeamID, j.ID), "job", j.Version, func(old catalog.BlastRadiusJob) int64 { return old.Version },
		func(r Reader, b *Batch, now time.Time, old catalog.BlastRadiusJob) (catalog.BlastRadiusJob, error) {
			return putRecord(b, jobKey(j.TeamID, j.ID), records.UpdatedJob(old, j, now))
		})
	if err != nil {
		return catalog.BlastRadiusJob{}, fmt.Errorf("catalog: update job %s: %w", j.ID, err)
	}
	return out, nil
}
