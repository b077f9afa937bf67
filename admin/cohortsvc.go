package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

func cohortKind(k adminv1.CohortKind) (string, error) {
	switch k {
	case adminv1.CohortKind_COHORT_KIND_STATIC:
		return flags.CohortStatic, nil
	case adminv1.CohortKind_COHORT_KIND_PROPERTY:
		return flags.CohortDynamic, nil
	case adminv1.CohortKind_COHORT_KIND_BEHAVIORAL:
		return flags.CohortBehavioral, nil
	}
	return "", errcode.Field(errcode.InvalidArgument, "cohort.kind", "kind is COHORT_KIND_STATIC, COHORT_KIND_PROPERTY or COHORT_KIND_BEHAVIORAL")
}

func cohortKindProto(k string) adminv1.CohortKind {
	switch k {
	case flags.CohortStatic:
		return adminv1.CohortKind_COHORT_KIND_STATIC
	case flags.CohortBehavioral:
		return adminv1.CohortKind_COHORT_KIND_BEHAVIORAL
	}
	return adminv1.CohortKind_COHORT_KIND_PROPERTY
}

func cohortProto(r catalog.CohortRecord) *adminv1.Cohort {
	c := &adminv1.Cohort{
		Id: r.Cohort.ID, TeamId: r.Cohort.TeamID, Name: r.Cohort.Name, Description: r.Description,
		Kind: cohortKindProto(r.Cohort.Kind), Version: r.Cohort.Version, Deleted: r.Deleted,
		CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt), IsStatic: r.Cohort.Kind == flags.CohortStatic,
	}
	if r.Cohort.Kind != flags.CohortStatic {
		c.Filters = toStruct(map[string]any{"properties": r.Cohort.Filters})
	}
	return c
}

// cohortGroup returns the property group of PostHog's cohort filters
// ({"properties": group}), or the filters themselves when they are a bare
// group; "" when there is none.
func cohortGroup(s *structpb.Struct) (string, error) {
	if s == nil || len(s.GetFields()) == 0 {
		return "", nil
	}
	if p, ok := s.GetFields()["properties"]; ok {
		if p.GetStructValue() == nil {
			return "", fmt.Errorf("filters.properties is a property group {\"type\":\"AND\",\"values\":[...]}")
		}
		if len(p.GetStructValue().GetFields()) == 0 {
			return "", nil
		}
		return messageJSON(p.GetStructValue())
	}
	return messageJSON(s)
}

// hasBehavioral reports whether a property group holds a filter of type
// "behavioral" at any depth.
func hasBehavioral(g map[string]any) bool {
	vals, _ := g["values"].([]any)
	for _, v := range vals {
		m, _ := v.(map[string]any)
		if _, isGroup := m["values"]; isGroup {
			if hasBehavioral(m) {
				return true
			}
		} else if m["type"] == "behavioral" {
			return true
		}
	}
	return false
}

// behavioralValues are the event-based filter values a behavioural cohort
// accepts (PostHog's names).
var behavioralValues = []string{"performed_event", "performed_event_multiple", "performed_event_first_time",
	"performed_event_regularly", "stopped_performing_event", "restarted_performing_event"}

var timeIntervals = []string{"minute", "hour", "day", "week", "month", "year"}

