package mcpsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/store"
)

// UsageSource is the flag usage statistics the usage tools and the
// findings job read: package usage's service, through an adapter in the
// wiring (cmd/vexil), since this front end depends on the management
// API's service layer only. Its answers are JSON-ready values; errors
// carry errcode codes (bounds name their field, as over REST).
type UsageSource interface {
	// FlagUsage is GET .../feature_flags/{key}/usage: resolution minute,
	// hour or day ("" hour), dateFrom/dateTo RFC 3339, a date or -Nd,
	// -Nh, -Nm ("" the last 24 hours).
	FlagUsage(ctx context.Context, team int64, key, resolution, dateFrom, dateTo string) (any, error)
	// TeamUsage is GET .../feature_flag_usage?days=.
	TeamUsage(ctx context.Context, team int64, days int) (any, error)
	// Findings are the team's stale flags and evaluation anomalies at
	// now, as inbox findings (ID set, for deduplication).
	Findings(ctx context.Context, team int64, now time.Time) ([]Finding, error)
	StaleAfterDays(ctx context.Context, team int64) (int, error)
	SetStaleAfterDays(ctx context.Context, team int64, days int) error
	// Now is the statistics' clock (usage_findings reads at it, as REST).
	Now() time.Time
}

type (
	usageFlagIn struct {
		TeamID     int64  `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Key        string `json:"key" jsonschema:"the flag's key"`
		Resolution string `json:"resolution,omitempty" jsonschema:"minute (kept 48 h), hour (31 days) or day (90 days); default hour"`
		DateFrom   string `json:"date_from,omitempty" jsonschema:"RFC 3339, a date, or -7d / -24h / -30m; default -24h"`
		DateTo     string `json:"date_to,omitempty" jsonschema:"the same forms; default now"`
	}
	usageSummaryIn struct {
		TeamID int64 `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		Days   int   `json:"days,omitempty" jsonschema:"1..90; default 7"`
	}
	staleSetIn struct {
		TeamID         int64 `json:"team_id,omitempty" jsonschema:"team id; default: the session's team"`
		StaleAfterDays int   `json:"stale_after_days" jsonschema:"1..365: a flag not evaluated (or unchanged at 100% or 0%) this many days is STALE"`
		DryRun         bool  `json:"dry_run,omitempty" jsonschema:"answer the change without saving"`
	}
)

// usageTeam authorizes a usage call as the REST routes do
// (admin.Service.AuthorizeHTTP): the key again, the team (not found when
// the key does not reach it), then scope.
func (c *call) usageTeam(ctx context.Context, id int64, scope string) (UsageSource, int64, error) {
	u := c.env.s.cfg.Usage
	if u == nil {
		return nil, 0, errcode.New(errcode.Unavailable, "usage statistics are off on this server")
	}
	caller, err := c.svc().Authenticate(ctx, c.auth)
	if err != nil {
		return nil, 0, err
	}
	team, err := c.team(id)
	if err != nil {
		return nil, 0, err
	}
	if !caller.Reaches(team) {
		return nil, 0, errcode.Field(errcode.NotFound, "team_id", "team not found")
	}
	if !caller.Has(scope) {
		return nil, 0, errcode.New(errcode.PermissionDenied, "the API key lacks the scope %q", scope)
	}
	return u, team, nil
}

