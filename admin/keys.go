package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/vexil-dev/vexil/catalog"
)

// Key prefixes, as PostHog's.
const (
	PrefixProjectToken = "phc_"
	PrefixSecure       = "phs_"
	PrefixPersonal     = "phx_"
)

// Scopes of personal API keys. ScopeAll grants every scope.
const (
	ScopeAll              = "*"
	ScopeTeamRead         = "team:read"
	ScopeTeamAdmin        = "team:admin"
	ScopeFlagRead         = "flag:read"
	ScopeFlagWrite        = "flag:write"
	ScopeCohortRead       = "cohort:read"
	ScopeCohortWrite      = "cohort:write"
	ScopeEarlyAccessRead  = "early_access:read"
	ScopeEarlyAccessWrite = "early_access:write"
	ScopeActivityRead     = "activity:read"
)

// Scopes lists every scope but ScopeAll.
var Scopes = []string{
	ScopeTeamRead, ScopeTeamAdmin, ScopeFlagRead, ScopeFlagWrite, ScopeCohortRead,
	ScopeCohortWrite, ScopeEarlyAccessRead, ScopeEarlyAccessWrite, ScopeActivityRead,
}

// ValidScope reports whether s names a scope.
func ValidScope(s string) bool { return s == ScopeAll || slices.Contains(Scopes, s) }

// HashSecret is how secrets are stored: SHA-256 (the secrets are 32 random
// bytes, so no slow hash is needed).
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewSecret returns a new random secret with the prefix of the kind.
func NewSecret(kind catalog.KeyKind) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin: new secret: %w", err)
	}
	return keyPrefix(kind) + hex.EncodeToString(b[:]), nil
}

func keyPrefix(kind catalog.KeyKind) string {
	switch kind {
	case catalog.KeyProjectToken:
		return PrefixProjectToken
	case catalog.KeySecure:
		return PrefixSecure
	}
	return PrefixPersonal
}

func newKeyID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin: new key id: %w", err)
	}
	return "key_" + hex.EncodeToString(b[:]), nil
}

// NewKey builds a key record and its secret (not yet stored). A project
// token is public, so its whole text is kept in Prefix (the API shows it as
// the team's api_token); other kinds keep the prefix and 8 characters.
func NewKey(kind catalog.KeyKind, teams []int64, scopes []string, label, createdBy string) (catalog.APIKey, string, error) {
	secret, err := NewSecret(kind)
	if err != nil {
		return catalog.APIKey{}, "", err
	}
	id, err := newKeyID()
	if err != nil {
		return catalog.APIKey{}, "", err
	}
	prefix := secret[:len(keyPrefix(kind))+8]
	if kind == catalog.KeyProjectToken {
		prefix = secret
	}
	return catalog.APIKey{
		ID: id, Kind: kind, Prefix: prefix, Hash: HashSecret(secret),
		Teams: slices.Clone(teams), Scopes: slices.Clone(scopes), Label: label, CreatedBy: createdBy,
	}, secret, nil
}

// CreatePersonalKey stores a new personal API key and returns it with its
// secret: the bootstrap path of "vexil keys create". Empty teams make an
// instance-wide key.
func CreatePersonalKey(ctx context.Context, keys catalog.Keys, teams []int64, scopes []string, label, actor string) (catalog.APIKey, string, error) {
	if len(scopes) == 0 {
		return catalog.APIKey{}, "", fmt.Errorf("admin: create key: no scopes: %w", catalog.ErrInvalid)
	}
	for _, s := range scopes {
		if !ValidScope(s) {
			return catalog.APIKey{}, "", fmt.Errorf("admin: create key: unknown scope %q: %w", s, catalog.ErrInvalid)
		}
	}
	k, secret, err := NewKey(catalog.KeyPersonal, teams, scopes, label, actor)
	if err != nil {
		return catalog.APIKey{}, "", err
	}
	k, err = keys.PutKey(ctx, k, catalog.Change{Actor: actor})
	if err != nil {
		return catalog.APIKey{}, "", fmt.Errorf("admin: create key: %w", err)
	}
	return k, secret, nil
}

// principal is the authenticated caller.
type principal struct {
	key catalog.APIKey
}

// reaches reports whether the key may see the team.
func (p *principal) reaches(team int64) bool {
	return len(p.key.Teams) == 0 || slices.Contains(p.key.Teams, team)
}

// instanceWide reports whether the key reaches every team.
func (p *principal) instanceWide() bool { return len(p.key.Teams) == 0 }

func (p *principal) has(scope string) bool {
	return slices.Contains(p.key.Scopes, ScopeAll) || slices.Contains(p.key.Scopes, scope)
}

// parseBearer returns the secret of an "authorization" value.
func parseBearer(v string) (string, bool) {
	const pfx = "bearer "
	if len(v) <= len(pfx) || !strings.EqualFold(v[:len(pfx)], pfx) {
		return "", false
	}
	return strings.TrimSpace(v[len(pfx):]), true
}
