package admin

import (
	"context"
	"slices"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// PrecomputeRun is a team's latest precompute run as the management API
// reports it, with its progress at a given time. The precompute worker owns
// the run states; cmd/vexil reads them into this (Config.Precompute), so
// the management API does not depend on the worker.
type PrecomputeRun struct {
	ID     string
	Reason string
	// Flags are the flags the run recomputes; nil means all of them.
	Flags []string
	// FinishedAt is zero while the run is in progress.
	StartedAt, FinishedAt time.Time
	// ScanDone: every page of the run is published, what is left is
	// computing them.
	ScanDone         bool
	Pages, PagesDone int64
	// RowsTotal is an estimate while scanning.
	RowsDone, RowsTotal int64
	// RowsPerSecond is the average since the run started, ETA the time
	// left at that rate (zero when finished or unknown).
	RowsPerSecond float64
	ETA           time.Duration
}

// GetPrecomputeStatus returns the team's latest precompute run and its
// progress at the Service's clock.
func (s *Service) GetPrecomputeStatus(ctx context.Context, req *adminv1.GetPrecomputeStatusRequest) (*adminv1.GetPrecomputeStatusResponse, error) {
	team := req.GetTeamId()
	if _, err := s.getTeam(ctx, team); err != nil {
		return nil, err
	}
	if s.cfg.Precompute == nil {
		return nil, errcode.New(errcode.PrecomputeUnavailable, "this server cannot read precompute run states (it runs without NATS or precompute)")
	}
	st, err := s.cfg.Precompute(ctx, team, s.cfg.Now())
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		s.log.Warn("precompute status: reading the run state", "team", team, "err", err)
		return nil, errcode.New(errcode.PrecomputeUnavailable, "reading the precompute run state failed: retry later").Wrap(err)
	}
	return &adminv1.GetPrecomputeStatusResponse{Run: precomputeRun(team, st)}, nil
}

// precomputeRun describes run r (nil: none) of team.
func precomputeRun(team int64, r *PrecomputeRun) *adminv1.PrecomputeRun {
	if r == nil {
		return &adminv1.PrecomputeRun{TeamId: team, State: adminv1.PrecomputeState_PRECOMPUTE_STATE_NONE}
	}
	return &adminv1.PrecomputeRun{
		TeamId: team, Id: r.ID, State: precomputeState(r), Reason: r.Reason, Flags: slices.Clone(r.Flags),
		StartedAt: ts(r.StartedAt), FinishedAt: ts(r.FinishedAt),
		RowsDone: r.RowsDone, RowsTotal: r.RowsTotal, RowsPerSecond: r.RowsPerSecond, EtaSeconds: r.ETA.Seconds(),
		Pages: r.Pages, PagesDone: r.PagesDone,
	}
}

func precomputeState(r *PrecomputeRun) adminv1.PrecomputeState {
	switch {
	case !r.FinishedAt.IsZero():
		return adminv1.PrecomputeState_PRECOMPUTE_STATE_FINISHED
	case !r.ScanDone:
		return adminv1.PrecomputeState_PRECOMPUTE_STATE_SCANNING
	}
	return adminv1.PrecomputeState_PRECOMPUTE_STATE_COMPUTING
}
