package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/vexil-dev/vexil/catalog"
)

// catalogTeams tells the projector which teams exist, from the catalog: a
// message of a team that does not exist is dead-lettered. Known teams are
// cached for good (teams are not deleted); an unknown one is asked again
// after unknownTTL, so a team created a moment ago is soon accepted. When
// the catalog cannot answer, the team counts as known: valid data must not
// be dead-lettered because of an outage.
type catalogTeams struct {
	teams      catalog.Teams
	unknownTTL time.Duration
	now        func() time.Time

	mu struct {
		sync.Mutex
		known   map[int64]bool
		unknown map[int64]time.Time // team → when it was found missing
	}
}

func newCatalogTeams(t catalog.Teams) *catalogTeams {
	c := &catalogTeams{teams: t, unknownTTL: 5 * time.Second, now: time.Now}
	c.mu.known = map[int64]bool{}
	c.mu.unknown = map[int64]time.Time{}
	return c
}

// Known implements projector.TeamSource.
func (c *catalogTeams) Known(team int64) bool {
	c.mu.Lock()
	if c.mu.known[team] {
		c.mu.Unlock()
		return true
	}
	if at, ok := c.mu.unknown[team]; ok && c.now().Sub(at) < c.unknownTTL {
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.teams.GetTeam(ctx, team)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.mu.known[team] = true
		delete(c.mu.unknown, team)
		return true
	case errors.Is(err, catalog.ErrNotFound):
		if len(c.mu.unknown) > 10_000 {
			clear(c.mu.unknown)
		}
		c.mu.unknown[team] = c.now()
		return false
	default:
		return true
	}
}
