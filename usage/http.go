package usage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
)

// Scopes the REST routes require (the management API's names).
const (
	ScopeRead  = "flag:read"
	ScopeWrite = "flag:write"
)

// HTTPConfig wires the REST routes to the management API's auth.
type HTTPConfig struct {
	// Authorize checks the request's key: it reaches team and holds scope
	// (admin.Service.AuthorizeHTTP).
	Authorize func(r *http.Request, team int64, scope string) error
	// WriteError writes an error in the management API's shape
	// (admin.WriteHTTPError).
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
}

// maxSettingsBody bounds PATCH .../feature_flag_usage/settings.
const maxSettingsBody = 4 << 10

// Routes returns the REST routes, for admin.ServerConfig.Routes (each
// with and without the trailing slash PostHog's clients add):
//
//	GET   /api/projects/{team}/feature_flags/{id}/usage   one flag's series (id or key; resolution, date_from, date_to)
//	GET   /api/projects/{team}/feature_flag_usage         every flag's totals over ?days= (default 7), status, last evaluated
//	GET   /api/projects/{team}/feature_flag_usage/findings stale flags and evaluation anomalies now
//	GET   /api/projects/{team}/feature_flag_usage/settings {"stale_after_days": N}
//	PATCH /api/projects/{team}/feature_flag_usage/settings the same body (flag:write)
func (s *Service) Routes(hc HTTPConfig) map[string]http.Handler {
	h := &handlers{s: s, hc: hc}
	out := map[string]http.Handler{}
	add := func(pattern string, fn http.HandlerFunc) {
		out[pattern] = fn
		out[pattern+"/{$}"] = fn
	}
	add("GET /api/projects/{team}/feature_flags/{id}/usage", h.flagUsage)
	add("GET /api/projects/{team}/feature_flag_usage", h.teamUsage)
	add("GET /api/projects/{team}/feature_flag_usage/findings", h.findings)
	add("GET /api/projects/{team}/feature_flag_usage/settings", h.getSettings)
	add("PATCH /api/projects/{team}/feature_flag_usage/settings", h.patchSettings)
	return out
}

type handlers struct {
	s  *Service
	hc HTTPConfig
}

// begin parses the team and authorizes; false when it answered.
func (h *handlers) begin(w http.ResponseWriter, r *http.Request, scope string) (int64, bool) {
	team, err := strconv.ParseInt(r.PathValue("team"), 10, 64)
	if err != nil || team <= 0 {
		h.hc.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "team_id", "team id must be a positive integer"))
		return 0, false
	}
	if err := h.hc.Authorize(r, team, scope); err != nil {
		h.hc.WriteError(w, r, err)
		return 0, false
	}
	return team, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// parseTime reads an RFC 3339 time, a date (2026-12-01), or PostHog's
// relative form (-7d, -24h, -30m) before now.
func parseTime(field, v string, now time.Time) (time.Time, error) {
	if len(v) > 64 {
		return time.Time{}, errRange(field, "%s: at most 64 bytes", field)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if len(v) >= 3 && v[0] == '-' {
		n, err := strconv.Atoi(v[1 : len(v)-1])
		if err == nil && n >= 0 && n <= 366*24*60 {
			unit := map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute}[v[len(v)-1]]
			if unit != 0 {
				return now.Add(-time.Duration(n) * unit), nil
			}
		}
	}
	return time.Time{}, errRange(field, "%s: an RFC 3339 time, a date, or -Nd / -Nh / -Nm", field)
}

// flagByRef finds a live flag by id, or by key when ref is not a number.
func flagByRef(recs []catalog.FlagRecord, ref string) (catalog.FlagRecord, bool) {
	id, idErr := strconv.ParseInt(ref, 10, 64)
	for _, rec := range recs {
		if rec.Flag.Deleted {
			continue
		}
		if (idErr == nil && rec.Flag.ID == id) || (idErr != nil && rec.Flag.Key == ref) {
			return rec, true
		}
	}
	return catalog.FlagRecord{}, false
}

func (h *handlers) flagUsage(w http.ResponseWriter, r *http.Request) {
	team, ok := h.begin(w, r, ScopeRead)
	if !ok {
		return
	}
	q := r.URL.Query()
	rep, err := h.s.FlagReport(r.Context(), team, r.PathValue("id"), q.Get("resolution"), q.Get("date_from"), q.Get("date_to"))
	if err != nil {
		h.hc.WriteError(w, r, err)
		return
	}
	writeJSON(w, rep)
}

