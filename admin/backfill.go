package admin

import (
	"context"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Backfills starts and reports cohort backfills (package
// projector/backfill in vexil serve, adapted in cmd: the management API
// does not depend on the workers). Errors carry errcode codes.
type Backfills interface {
	// StartBackfill starts (or returns the running) backfill of a cohort.
	StartBackfill(ctx context.Context, team, cohort int64) (BackfillState, error)
	// Backfill returns the state of the cohort's last backfill; ok false
	// when none was started.
	Backfill(ctx context.Context, team, cohort int64) (s BackfillState, ok bool, err error)
}

// BackfillState is a cohort backfill's state.
type BackfillState struct {
	State                 string // "backfilling", "done" or "failed"
	Progress              float64
	StartedAt, FinishedAt time.Time
	Events, Rows          int
	Error                 string
}

// BackfillBackfilling is the state of a backfill still running.
const BackfillBackfilling = "backfilling"

func backfillProto(b BackfillState) *adminv1.CohortBackfill {
	out := &adminv1.CohortBackfill{State: b.State, Progress: b.Progress, StartedAt: ts(b.StartedAt),
		Events: int64(b.Events), Rows: int64(b.Rows), Error: b.Error}
	if !b.FinishedAt.IsZero() {
		out.FinishedAt = ts(b.FinishedAt)
	}
	return out
}

func (s *Service) backfills() (Backfills, error) {
	if s.cfg.Backfills == nil {
		return nil, errcode.New(errcode.Unavailable, "this server runs no backfills (it has no projector or no NATS)")
	}
	return s.cfg.Backfills, nil
}

// BackfillCohort starts the backfill of a behavioural cohort.
func (s *Service) BackfillCohort(ctx context.Context, req *adminv1.BackfillCohortRequest) (*adminv1.BackfillCohortResponse, error) {
	if _, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId()); err != nil {
		return nil, err
	}
	b, err := s.backfills()
	if err != nil {
		return nil, err
	}
	st, err := b.StartBackfill(ctx, req.GetTeamId(), req.GetCohortId())
	if err != nil {
		return nil, err
	}
	return &adminv1.BackfillCohortResponse{Backfill: backfillProto(st)}, nil
}

// GetCohortBackfill reports a cohort's backfill.
func (s *Service) GetCohortBackfill(ctx context.Context, req *adminv1.GetCohortBackfillRequest) (*adminv1.GetCohortBackfillResponse, error) {
	if _, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId()); err != nil {
		return nil, err
	}
	b, err := s.backfills()
	if err != nil {
		return nil, err
	}
	st, ok, err := b.Backfill(ctx, req.GetTeamId(), req.GetCohortId())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errcode.New(errcode.NotFound, "cohort %d was never backfilled", req.GetCohortId())
	}
	return &adminv1.GetCohortBackfillResponse{Backfill: backfillProto(st)}, nil
}

// withBackfill sets c's backfill state, when there is one; a state that
// cannot be read leaves it unset (the cohort itself is still answered).
func (s *Service) withBackfill(ctx context.Context, c *adminv1.Cohort) *adminv1.Cohort {
	if s.cfg.Backfills == nil || c.GetKind() == adminv1.CohortKind_COHORT_KIND_STATIC {
		return c
	}
	if st, ok, err := s.cfg.Backfills.Backfill(ctx, c.GetTeamId(), c.GetId()); err == nil && ok {
		c.Backfill = backfillProto(st)
	}
	return c
}

// backfillingCohorts returns those of ids whose backfill is running.
func (s *Service) backfillingCohorts(ctx context.Context, team int64, ids []int64) []int64 {
	if s.cfg.Backfills == nil {
		return nil
	}
	var out []int64
	for _, id := range ids {
		if st, ok, err := s.cfg.Backfills.Backfill(ctx, team, id); err == nil && ok && st.State == BackfillBackfilling {
			out = append(out, id)
		}
	}
	return out
}
