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
// for its settings (group types, property matching version, time zone).
// Restore does not load it into a store (definitions live in the catalog;
// vexil import loads flags and cohorts); WhatIf evaluates the snapshot's
// own flags from it.
const TableDefinitions = "definitions"

// Kinds of DefinitionRecord.
const (
	DefinitionFlag        = "flag"
	DefinitionCohort      = "cohort"
	DefinitionEarlyAccess = "early_access"
	DefinitionTeam        = "team"
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

// Catalog is what Create reads definitions from.
type Catalog interface {
	ListTeams(ctx context.Context) ([]catalog.Team, error)
	catalog.Snapshotter
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
