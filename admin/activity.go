package admin

import (
	"context"
	"errors"
	"strconv"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

var activityScopes = map[string]catalog.Scope{
	"team": catalog.ScopeTeam, "key": catalog.ScopeKey, "flag": catalog.ScopeFlag,
	"cohort": catalog.ScopeCohort, "early_access": catalog.ScopeEarlyAccess,
}

func entryProto(e catalog.ActivityEntry) *adminv1.ActivityEntry {
	return &adminv1.ActivityEntry{
		Id: e.ID, TeamId: e.TeamID, At: ts(e.At), Actor: e.Actor, Scope: string(e.Scope), ItemId: e.ItemID,
		Action: e.Action, Before: rawValue(e.Before), After: rawValue(e.After), Diff: rawValue(e.Diff),
	}
}

// activity reads one page of entries. A scope without an item is
// filtered here, page by page: such a page may hold fewer entries than
// asked (even none) while next_page_token is set.
func (s *Service) activity(ctx context.Context, q catalog.ActivityQuery, size int32) ([]*adminv1.ActivityEntry, string, error) {
	n, err := s.pageSize(size)
	if err != nil {
		return nil, "", err
	}
	q.Limit = n
	scope := q.Scope
	if q.ItemID == "" {
		q.Scope = ""
	}
	entries, next, err := s.cat.ListActivity(ctx, q)
	if errors.Is(err, catalog.ErrInvalid) {
		return nil, "", errcode.Field(errcode.InvalidArgument, "page_token", "invalid page_token")
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]*adminv1.ActivityEntry, 0, len(entries))
	for _, e := range entries {
		if e.TeamID == q.TeamID && (scope == "" || e.Scope == scope) {
			out = append(out, entryProto(e))
		}
	}
	return out, next, nil
}

// ListActivity lists a team's activity, newest first.
func (s *Service) ListActivity(ctx context.Context, req *adminv1.ListActivityRequest) (*adminv1.ListActivityResponse, error) {
	q := catalog.ActivityQuery{TeamID: req.GetTeamId(), Page: catalog.Page{Cursor: req.GetPageToken()}}
	if req.GetScope() != "" {
		sc, ok := activityScopes[req.GetScope()]
		if !ok {
			return nil, errcode.Field(errcode.InvalidArgument, "scope", "scope is team, key, flag, cohort or early_access")
		}
		q.Scope = sc
		q.ItemID = req.GetItemId()
	} else if req.GetItemId() != "" {
		return nil, errcode.Field(errcode.InvalidArgument, "item_id", "item_id needs a scope")
	}
	if len(q.ItemID) > 100 {
		return nil, errcode.Field(errcode.InvalidArgument, "item_id", "item_id is at most 100 bytes")
	}
	if _, err := s.getTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	entries, next, err := s.activity(ctx, q, req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &adminv1.ListActivityResponse{Entries: entries, NextPageToken: next}, nil
}

// ListFlagActivity lists one flag's activity (deleted flags included).
func (s *Service) ListFlagActivity(ctx context.Context, req *adminv1.ListFlagActivityRequest) (*adminv1.ListFlagActivityResponse, error) {
	r, err := s.cat.GetFlag(ctx, req.GetTeamId(), req.GetFlagId())
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && r.Flag.TeamID != req.GetTeamId()) {
		return nil, errFlagNotFound()
	}
	if err != nil {
		return nil, err
	}
	entries, next, err := s.activity(ctx, catalog.ActivityQuery{TeamID: req.GetTeamId(), Scope: catalog.ScopeFlag,
		ItemID: strconv.FormatInt(req.GetFlagId(), 10), Page: catalog.Page{Cursor: req.GetPageToken()}}, req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &adminv1.ListFlagActivityResponse{Entries: entries, NextPageToken: next}, nil
}
