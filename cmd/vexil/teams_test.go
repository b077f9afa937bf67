package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
)

type stubTeams struct {
	catalog.Teams
	exists map[int64]bool
	fail   bool
	calls  int
}

func (s *stubTeams) GetTeam(_ context.Context, id int64) (catalog.Team, error) {
	s.calls++
	if s.fail {
		return catalog.Team{}, errors.New("catalog unavailable")
	}
	if !s.exists[id] {
		return catalog.Team{}, catalog.ErrNotFound
	}
	return catalog.Team{ID: id}, nil
}

func TestCatalogTeams(t *testing.T) {
	stub := &stubTeams{exists: map[int64]bool{1: true}}
	now := time.Unix(1000, 0)
	ct := newCatalogTeams(stub)
	ct.now = func() time.Time { return now }

	if !ct.Known(1) || !ct.Known(1) || stub.calls != 1 {
		t.Errorf("a known team is asked once, calls=%d", stub.calls)
	}
	if ct.Known(2) || ct.Known(2) || stub.calls != 2 {
		t.Errorf("an unknown team is refused and not asked again within the TTL, calls=%d", stub.calls)
	}
	stub.exists[2] = true // created meanwhile
	now = now.Add(6 * time.Second)
	if !ct.Known(2) || stub.calls != 3 {
		t.Errorf("after the TTL a new team is accepted, calls=%d", stub.calls)
	}
	stub.fail = true
	if !ct.Known(3) {
		t.Error("when the catalog cannot answer, the team counts as known")
	}
}