// cohortFromInput builds a cohort from the editable fields.
func cohortFromInput(in *adminv1.CohortInput) (flags.Cohort, error) {
	if in == nil {
		return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort", "the cohort is required")
	}
	if in.GetName() == "" || len(in.GetName()) > 400 || len(in.GetDescription()) > 10000 {
		return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.name", "name is required, at most 400 bytes (description at most 10000)")
	}
	group, err := cohortGroup(in.GetFilters())
	if err != nil {
		return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters.properties", "%v", err)
	}
	var raw map[string]any
	if group != "" {
		if err := decodeJSON(group, &raw); err != nil {
			return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters", "filters is not a property group: %v", err)
		}
	}
	var kind string
	switch {
	case in.GetKind() != adminv1.CohortKind_COHORT_KIND_UNSPECIFIED:
		if kind, err = cohortKind(in.GetKind()); err != nil {
			return flags.Cohort{}, err
		}
		if in.GetIsStatic() && kind != flags.CohortStatic {
			return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.is_static", "is_static contradicts kind")
		}
	case in.GetIsStatic():
		kind = flags.CohortStatic
	case raw != nil && hasBehavioral(raw):
		kind = flags.CohortBehavioral
	default:
		kind = flags.CohortDynamic
	}
	c := flags.Cohort{Name: in.GetName(), Kind: kind}
	if kind == flags.CohortStatic {
		// PostHog's static cohorts carry empty filters; anything more is a
		// mistake.
		if vals, _ := raw["values"].([]any); len(vals) > 0 {
			return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters", "a static cohort has no filters: add members")
		}
		return c, nil
	}
	if raw == nil {
		return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters", "filters is required: {\"properties\": {\"type\":\"AND\",\"values\":[...]}}")
	}
	if err := decodeJSON(group, &c.Filters); err != nil {
		return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters", "filters is not a property group: %v", err)
	}
	if kind == flags.CohortBehavioral {
		n, err := checkBehavioral(raw, "cohort.filters.properties")
		if err != nil {
			return flags.Cohort{}, err
		}
		if n == 0 {
			return flags.Cohort{}, errcode.Field(errcode.InvalidArgument, "cohort.filters", "a behavioral cohort needs at least one filter of type \"behavioral\"")
		}
	}
	return c, nil
}

// checkBehavioral validates the behavioural leaves of a property group and
// returns how many there are.
func checkBehavioral(g map[string]any, path string) (int, error) {
	vals, ok := g["values"].([]any)
	if !ok {
		return 0, errcode.Field(errcode.InvalidArgument, path+".values", "values is a list")
	}
	n := 0
	for i, v := range vals {
		p := fmt.Sprintf("%s.values[%d]", path, i)
		m, ok := v.(map[string]any)
		if !ok {
			return 0, errcode.Field(errcode.InvalidArgument, p, "an entry is an object")
		}
		if _, isGroup := m["values"]; isGroup {
			k, err := checkBehavioral(m, p)
			if err != nil {
				return 0, err
			}
			n += k
			continue
		}
		if m["type"] != "behavioral" {
			continue
		}
		n++
		if key, _ := m["key"].(string); key == "" {
			return 0, errcode.Field(errcode.InvalidArgument, p+".key", "key is the event name")
		}
		if val, _ := m["value"].(string); !slices.Contains(behavioralValues, val) {
			return 0, errcode.Field(errcode.InvalidArgument, p+".value", "value is one of %s", strings.Join(behavioralValues, ", "))
		}
		if tv, ok := m["time_value"]; ok {
			if n, err := strconv.ParseInt(fmt.Sprint(tv), 10, 64); err != nil || n <= 0 {
				return 0, errcode.Field(errcode.InvalidArgument, p+".time_value", "time_value is a positive integer")
			}
		}
		if ti, ok := m["time_interval"]; ok {
			if s, _ := ti.(string); !slices.Contains(timeIntervals, s) {
				return 0, errcode.Field(errcode.InvalidArgument, p+".time_interval", "time_interval is one of %s", strings.Join(timeIntervals, ", "))
			}
		}
		if ov, ok := m["operator_value"]; ok {
			if n, err := strconv.ParseInt(fmt.Sprint(ov), 10, 64); err != nil || n < 0 {
				return 0, errcode.Field(errcode.InvalidArgument, p+".operator_value", "operator_value is a non-negative integer")
			}
		}
	}
	return n, nil
}

