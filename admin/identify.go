package admin

import (
	"context"
	"slices"

	"github.com/vexil-dev/vexil/catalog"
)

// KeyInfo says what a personal key may do, without its secret: the web UI
// reads it at sign-in and on every page to show only the controls the key
// allows. The service still checks every call itself.
type KeyInfo struct {
	ID     string
	Label  string
	Prefix string
	Scopes []string
	// Teams the key reaches; empty for an instance-wide key.
	Teams []int64
}

// Has reports whether the key carries scope (or every scope).
func (k KeyInfo) Has(scope string) bool {
	return slices.Contains(k.Scopes, ScopeAll) || slices.Contains(k.Scopes, scope)
}

// Reaches reports whether the key may see team.
func (k KeyInfo) Reaches(team int64) bool {
	return len(k.Teams) == 0 || slices.Contains(k.Teams, team)
}

// Identify resolves a personal key's secret as the management API does
// (unknown, malformed and revoked keys are unauthenticated errors).
func (s *Service) Identify(ctx context.Context, secret string) (KeyInfo, error) {
	k, err := s.lookupKey(ctx, secret, catalog.KeyPersonal)
	if err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{ID: k.ID, Label: k.Label, Prefix: k.Prefix, Scopes: slices.Clone(k.Scopes), Teams: slices.Clone(k.Teams)}, nil
}
