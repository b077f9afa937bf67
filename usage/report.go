package usage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
)

// The answers the REST routes and the MCP tools share: both front ends
// call these, so a flag's usage reads the same (bounds, defaults, errors)
// whichever way an agent or a person asks.

// FlagReport is one flag's series with its id and status (GET
// .../feature_flags/{id}/usage).
type FlagReport struct {
	FlagID int64  `json:"flag_id"`
	Status Status `json:"status"`
	*Series
}

// listFlags lists a team's flags; a team that does not exist is not
// found, naming team_id.
func (s *Service) listFlags(ctx context.Context, team int64) ([]catalog.FlagRecord, error) {
	recs, err := s.cfg.Flags.ListFlags(ctx, team)
	if errors.Is(err, catalog.ErrNotFound) {
		err = errcode.Field(errcode.NotFound, "team_id", "team not found")
	}
	return recs, err
}

// FlagReport answers a live flag's usage, the flag named by id or key
// (ref), at resolution ("" hour) over [dateFrom, dateTo) given as RFC
// 3339, a date or -Nd / -Nh / -Nm ("": the last 24 hours, now).
func (s *Service) FlagReport(ctx context.Context, team int64, ref, resolution, dateFrom, dateTo string) (*FlagReport, error) {
	if len(ref) > 400 {
		return nil, errcode.Field(errcode.InvalidArgument, "id", "id: at most 400 bytes")
	}
	recs, err := s.listFlags(ctx, team)
	if err != nil {
		return nil, err
	}
	rec, found := flagByRef(recs, ref)
	if !found {
		return nil, errcode.Field(errcode.NotFound, "id", "flag not found")
	}
	now := s.cfg.Now()
	res := Resolution(strings.ToLower(resolution))
	if res == "" {
		res = Hour
	}
	from, to := now.Add(-24*time.Hour), now
	if dateFrom != "" {
		if from, err = parseTime("date_from", dateFrom, now); err != nil {
			return nil, err
		}
	}
	if dateTo != "" {
		if to, err = parseTime("date_to", dateTo, now); err != nil {
			return nil, err
		}
	}
	series, err := s.FlagUsage(ctx, team, rec.Flag.Key, res, from, to)
	if err != nil {
		return nil, err
	}
	states, err := s.FlagStates(ctx, team, []catalog.FlagRecord{rec}, now)
	if err != nil {
		return nil, err
	}
	return &FlagReport{FlagID: rec.Flag.ID, Status: states[rec.Flag.Key].Status, Series: series}, nil
}

// TeamReport answers the usage of every live flag of a team over the
// last days (1..MaxSummaryDays).
func (s *Service) TeamReport(ctx context.Context, team int64, days int) (*TeamSummary, error) {
	if days < 1 || days > MaxSummaryDays {
		return nil, errRange("days", "days must be 1..%d", MaxSummaryDays)
	}
	recs, err := s.listFlags(ctx, team)
	if err != nil {
		return nil, err
	}
	return s.TeamUsage(ctx, team, recs, days)
}

// ID names the finding for deduplication: the same kind, team, flag,
// reason and start are the same finding however often a detector sees
// it (a stale flag stays one signal until it changes).
func (f Finding) ID() string {
	h := sha256.Sum256([]byte(f.Kind + "\x00" + strconv.FormatInt(f.Team, 10) + "\x00" + f.Flag + "\x00" +
		f.Reason + "\x00" + strconv.FormatInt(f.Since.Unix(), 10)))
	return hex.EncodeToString(h[:16])
}