// validateCohort compiles the team's definitions with c in place (a probe
// flag references it, so that it is compiled even when nothing uses it).
// It returns the warnings and how each filter runs (filterReport).
func (s *Service) validateCohort(ctx context.Context, c flags.Cohort) ([]*adminv1.Warning, []*adminv1.CohortFilterReport, error) {
	snap, err := s.cat.Snapshot(ctx, c.TeamID)
	if err != nil {
		return nil, nil, err
	}
	defs := snap.Definitions
	id := c.ID
	if id == 0 {
		id = -1
		for _, o := range defs.Cohorts {
			id = min(id, o.ID-1)
		}
	}
	c.ID = id
	defs.Cohorts = slices.DeleteFunc(slices.Clone(defs.Cohorts), func(o flags.Cohort) bool { return o.ID == id })
	defs.Cohorts = append(defs.Cohorts, c)
	probe := flags.Flag{Key: "vexil-cohort-probe", Active: true, Filters: flags.Filters{Groups: []flags.Condition{{
		Properties: []flags.PropertyFilter{{Key: "id", Type: "cohort", Value: []byte(strconv.FormatInt(id, 10))}},
	}}}}
	defs.Flags = append(slices.Clone(defs.Flags), probe)
	_, err = flags.Compile(defs)
	var ves flags.ValidationErrors
	errors.As(err, &ves)
	var own []*flags.ValidationError
	for _, ve := range ves {
		if ve.Flag == "" && ve.Cohort == id {
			own = append(own, ve)
		}
	}
	warns, e := judge(own, func(p string) string { return cohortField(p) })
	if e != nil {
		return nil, nil, e
	}
	return warns, filterReport(&c.Filters, own, cohortField), nil
}

// cohortField maps an engine path inside a cohort's property group to the
// request's field (PostHog's shape: cohort.filters.properties...).
func cohortField(p string) string {
	if rest, ok := strings.CutPrefix(p, "filters"); ok {
		return "cohort.filters.properties" + rest
	}
	return "cohort." + p
}

func (s *Service) getCohort(ctx context.Context, team, id int64) (catalog.CohortRecord, error) {
	r, err := s.cat.GetCohort(ctx, team, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && (r.Deleted || r.Cohort.TeamID != team)) {
		return catalog.CohortRecord{}, errcode.Field(errcode.NotFound, "cohort_id", "cohort not found")
	}
	return r, err
}

// CreateCohort creates a cohort.
func (s *Service) CreateCohort(ctx context.Context, req *adminv1.CreateCohortRequest) (*adminv1.CreateCohortResponse, error) {
	p := callerOf(ctx)
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	c, err := cohortFromInput(req.GetCohort())
	if err != nil {
		return nil, err
	}
	c.TeamID = req.GetTeamId()
	warns, report, err := s.validateCohort(ctx, c)
	if err != nil {
		return nil, err
	}
	rec := catalog.CohortRecord{Cohort: c, Description: req.GetCohort().GetDescription(), CreatedBy: p.key.ID, UpdatedBy: p.key.ID}
	diff := jsonDiff(nil, rec.Cohort)
	r, err := s.cat.CreateCohort(ctx, rec, catalog.Change{Actor: p.key.ID, Diff: diff})
	if err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: c.TeamID, Kind: changes.KindCohort, ID: strconv.FormatInt(r.Cohort.ID, 10),
		Version: r.Cohort.Version, Op: "created"}, p.key.ID, diff)
	cp := cohortProto(r)
	cp.Warnings, cp.FilterReport = warns, report
	return &adminv1.CreateCohortResponse{Cohort: cp}, nil
}

// GetCohort returns a cohort.
func (s *Service) GetCohort(ctx context.Context, req *adminv1.GetCohortRequest) (*adminv1.GetCohortResponse, error) {
	r, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetCohortResponse{Cohort: s.withBackfill(ctx, cohortProto(r))}, nil
}

