package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/flags"
)

// TableDefinitions holds the catalog's definitions with their versions:
// one record per flag, cohort and early access feature, and one per team
// for its settings (group types, property matching version, time zone),
// and one per project token (public: the SDKs embed it; secure and
// personal keys are never exported). RestoreDefinitions loads it into a
// catalog with the same ids and versions; WhatIf evaluates the snapshot's
// own flags from it.
const TableDefinitions = "definitions"

// Kinds of DefinitionRecord.
const (
	DefinitionFlag        = "flag"
	DefinitionCohort      = "cohort"
	DefinitionEarlyAccess = "early_access"
	DefinitionTeam        = "team"
	DefinitionToken       = "project_token"
)

// DefinitionRecord is one definition, as JSON in the shape the management
// API and PostHog use.
type DefinitionRecord struct {
	Team    int64  `parquet:"team"`
	Kind    string `parquet:"kind"`
	ID      int64  `parquet:"id"`
	Key     string `parquet:"key"`
	Version int64  `parquet:"version"`
	JSON    string `parquet:"definition,json"`
}

// TableCohortMembers holds the member lists of static cohorts (a cohort's
// definition says which distinct ids it holds only through them): one
// record per member. Written with the definitions, from the same catalog,
// and restored with the cohorts by RestoreDefinitions.
const TableCohortMembers = "cohort_members"

// CohortMemberRecord is one row of the cohort_members table.
type CohortMemberRecord struct {
	Team       int64  `parquet:"team"`
	CohortID   int64  `parquet:"cohort_id"`
	DistinctID string `parquet:"distinct_id"`
}

// Catalog is what Create reads definitions from.
type Catalog interface {
	ListTeams(ctx context.Context) ([]catalog.Team, error)
	ListKeys(ctx context.Context, teamID int64) ([]catalog.APIKey, error)
	ListCohortMembers(ctx context.Context, teamID, cohortID int64, p catalog.Page) ([]string, string, error)
	catalog.Snapshotter
}

