package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
)

// DefinitionsCatalog is what RestoreDefinitions writes to: the Pebble
// catalog of a data directory or the ScyllaDB catalog.
type DefinitionsCatalog interface {
	ListTeams(ctx context.Context) ([]catalog.Team, error)
	GetKey(ctx context.Context, id string) (catalog.APIKey, error)
	PutKey(ctx context.Context, k catalog.APIKey, ch catalog.Change) (catalog.APIKey, error)
	AddCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error
	RemoveCohortMembers(ctx context.Context, teamID, cohortID int64, distinctIDs []string, ch catalog.Change) error
	ListCohortMembers(ctx context.Context, teamID, cohortID int64, p catalog.Page) ([]string, string, error)
	catalog.Restorer
}

// DefinitionsRestored counts what RestoreDefinitions loaded.
type DefinitionsRestored struct {
	Teams, Flags, Cohorts, EarlyAccess, Tokens int
	// CohortMembers counts the static cohorts' members.
	CohortMembers int
}

// restoreActor is the activity log's actor of restored definitions.
const restoreActor = "snapshot-restore"

// RestoreDefinitions loads the snapshot's definitions table into cat:
// every team with its settings, flags, cohorts and early access features,
// with the ids and versions production had (so flags reference the same
// cohorts and /flags answers the same versions), and the teams' project
// tokens (so the SDKs' token works). A catalog that holds any team is
// refused unless replace: then the snapshot's records overwrite those of
// the same ids and the catalog's others stay. Static cohorts get their
// member lists back (with replace, exactly the snapshot's: members the
// target held that the snapshot does not are removed).
func RestoreDefinitions(ctx context.Context, dir string, m *Manifest, cat DefinitionsCatalog, replace bool) (DefinitionsRestored, error) {
	var n DefinitionsRestored
	if m.Table(TableDefinitions) == nil {
		return n, errcode.New(errcode.FailedPrecondition, "snapshot %s holds no definitions (taken without a catalog)", dir)
	}
	if !replace {
		teams, err := cat.ListTeams(ctx)
		if err != nil {
			return n, fmt.Errorf("snapshot: restore definitions: %w", err)
		}
		if len(teams) > 0 {
			return n, errcode.New(errcode.FailedPrecondition,
				"snapshot: restore definitions: the target catalog holds %d teams (team %d first); ask to replace them (--replace-definitions)", len(teams), teams[0].ID)
		}
	}
	teams := map[int64]*catalog.TeamSnapshot{}
	var tokens []catalog.APIKey
	team := func(id int64) *catalog.TeamSnapshot {
		if teams[id] == nil {
			teams[id] = &catalog.TeamSnapshot{Team: catalog.Team{ID: id}}
		}
		return teams[id]
	}
	seen := map[int64]bool{}
	err := ForEach(ctx, dir, m, TableDefinitions, func(recs []DefinitionRecord) error {
		for _, r := range recs {
			t := team(r.Team)
			var err error
			switch r.Kind {
			case DefinitionTeam:
				var s teamSettings
				if err = json.Unmarshal([]byte(r.JSON), &s); err == nil {
					seen[r.Team] = true
					t.Team = catalog.Team{ID: r.Team, Name: s.Name, Timezone: s.Timezone, GroupTypes: s.GroupTypes,
						PropertyMatchingVersion: s.PropertyMatchingVersion, Version: r.Version}
				}
			case DefinitionFlag:
				var f flags.Flag
				if f, err = flags.ParseFlag([]byte(r.JSON)); err == nil {
					t.Definitions.Flags = append(t.Definitions.Flags, f)
				}
			case DefinitionCohort:
				var c flags.Cohort
				if err = json.Unmarshal([]byte(r.JSON), &c); err == nil {
					t.Definitions.Cohorts = append(t.Definitions.Cohorts, c)
				}
			case DefinitionEarlyAccess:
				var e catalog.EarlyAccessFeature
				if err = json.Unmarshal([]byte(r.JSON), &e); err == nil {
					t.EarlyAccess = append(t.EarlyAccess, e)
				}
			case DefinitionToken:
				var k catalog.APIKey
				if err = json.Unmarshal([]byte(r.JSON), &k); err == nil {
					if k.Kind != catalog.KeyProjectToken {
						err = fmt.Errorf("a %s key; only project tokens are restored", k.Kind)
					}
					tokens = append(tokens, k)
				}
			}
			if err != nil {
				return fmt.Errorf("definitions: team %d %s %q: %w", r.Team, r.Kind, r.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("snapshot: restore definitions: %w", err)
	}
	ids := make([]int64, 0, len(teams))
	for id := range teams {
		if !seen[id] {
			return n, fmt.Errorf("%w: %s: definitions of team %d without its team record", ErrCorrupt, dir, id)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ch := catalog.Change{Actor: restoreActor}
	for _, id := range ids {
		t := teams[id]
		if err := cat.RestoreTeam(ctx, *t, replace, ch); err != nil {
			return n, fmt.Errorf("snapshot: restore definitions: %w", err)
		}
		n.Teams++
		n.Flags += len(t.Definitions.Flags)
		n.Cohorts += len(t.Definitions.Cohorts)
		n.EarlyAccess += len(t.EarlyAccess)
	}
	members, err := restoreCohortMembers(ctx, dir, m, cat, teams, replace)
	n.CohortMembers = members
	if err != nil {
		return n, fmt.Errorf("snapshot: restore definitions: %w", err)
	}
	for _, k := range tokens {
		old, err := cat.GetKey(ctx, k.ID)
		switch {
		case err == nil && slices.Equal(old.Hash, k.Hash):
			continue // restored before (replace)
		case err == nil:
			return n, fmt.Errorf("snapshot: restore definitions: key %s: %w", k.ID, catalog.ErrExists)
		case !errors.Is(err, catalog.ErrNotFound):
			return n, fmt.Errorf("snapshot: restore definitions: %w", err)
		}
		if _, err := cat.PutKey(ctx, k, ch); err != nil {
			return n, fmt.Errorf("snapshot: restore definitions: project token %s: %w", k.ID, err)
		}
		n.Tokens++
	}
	return n, nil
}

// restoreCohortMembers loads the cohort_members table (absent from
// snapshots taken before it existed) into the restored static cohorts, in
// batches of catalog.MaxPageLimit ids. A member of a cohort the snapshot
// does not define as static is corruption.
func restoreCohortMembers(ctx context.Context, dir string, m *Manifest, cat DefinitionsCatalog, teams map[int64]*catalog.TeamSnapshot, replace bool) (int, error) {
	static := map[[2]int64]bool{}
	for id, t := range teams {
		for _, c := range t.Definitions.Cohorts {
			if c.Kind == "static" {
				static[[2]int64{id, c.ID}] = true
			}
		}
	}
	ch := catalog.Change{Actor: restoreActor}
	if replace {
		for k := range static {
			if err := clearCohortMembers(ctx, cat, k[0], k[1], ch); err != nil {
				return 0, err
			}
		}
	}
	if m.Table(TableCohortMembers) == nil {
		return 0, nil
	}
	n := 0
	var cur [2]int64
	batch := make([]string, 0, catalog.MaxPageLimit)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := cat.AddCohortMembers(ctx, cur[0], cur[1], batch, ch); err != nil {
			return fmt.Errorf("members of cohort %d of team %d: %w", cur[1], cur[0], err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	err := ForEach(ctx, dir, m, TableCohortMembers, func(recs []CohortMemberRecord) error {
		for _, r := range recs {
			k := [2]int64{r.Team, r.CohortID}
			if !static[k] {
				return fmt.Errorf("%w: %s: a member of cohort %d of team %d, which the snapshot does not define as static", ErrCorrupt, dir, r.CohortID, r.Team)
			}
			if k != cur || len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
				cur = k
			}
			batch = append(batch, r.DistinctID)
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return n, err
}

// clearCohortMembers removes every member of a cohort the target holds
// (none when the cohort is new to it).
func clearCohortMembers(ctx context.Context, cat DefinitionsCatalog, team, cohort int64, ch catalog.Change) error {
	for {
		ids, _, err := cat.ListCohortMembers(ctx, team, cohort, catalog.Page{Limit: catalog.MaxPageLimit})
		if err != nil {
			return fmt.Errorf("members of cohort %d of team %d: %w", cohort, team, err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := cat.RemoveCohortMembers(ctx, team, cohort, ids, ch); err != nil {
			return fmt.Errorf("members of cohort %d of team %d: %w", cohort, team, err)
		}
	}
}
