package admin

import (
	"context"
	"slices"
	"time"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/precompute"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

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
	st, err := s.cfg.Precompute(ctx, team)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		s.log.Warn("precompute status: reading the run state", "team", team, "err", err)
		return nil, errcode.New(errcode.PrecomputeUnavailable, "reading the precompute run state failed: retry later").Wrap(err)
	}
	return &adminv1.GetPrecomputeStatusResponse{Run: precomputeRun(team, st, s.cfg.Now())}, nil
}

// precomputeRun describes run state st (nil: none) of team at now.
func precomputeRun(team int64, st *precompute.RunState, now time.Time) *adminv1.PrecomputeRun {
	if st == nil {
		return &adminv1.PrecomputeRun{TeamId: team, State: adminv1.PrecomputeState_PRECOMPUTE_STATE_NONE}
	}
	p := st.Progress(now)
	return &adminv1.PrecomputeRun{
		TeamId: team, Id: st.ID, State: precomputeState(st), Reason: st.Reason, Flags: slices.Clone(st.Flags),
		StartedAt: ts(st.StartedAt), FinishedAt: ts(st.FinishedAt),
		RowsDone: p.RowsDone, RowsTotal: p.RowsTotal, RowsPerSecond: p.RowsPerSecond, EtaSeconds: p.ETA.Seconds(),
		Pages: int64(st.Pages), PagesDone: int64(st.PagesDone),
	}
}

func precomputeState(st *precompute.RunState) adminv1.PrecomputeState {
	switch {
	case st.Finished():
		return adminv1.PrecomputeState_PRECOMPUTE_STATE_FINISHED
	case !st.ScanDone:
		return adminv1.PrecomputeState_PRECOMPUTE_STATE_SCANNING
	}
	return adminv1.PrecomputeState_PRECOMPUTE_STATE_COMPUTING
}