func usageSpecs() []toolSpec {
	ro := func(t toolSpec) toolSpec { t.readOnly, t.idem = true, true; return t }
	return []toolSpec{
		ro(toolSpec{name: "usage_flag", feature: "usage", scope: admin.ScopeFlagRead,
			desc: "A flag's evaluations over a range at a resolution: totals and buckets (evaluations, by endpoint, values, unique users, errors), status and last evaluated.",
			add: handler(func(ctx context.Context, c *call, in usageFlagIn) (any, error) {
				u, team, err := c.usageTeam(ctx, in.TeamID, admin.ScopeFlagRead)
				if err != nil {
					return nil, err
				}
				if in.Key == "" {
					return nil, errcode.Field(errcode.InvalidArgument, "key", "key is required")
				}
				return u.FlagUsage(ctx, team, in.Key, in.Resolution, in.DateFrom, in.DateTo)
			})}),
		ro(toolSpec{name: "usage_summary", feature: "usage", scope: admin.ScopeFlagRead,
			desc: "Every live flag's evaluations over the last days, with status (ACTIVE, STALE, ARCHIVED), last evaluated and why a flag is stale.",
			add: handler(func(ctx context.Context, c *call, in usageSummaryIn) (any, error) {
				u, team, err := c.usageTeam(ctx, in.TeamID, admin.ScopeFlagRead)
				if err != nil {
					return nil, err
				}
				if in.Days == 0 {
					in.Days = 7
				}
				return u.TeamUsage(ctx, team, in.Days)
			})}),
		ro(toolSpec{name: "usage_findings", feature: "usage", scope: admin.ScopeFlagRead,
			desc: "Stale flags and evaluation anomalies now (the same findings reach signals_list once).",
			add: handler(func(ctx context.Context, c *call, in teamIn) (any, error) {
				u, team, err := c.usageTeam(ctx, in.TeamID, admin.ScopeFlagRead)
				if err != nil {
					return nil, err
				}
				fs, err := u.Findings(ctx, team, u.Now())
				if err != nil {
					return nil, err
				}
				if fs == nil {
					fs = []Finding{}
				}
				return map[string]any{"count": len(fs), "findings": fs}, nil
			})}),
		ro(toolSpec{name: "usage_settings_get", feature: "usage", scope: admin.ScopeFlagRead,
			desc: "The team's stale-flag setting: stale_after_days.",
			add: handler(func(ctx context.Context, c *call, in teamIn) (any, error) {
				u, team, err := c.usageTeam(ctx, in.TeamID, admin.ScopeFlagRead)
				if err != nil {
					return nil, err
				}
				n, err := u.StaleAfterDays(ctx, team)
				if err != nil {
					return nil, err
				}
				return map[string]any{"stale_after_days": n}, nil
			})}),
		{name: "usage_settings_set", feature: "usage", scope: admin.ScopeFlagWrite, idem: true,
			desc: "Set the team's stale_after_days (1..365). dry_run answers the change without saving.",
			add: handler(func(ctx context.Context, c *call, in staleSetIn) (any, error) {
				u, team, err := c.usageTeam(ctx, in.TeamID, admin.ScopeFlagWrite)
				if err != nil {
					return nil, err
				}
				if in.StaleAfterDays < 1 || in.StaleAfterDays > 365 {
					return nil, errcode.Field(errcode.InvalidArgument, "stale_after_days", "stale_after_days must be 1..365")
				}
				cur, err := u.StaleAfterDays(ctx, team)
				if err != nil {
					return nil, err
				}
				if in.DryRun {
					return dryRunAnswer{DryRun: true, Diff: Diff(map[string]any{"stale_after_days": float64(cur)},
						map[string]any{"stale_after_days": float64(in.StaleAfterDays)})}, nil
				}
				if err := u.SetStaleAfterDays(ctx, team, in.StaleAfterDays); err != nil {
					return nil, err
				}
				return map[string]any{"stale_after_days": in.StaleAfterDays}, nil
			})},
	}
}

// AppendOnce adds a finding unless one with the same ID was ever added
// to its team's inbox: the ID is kept in the store, so the check holds
// across restarts and between nodes running the same detector. Two nodes
// that check at once both publish, under the ID as JetStream message id,
// and JetStream keeps one (its deduplication spans two minutes, the store
// every run after). It reports whether the finding was added.
func (in *Inbox) AppendOnce(ctx context.Context, f Finding) (bool, error) {
	if f.ID == "" || len(f.ID) > store.MaxFindingIDBytes {
		return false, errcode.Field(errcode.InvalidArgument, "id", "AppendOnce needs an id of 1..%d bytes", store.MaxFindingIDBytes)
	}
	if store.ValidFindingID(f.ID) != nil {
		return false, errcode.Field(errcode.InvalidArgument, "id", "a finding id holds letters, digits, '-' and '_'")
	}
	if seen, err := in.st.HasFinding(ctx, f.Team, f.ID); err != nil || seen {
		return false, err
	}
	if err := in.Append(ctx, f); err != nil {
		return false, err
	}
	if err := in.st.PutFinding(ctx, f.Team, f.ID); err != nil {
		return false, err
	}
	return true, nil
}

// FindingsJob adds every team's usage findings (stale flags, evaluation
// anomalies) to the inbox, each once (AppendOnce). Every node may run it.
type FindingsJob struct {
	Inbox  *Inbox
	Source UsageSource
	// Teams lists the teams to look at (the catalog's).
	Teams func(ctx context.Context) ([]int64, error)
	// Now is the clock the findings are judged at; default time.Now.
	Now func() time.Time
	// Interval between runs; default DefaultFindingsInterval.
	Interval time.Duration
	Logger   *slog.Logger
}

// DefaultFindingsInterval: stale flags are a matter of days and anomalies
// of the last complete hour, so a few minutes late is on time.
const DefaultFindingsInterval = 5 * time.Minute

// Once looks at every team once and answers how many findings it added.
func (j *FindingsJob) Once(ctx context.Context) (int, error) {
	if j.Inbox == nil || j.Source == nil || j.Teams == nil {
		return 0, errors.New("mcpsvc: FindingsJob needs Inbox, Source and Teams")
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	teams, err := j.Teams(ctx)
	if err != nil {
		return 0, err
	}
	added := 0
	var errs []error
	for _, team := range teams {
		fs, err := j.Source.Findings(ctx, team, now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range fs {
			ok, err := j.Inbox.AppendOnce(ctx, f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				added++
			}
		}
	}
	return added, errors.Join(errs...)
}

// Run calls Once every Interval until ctx ends.
func (j *FindingsJob) Run(ctx context.Context) error {
	iv := j.Interval
	if iv <= 0 {
		iv = DefaultFindingsInterval
	}
	log := j.Logger
	if log == nil {
		log = discard()
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if n, err := j.Once(ctx); err != nil && ctx.Err() == nil {
			log.Warn("mcpsvc: usage findings", "err", err, "added", n)
		} else if n > 0 {
			log.Info("mcpsvc: usage findings added to the inbox", "added", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
