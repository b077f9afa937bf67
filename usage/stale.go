package usage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/store"
)

// Status is a flag's status in the flag list, as PostHog names it.
type Status string

// Statuses.
const (
	StatusActive   Status = "ACTIVE"
	StatusStale    Status = "STALE"
	StatusArchived Status = "ARCHIVED"
)

// Finding kinds: a stale flag and the three evaluation anomalies.
const (
	KindStale        = "stale_flag"
	KindRateShift    = "evaluation_rate_shift"
	KindVariantShift = "variant_split_shift"
	KindErrorSpike   = "error_rate_spike"
)

// Stale reasons.
const (
	ReasonNotEvaluated   = "not_evaluated"    // no evaluation for N days
	ReasonFullyRolledOut = "fully_rolled_out" // 100% to everyone, unchanged for N days
	ReasonRolledBack     = "rolled_back"      // off or 0% for everyone, unchanged for N days
)

// Finding is something about a flag an agent should be told: the MCP
// server's signals inbox takes them (one signal per Kind, Flag and
// Reason while it holds).
type Finding struct {
	Kind    string `json:"kind"`
	Team    int64  `json:"team_id"`
	FlagID  int64  `json:"flag_id"`
	Flag    string `json:"flag_key"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
	// Since is when the condition began (last evaluation, last change,
	// or the anomalous hour's start).
	Since time.Time `json:"since"`
	// Details holds the rule's figures (counts, rates, shares).
	Details map[string]float64 `json:"details,omitempty"`
}

// FlagState is what the flag list shows of a flag's usage.
type FlagState struct {
	Status          Status
	LastEvaluatedAt *time.Time
	// Stale is the stale finding when Status is STALE.
	Stale *Finding
}

// StaleRule decides whether one flag is stale at now, given when it was
// last evaluated (zero: never, within the retention) and the team's N.
// A flag is stale when it is live (not archived or deleted), older than N
// days, and either
//   - nothing evaluated it for N days: no remote evaluation on any node
//     and no local one a client reported (Recorder.Reported; last is the
//     last of either), or
//   - its answer no longer depends on anyone: fully rolled out (a
//     condition with no property filter at 100%, and no variants or one at
//     100%) or rolled back (disabled, or every condition at 0%), and it
//     has not changed for N days.
func StaleRule(rec catalog.FlagRecord, last time.Time, days int, now time.Time) *Finding {
	f := rec.Flag
	if rec.Archived || f.Deleted {
		return nil
	}
	n := time.Duration(days) * 24 * time.Hour
	cutoff := now.Add(-n)
	if !rec.CreatedAt.Before(cutoff) {
		return nil
	}
	base := Finding{Kind: KindStale, Team: f.TeamID, FlagID: f.ID, Flag: f.Key, Details: map[string]float64{"stale_after_days": float64(days)}}
	if rolled := rollout(f); rolled != "" && rec.UpdatedAt.Before(cutoff) {
		base.Reason, base.Since = rolled, rec.UpdatedAt
		what := "at 100% for everyone"
		if rolled == ReasonRolledBack {
			what = "off for everyone"
		}
		base.Message = fmt.Sprintf("flag %q has been %s and unchanged for %d days: remove it from the code and archive it", f.Key, what, int(now.Sub(rec.UpdatedAt).Hours()/24))
		return &base
	}
	if last.Before(cutoff) {
		base.Reason = ReasonNotEvaluated
		if last.IsZero() {
			base.Since = rec.CreatedAt
			base.Message = fmt.Sprintf("flag %q has not been evaluated in %d days: archive it if no code reads it", f.Key, days)
		} else {
			base.Since = last
			base.Message = fmt.Sprintf("flag %q was last evaluated %s, over %d days ago: archive it if no code reads it", f.Key, last.UTC().Format(time.RFC3339), days)
		}
		return &base
	}
	return nil
}

// rollout says whether the flag's answer is the same for everyone:
// ReasonFullyRolledOut, ReasonRolledBack or "".
func rollout(f flags.Flag) string {
	if !f.Active {
		return ReasonRolledBack
	}
	allZero := len(f.Filters.Groups) > 0
	for _, c := range f.Filters.Groups {
		pct := 100.0
		if c.RolloutPercentage != nil {
			pct = *c.RolloutPercentage
		}
		if pct > 0 {
			allZero = false
		}
		if pct >= 100 && len(c.Properties) == 0 && singleVariant(f, c) {
			return ReasonFullyRolledOut
		}
	}
	if allZero {
		return ReasonRolledBack
	}
	return ""
}

// singleVariant: the condition gives one value (no variants, a variant
// override, or one variant at 100%).
func singleVariant(f flags.Flag, c flags.Condition) bool {
	mv := f.Filters.Multivariate
	if mv == nil || len(mv.Variants) == 0 || c.Variant != nil {
		return true
	}
	for _, v := range mv.Variants {
		if v.RolloutPercentage >= 100 {
			return true
		}
	}
	return false
}

// FlagStates returns the status and last evaluation of each of a team's
// flags (archived ones ARCHIVED), by key, at now.
func (s *Service) FlagStates(ctx context.Context, team int64, recs []catalog.FlagRecord, now time.Time) (map[string]FlagState, error) {
	days, err := s.StaleAfterDays(ctx, team)
	if err != nil {
		return nil, err
	}
	out := make(map[string]FlagState, len(recs))
	for _, rec := range recs {
		if rec.Flag.Deleted {
			continue
		}
		last, ok, err := s.LastEvaluated(ctx, team, rec.Flag.Key)
		if err != nil {
			return nil, err
		}
		st := FlagState{Status: StatusActive}
		if ok {
			st.LastEvaluatedAt = &last
		}
		switch {
		case rec.Archived:
			st.Status = StatusArchived
		default:
			if f := StaleRule(rec, last, days, now); f != nil {
				st.Status, st.Stale = StatusStale, f
			}
		}
		out[rec.Flag.Key] = st
	}
	return out, nil
}

// Findings returns what an agent should be told about a team's flags at
// now: every stale flag (StaleRule) and every evaluation anomaly of the
// last complete hour against the 24 before it (AnomalyRule), sorted by
// flag key then kind. The MCP server's signals inbox polls it.
func (s *Service) Findings(ctx context.Context, team int64, now time.Time) ([]Finding, error) {
	recs, err := s.listFlags(ctx, team)
	if err != nil {
		return nil, err
	}
	states, err := s.FlagStates(ctx, team, recs, now)
	if err != nil {
		return nil, err
	}
	var out []Finding
	hour := time.Unix(bucketStart(store.UsageHour, now), 0).Add(-time.Hour) // the last complete hour
	for _, rec := range recs {
		st, ok := states[rec.Flag.Key]
		if !ok || st.Status == StatusArchived {
			continue
		}
		if st.Stale != nil {
			out = append(out, *st.Stale)
		}
		hours, err := s.buckets(ctx, team, rec.Flag.Key, store.UsageHour, hour.Add(-BaselineHours*time.Hour).Unix(), hour.Add(time.Hour).Unix())
		if err != nil {
			return nil, err
		}
		cur := hours[hour.Unix()]
		if cur == nil {
			cur = &Counts{}
		}
		base := make([]*Counts, 0, BaselineHours)
		for h := range BaselineHours {
			c := hours[hour.Add(-time.Duration(BaselineHours-h)*time.Hour).Unix()]
			if c == nil {
				c = &Counts{}
			}
			base = append(base, c)
		}
		for _, f := range AnomalyRule(cur, base) {
			f.Team, f.FlagID, f.Flag, f.Since = team, rec.Flag.ID, rec.Flag.Key, hour.UTC()
			f.Message = fmt.Sprintf("flag %q: %s", rec.Flag.Key, f.Message)
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := strings.Compare(a.Flag, b.Flag); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return out, nil
}
