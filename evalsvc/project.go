package evalsvc

import (
	"context"
	"maps"
)

// Project is what a project token resolves to for the capture endpoints:
// the team and its group type names by index.
type Project struct {
	Team       int64
	GroupTypes map[int]string
}

// ProjectForToken resolves a project token through the same key cache and
// HyperCache entry /flags uses (so a revoked token stops at once on every
// node). It fails as /flags does: an *errcode.Error with PostHog's code
// (invalid_token, catalog_unavailable...).
func (s *Service) ProjectForToken(ctx context.Context, token string) (Project, error) {
	ts, err := s.requestTeam(ctx, token)
	if err != nil {
		return Project{}, classify(err)
	}
	return Project{Team: ts.team.ID, GroupTypes: maps.Clone(ts.team.GroupTypes)}, nil
}