// ListCohorts lists a team's live cohorts by id.
func (s *Service) ListCohorts(ctx context.Context, req *adminv1.ListCohortsRequest) (*adminv1.ListCohortsResponse, error) {
	size, err := s.pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	all, err := s.cat.ListCohorts(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(r catalog.CohortRecord) bool { return r.Deleted || r.Cohort.TeamID != req.GetTeamId() })
	page, next, err := offsetPage(all, size, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &adminv1.ListCohortsResponse{NextPageToken: next}
	for _, r := range page {
		out.Results = append(out.Results, s.withBackfill(ctx, cohortProto(r)))
	}
	out.Count = int32(len(all))
	return out, nil
}

func (s *Service) saveCohort(ctx context.Context, before, r catalog.CohortRecord, action string) (catalog.CohortRecord, error) {
	p := callerOf(ctx)
	type view struct {
		flags.Cohort
		Description string `json:"description,omitempty"`
		Deleted     bool   `json:"deleted,omitempty"`
	}
	diff := jsonDiff(view{before.Cohort, before.Description, before.Deleted}, view{r.Cohort, r.Description, r.Deleted})
	r.UpdatedBy = p.key.ID
	out, err := s.cat.UpdateCohort(ctx, r, catalog.Change{Actor: p.key.ID, Action: action, Diff: diff})
	if errors.Is(err, catalog.ErrConflict) {
		cur, gerr := s.cat.GetCohort(ctx, r.Cohort.TeamID, r.Cohort.ID)
		if gerr != nil {
			return catalog.CohortRecord{}, gerr
		}
		return catalog.CohortRecord{}, conflict(r.Cohort.Version, cur.Cohort.Version)
	}
	if err != nil {
		return catalog.CohortRecord{}, err
	}
	s.announce(ctx, changes.Notice{Team: r.Cohort.TeamID, Kind: changes.KindCohort, ID: strconv.FormatInt(r.Cohort.ID, 10),
		Version: out.Cohort.Version, Op: action}, p.key.ID, diff)
	return out, nil
}

// UpdateCohort replaces a cohort's definition.
func (s *Service) UpdateCohort(ctx context.Context, req *adminv1.UpdateCohortRequest) (*adminv1.UpdateCohortResponse, error) {
	c, err := cohortFromInput(req.GetCohort())
	if err != nil {
		return nil, err
	}
	r, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId())
	if err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), r.Cohort.Version); err != nil {
		return nil, err
	}
	if (r.Cohort.Kind == flags.CohortStatic) != (c.Kind == flags.CohortStatic) {
		return nil, errcode.Field(errcode.InvalidArgument, "cohort.kind", "a static cohort stays static, and the others never become static")
	}
	before := r
	c.ID, c.TeamID, c.Version = r.Cohort.ID, r.Cohort.TeamID, r.Cohort.Version
	r.Cohort, r.Description = c, req.GetCohort().GetDescription()
	warns, report, err := s.validateCohort(ctx, c)
	if err != nil {
		return nil, err
	}
	out, err := s.saveCohort(ctx, before, r, "updated")
	if err != nil {
		return nil, err
	}
	cp := cohortProto(out)
	cp.Warnings, cp.FilterReport = warns, report
	return &adminv1.UpdateCohortResponse{Cohort: cp}, nil
}

// DeleteCohort soft-deletes a cohort no live flag or cohort uses.
func (s *Service) DeleteCohort(ctx context.Context, req *adminv1.DeleteCohortRequest) (*adminv1.DeleteCohortResponse, error) {
	r, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId())
	if err != nil {
		return nil, err
	}
	if err := expectVersion(versionOf(ctx, req.GetVersion()), r.Cohort.Version); err != nil {
		return nil, err
	}
	snap, err := s.cat.Snapshot(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	set, _ := flags.Compile(snap.Definitions)
	var users []string
	for _, f := range snap.Definitions.Flags {
		if info, ok := set.Info(f.Key); ok && slices.Contains(info.Cohorts, r.Cohort.ID) {
			users = append(users, f.Key)
		}
	}
	if len(users) > 0 {
		return nil, errcode.Field(errcode.HasDependents, "cohort_id", "flags use the cohort: %s", strings.Join(users, ", ")).
			With("dependents", strings.Join(users, ","))
	}
	before := r
	r.Deleted = true
	out, err := s.saveCohort(ctx, before, r, "deleted")
	if err != nil {
		return nil, err
	}
	return &adminv1.DeleteCohortResponse{Cohort: cohortProto(out)}, nil
}