// FlagRow is one flag of the team summary.
type FlagRow struct {
	ID              int64      `json:"id"`
	Key             string     `json:"key"`
	Status          Status     `json:"status"`
	LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
	Summary
	// StaleReason says why a STALE flag is (ReasonNotEvaluated, ...).
	StaleReason string `json:"stale_reason,omitempty"`
}

// TeamSummary is the team's usage over the last days.
type TeamSummary struct {
	Days           int       `json:"days"`
	StaleAfterDays int       `json:"stale_after_days"`
	Count          int       `json:"count"`
	Results        []FlagRow `json:"results"`
}

// MaxSummaryDays bounds ?days= of the team summary (the day retention).
const MaxSummaryDays = 90

// TeamUsage summarizes every live flag of a team over the last days
// (day rows), with status and last evaluation.
func (s *Service) TeamUsage(ctx context.Context, team int64, recs []catalog.FlagRecord, days int) (*TeamSummary, error) {
	now := s.cfg.Now()
	states, err := s.FlagStates(ctx, team, recs, now)
	if err != nil {
		return nil, err
	}
	n, err := s.StaleAfterDays(ctx, team)
	if err != nil {
		return nil, err
	}
	from := bucketStart('d', now.Add(-time.Duration(days-1)*24*time.Hour))
	to := now.Unix() + 1
	polls, err := s.buckets(ctx, team, "", 'd', from, to)
	if err != nil {
		return nil, err
	}
	var p Counts
	for _, c := range polls {
		p.Merge(c)
	}
	out := &TeamSummary{Days: days, StaleAfterDays: n, Results: []FlagRow{}}
	for _, rec := range recs {
		st, ok := states[rec.Flag.Key]
		if !ok {
			continue
		}
		bs, err := s.buckets(ctx, team, rec.Flag.Key, 'd', from, to)
		if err != nil {
			return nil, err
		}
		var c Counts
		for _, b := range bs {
			c.Merge(b)
		}
		row := FlagRow{ID: rec.Flag.ID, Key: rec.Flag.Key, Status: st.Status, LastEvaluatedAt: st.LastEvaluatedAt, Summary: summarize(&c, &p)}
		if st.Stale != nil {
			row.StaleReason = st.Stale.Reason
		}
		out.Results = append(out.Results, row)
	}
	out.Count = len(out.Results)
	return out, nil
}

func (h *handlers) teamUsage(w http.ResponseWriter, r *http.Request) {
	team, ok := h.begin(w, r, ScopeRead)
	if !ok {
		return
	}
	days := 7
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			h.hc.WriteError(w, r, errRange("days", "days must be 1..%d", MaxSummaryDays))
			return
		}
		days = n
	}
	sum, err := h.s.TeamReport(r.Context(), team, days)
	if err != nil {
		h.hc.WriteError(w, r, err)
		return
	}
	writeJSON(w, sum)
}

func (h *handlers) findings(w http.ResponseWriter, r *http.Request) {
	team, ok := h.begin(w, r, ScopeRead)
	if !ok {
		return
	}
	fs, err := h.s.Findings(r.Context(), team, h.s.cfg.Now())
	if err != nil {
		h.hc.WriteError(w, r, err)
		return
	}
	if fs == nil {
		fs = []Finding{}
	}
	writeJSON(w, map[string]any{"count": len(fs), "results": fs})
}

func (h *handlers) getSettings(w http.ResponseWriter, r *http.Request) {
	team, ok := h.begin(w, r, ScopeRead)
	if !ok {
		return
	}
	n, err := h.s.StaleAfterDays(r.Context(), team)
	if err != nil {
		h.hc.WriteError(w, r, err)
		return
	}
	writeJSON(w, teamSettings{StaleAfterDays: n})
}

func (h *handlers) patchSettings(w http.ResponseWriter, r *http.Request) {
	team, ok := h.begin(w, r, ScopeWrite)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSettingsBody+1))
	if err != nil || len(body) > maxSettingsBody {
		h.hc.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "body", "body: at most %d bytes of JSON", maxSettingsBody))
		return
	}
	var in struct {
		StaleAfterDays *int `json:"stale_after_days"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		h.hc.WriteError(w, r, errcode.Field(errcode.InvalidArgument, "body", "body: %v", err))
		return
	}
	if in.StaleAfterDays != nil {
		if err := h.s.SetStaleAfterDays(r.Context(), team, *in.StaleAfterDays); err != nil {
			h.hc.WriteError(w, r, err)
			return
		}
	}
	h.getSettings(w, r)
}
