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
	catalog.Restorer
}

// DefinitionsRestored counts what RestoreDefinitions loaded.
type DefinitionsRestored struct {
	Teams, Flags, Cohorts, EarlyAccess, Tokens int
}

// restoreActor is the activity log's actor of restored definitions.
const restoreActor = "snapshot-restore"

// RestoreDefinitions loads the snapshot's definitions table into cat:
// every team with its settings, flags, cohorts and early access features,
// with the ids and versions production had (so flags reference the same
// cohorts and /flags answers the same versions), and the teams' project
// tokens (so the SDKs' token works). A catalog that holds any team is
// refused unless replace: then the snapshot's records overwrite those of
// the same ids and the catalog's others stay. Static cohorts' member lists
// are not in a snapshot.
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