func (s *Service) memberCall(ctx context.Context, team, id int64, ids []string) (catalog.CohortRecord, error) {
	if len(ids) == 0 {
		return catalog.CohortRecord{}, errcode.Field(errcode.InvalidArgument, "distinct_ids", "distinct_ids is required")
	}
	if len(ids) > s.cfg.Limits.MaxMembers {
		return catalog.CohortRecord{}, errcode.Field(errcode.LimitExceeded, "distinct_ids", "%d distinct_ids: at most %d per call",
			len(ids), s.cfg.Limits.MaxMembers).With("limit", strconv.Itoa(s.cfg.Limits.MaxMembers))
	}
	for i, d := range ids {
		if d == "" || len(d) > 400 {
			return catalog.CohortRecord{}, errcode.Field(errcode.InvalidArgument, fmt.Sprintf("distinct_ids[%d]", i), "a distinct_id is 1..400 bytes")
		}
	}
	r, err := s.getCohort(ctx, team, id)
	if err != nil {
		return catalog.CohortRecord{}, err
	}
	if r.Cohort.Kind != flags.CohortStatic {
		return catalog.CohortRecord{}, errcode.Field(errcode.FailedPrecondition, "cohort_id", "only a static cohort has listed members")
	}
	return r, nil
}

// AddCohortMembers adds distinct_ids to a static cohort.
func (s *Service) AddCohortMembers(ctx context.Context, req *adminv1.AddCohortMembersRequest) (*adminv1.AddCohortMembersResponse, error) {
	p := callerOf(ctx)
	r, err := s.memberCall(ctx, req.GetTeamId(), req.GetCohortId(), req.GetDistinctIds())
	if err != nil {
		return nil, err
	}
	ids := slices.Compact(slices.Sorted(slices.Values(req.GetDistinctIds())))
	diff := jsonDiff(nil, map[string]any{"members_added": ids})
	if err := s.cat.AddCohortMembers(ctx, req.GetTeamId(), req.GetCohortId(), ids, catalog.Change{Actor: p.key.ID, Diff: diff}); err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: req.GetTeamId(), Kind: changes.KindCohort, ID: strconv.FormatInt(req.GetCohortId(), 10),
		Version: r.Cohort.Version, Op: "members_added"}, p.key.ID, diff)
	return &adminv1.AddCohortMembersResponse{Added: int32(len(ids))}, nil
}

// RemoveCohortMembers removes distinct_ids from a static cohort.
func (s *Service) RemoveCohortMembers(ctx context.Context, req *adminv1.RemoveCohortMembersRequest) (*adminv1.RemoveCohortMembersResponse, error) {
	p := callerOf(ctx)
	r, err := s.memberCall(ctx, req.GetTeamId(), req.GetCohortId(), req.GetDistinctIds())
	if err != nil {
		return nil, err
	}
	ids := slices.Compact(slices.Sorted(slices.Values(req.GetDistinctIds())))
	diff := jsonDiff(nil, map[string]any{"members_removed": ids})
	if err := s.cat.RemoveCohortMembers(ctx, req.GetTeamId(), req.GetCohortId(), ids, catalog.Change{Actor: p.key.ID, Diff: diff}); err != nil {
		return nil, err
	}
	s.announce(ctx, changes.Notice{Team: req.GetTeamId(), Kind: changes.KindCohort, ID: strconv.FormatInt(req.GetCohortId(), 10),
		Version: r.Cohort.Version, Op: "members_removed"}, p.key.ID, diff)
	return &adminv1.RemoveCohortMembersResponse{Removed: int32(len(ids))}, nil
}

// ListCohortMembers pages through a static cohort's members.
func (s *Service) ListCohortMembers(ctx context.Context, req *adminv1.ListCohortMembersRequest) (*adminv1.ListCohortMembersResponse, error) {
	size, err := s.pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if _, err := s.getCohort(ctx, req.GetTeamId(), req.GetCohortId()); err != nil {
		return nil, err
	}
	ids, next, err := s.cat.ListCohortMembers(ctx, req.GetTeamId(), req.GetCohortId(), catalog.Page{Limit: size, Cursor: req.GetPageToken()})
	if errors.Is(err, catalog.ErrInvalid) {
		return nil, errcode.Field(errcode.InvalidArgument, "page_token", "invalid page_token")
	}
	if err != nil {
		return nil, err
	}
	return &adminv1.ListCohortMembersResponse{DistinctIds: ids, NextPageToken: next}, nil
}