// writeCohortMembers writes the members of the teams' static cohorts (one
// team, or all when team is 0), paging through the catalog so that one
// row group is in memory whatever the lists' sizes.
func writeCohortMembers(ctx context.Context, cat Catalog, dir string, team int64, groupRows, partRows int) (Table, error) {
	teams, err := cat.ListTeams(ctx)
	if err != nil {
		return Table{}, fmt.Errorf("cohort members: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, TableCohortMembers)); err != nil {
		return Table{}, err
	}
	tw := &tableWriter{name: TableCohortMembers, dir: dir, groupRows: groupRows, partRows: partRows}
	for _, t := range teams {
		if team != 0 && t.ID != team {
			continue
		}
		snap, err := cat.Snapshot(ctx, t.ID)
		if err != nil {
			return Table{}, fmt.Errorf("cohort members of team %d: %w", t.ID, err)
		}
		for _, c := range snap.Definitions.Cohorts {
			if c.Kind != "static" { // the snapshot holds live cohorts only
				continue
			}
			cursor := ""
			for {
				ids, next, err := cat.ListCohortMembers(ctx, t.ID, c.ID, catalog.Page{Limit: catalog.MaxPageLimit, Cursor: cursor})
				if err != nil {
					tw.abort()
					return Table{}, fmt.Errorf("members of cohort %d of team %d: %w", c.ID, t.ID, err)
				}
				for _, id := range ids {
					if err := tw.addRecord(CohortMemberRecord{Team: t.ID, CohortID: c.ID, DistinctID: id}); err != nil {
						tw.abort()
						return Table{}, err
					}
				}
				if next == "" || len(ids) == 0 {
					break
				}
				cursor = next
			}
		}
	}
	if err := tw.closePart(); err != nil {
		return Table{}, err
	}
	return Table{Name: TableCohortMembers, Rows: tw.rows, Parts: append([]Part{}, tw.parts...)}, nil
}

// teamSettings is the team record's JSON.
type teamSettings struct {
	Name                    string         `json:"name"`
	GroupTypes              map[int]string `json:"group_types,omitempty"`
	PropertyMatchingVersion int            `json:"property_matching_version,omitempty"`
	Timezone                string         `json:"timezone,omitempty"`
}

// writeDefinitions writes the definitions table of the teams (one, or all
// when team is 0) and returns it.
func writeDefinitions(ctx context.Context, cat Catalog, dir string, team int64, groupRows int) (Table, error) {
	teams, err := cat.ListTeams(ctx)
	if err != nil {
		return Table{}, fmt.Errorf("definitions: %w", err)
	}
	var recs []DefinitionRecord
	add := func(t int64, kind string, id int64, key string, version int64, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		recs = append(recs, DefinitionRecord{Team: t, Kind: kind, ID: id, Key: key, Version: version, JSON: string(b)})
		return nil
	}
	for _, t := range teams {
		if team != 0 && t.ID != team {
			continue
		}
		snap, err := cat.Snapshot(ctx, t.ID)
		if err != nil {
			return Table{}, fmt.Errorf("definitions of team %d: %w", t.ID, err)
		}
		d := snap.Definitions
		if err := add(t.ID, DefinitionTeam, t.ID, t.Name, t.Version, teamSettings{Name: t.Name, GroupTypes: d.GroupTypes,
			PropertyMatchingVersion: d.PropertyMatchingVersion, Timezone: d.Timezone}); err != nil {
			return Table{}, err
		}
		for _, f := range d.Flags {
			if err := add(t.ID, DefinitionFlag, f.ID, f.Key, f.Version, f); err != nil {
				return Table{}, err
			}
		}
		for _, c := range d.Cohorts {
			if err := add(t.ID, DefinitionCohort, c.ID, strconv.FormatInt(c.ID, 10), c.Version, c); err != nil {
				return Table{}, err
			}
		}
		for _, e := range snap.EarlyAccess {
			if err := add(t.ID, DefinitionEarlyAccess, 0, e.ID, e.Version, e); err != nil {
				return Table{}, err
			}
		}
		keys, err := cat.ListKeys(ctx, t.ID)
		if err != nil {
			return Table{}, fmt.Errorf("project tokens of team %d: %w", t.ID, err)
		}
		for _, k := range keys {
			// Only a live project token of this team alone: it is public,
			// and a restored node must answer the SDKs that embed it.
			if k.Kind != catalog.KeyProjectToken || k.Revoked() || len(k.Teams) != 1 || k.Teams[0] != t.ID {
				continue
			}
			if err := add(t.ID, DefinitionToken, 0, k.ID, k.Version, k); err != nil {
				return Table{}, err
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, TableDefinitions)); err != nil {
		return Table{}, err
	}
	p, err := openPart(dir, TableDefinitions, 0, groupRows)
	if err != nil {
		return Table{}, err
	}
	g := p.recs.(*genericRecords[DefinitionRecord])
	for _, r := range recs {
		g.buf = append(g.buf, r)
		p.rows++
		if len(g.buf) >= groupRows {
			if err := g.flush(); err != nil {
				return Table{}, err
			}
		}
	}
	part, err := p.close()
	if err != nil {
		return Table{}, err
	}
	return Table{Name: TableDefinitions, Rows: part.Rows, Parts: []Part{part}}, nil
}

// Definitions returns the snapshot's definitions of team as flags would
// compile them, or an error when the snapshot has none for it.
func Definitions(ctx context.Context, dir string, m *Manifest, team int64) (flags.Definitions, error) {
	var d flags.Definitions
	found := false
	if m.Table(TableDefinitions) == nil {
		return d, fmt.Errorf("snapshot %s holds no definitions (taken without a catalog)", dir)
	}
	err := ForEach(ctx, dir, m, TableDefinitions, func(recs []DefinitionRecord) error {
		for _, r := range recs {
			if r.Team != team {
				continue
			}
			switch r.Kind {
			case DefinitionTeam:
				found = true
				var s teamSettings
				if err := json.Unmarshal([]byte(r.JSON), &s); err != nil {
					return err
				}
				d.GroupTypes, d.PropertyMatchingVersion, d.Timezone = s.GroupTypes, s.PropertyMatchingVersion, s.Timezone
			case DefinitionFlag:
				f, err := flags.ParseFlag([]byte(r.JSON))
				if err != nil {
					return err
				}
				d.Flags = append(d.Flags, f)
			case DefinitionCohort:
				var c flags.Cohort
				if err := json.Unmarshal([]byte(r.JSON), &c); err != nil {
					return err
				}
				d.Cohorts = append(d.Cohorts, c)
			}
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("snapshot %s holds no definitions of team %d", dir, team)
	}
	return d, err
}
