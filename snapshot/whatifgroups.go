package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
)

// Bounds of a groups file (WhatIfOptions.Groups). Its memberships are held
// in memory during the what-if, so they are bounded in bytes and entries.
const (
	MaxGroupsFileBytes   = 1 << 30
	MaxGroupsFileEntries = 10_000_000
	maxGroupsLineBytes   = 64 << 10
)

// GroupMembership maps a distinct id to its groups (group type name →
// group key). A snapshot's rows carry no group keys (a request names its
// groups; the store keeps no person → group membership), so what-if takes
// them from a file.
type GroupMembership map[string]map[string]string

// groupsLine is one line of a groups file.
type groupsLine struct {
	DistinctID string            `json:"distinct_id"`
	Groups     map[string]string `json:"groups"`
}

// ParseGroupsFile reads a groups file: JSON lines of
// {"distinct_id": "user-1", "groups": {"company": "acme"}}, at most
// MaxGroupsFileBytes, MaxGroupsFileEntries lines of 64 KiB, each with at
// most flags.MaxGroupTypes groups. A later line of the same distinct id
// replaces an earlier one.
func ParseGroupsFile(r io.Reader) (GroupMembership, error) {
	lim := &io.LimitedReader{R: r, N: MaxGroupsFileBytes + 1}
	sc := bufio.NewScanner(lim)
	sc.Buffer(make([]byte, 0, 4096), maxGroupsLineBytes)
	out := GroupMembership{}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(out) >= MaxGroupsFileEntries {
			return nil, errcode.Field(errcode.TooLarge, "groups-file", "groups-file: over %d entries", MaxGroupsFileEntries)
		}
		var l groupsLine
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, errcode.Field(errcode.InvalidArgument, "groups-file", "groups-file line %d: %v", line, err)
		}
		if l.DistinctID == "" {
			return nil, errcode.Field(errcode.InvalidArgument, "groups-file", "groups-file line %d: distinct_id is required", line)
		}
		if len(l.Groups) > flags.MaxGroupTypes {
			return nil, errcode.Field(errcode.InvalidArgument, "groups-file", "groups-file line %d: %d groups, at most %d", line, len(l.Groups), flags.MaxGroupTypes)
		}
		for name, key := range l.Groups {
			if name == "" || key == "" {
				return nil, errcode.Field(errcode.InvalidArgument, "groups-file", "groups-file line %d: empty group type or key", line)
			}
		}
		out[l.DistinctID] = l.Groups
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, errcode.Field(errcode.TooLarge, "groups-file", "groups-file line %d: over %d bytes", line+1, maxGroupsLineBytes)
		}
		return nil, err
	}
	if lim.N <= 0 {
		return nil, errcode.Field(errcode.TooLarge, "groups-file", "groups-file: over %d bytes", MaxGroupsFileBytes)
	}
	return out, nil
}

// groupRef names a group of the snapshot.
type groupRef struct {
	team  int64
	index int
	key   string
}

// whatIfGroups resolves memberships against the snapshot's groups table.
type whatIfGroups struct {
	members GroupMembership
	set     *flags.Set
	props   map[groupRef]map[string]any
}

// snapshotGroupTypes returns the group types of team in the snapshot's
// group_types table (every team's when 0, refused if two teams name an
// index differently).
func snapshotGroupTypes(ctx context.Context, dir string, m *Manifest, team int64) (map[int]string, error) {
	out := map[int]string{}
	err := ForEach(ctx, dir, m, TableGroupTypes, func(recs []GroupTypeRecord) error {
		for _, r := range recs {
			if team != 0 && r.Team != team {
				continue
			}
			if old, ok := out[int(r.Index)]; ok && old != r.Name {
				return errcode.Field(errcode.InvalidArgument, "team", "teams name group type %d %q and %q: pick one team", r.Index, old, r.Name)
			}
			out[int(r.Index)] = r.Name
		}
		return nil
	})
	return out, err
}

// loadGroups checks the memberships' group type names against set and
// reads the properties of the groups they name (only those) from the
// snapshot's groups table.
func loadGroups(ctx context.Context, dir string, m *Manifest, set *flags.Set, members GroupMembership, team int64) (*whatIfGroups, error) {
	need := map[groupRef]bool{} // team 0: any team's
	for did, gs := range members {
		for name, key := range gs {
			i, ok := set.GroupTypeIndex(name)
			if !ok {
				return nil, errcode.Field(errcode.InvalidArgument, "groups-file", "groups-file: distinct id %q names group type %q, which the definitions do not have", did, name)
			}
			need[groupRef{index: i, key: key}] = true
		}
	}
	g := &whatIfGroups{members: members, set: set, props: map[groupRef]map[string]any{}}
	err := ForEach(ctx, dir, m, TableGroups, func(recs []GroupRecord) error {
		for _, r := range recs {
			if (team != 0 && r.Team != team) || !need[groupRef{index: int(r.TypeIndex), key: r.GroupKey}] {
				continue
			}
			props := map[string]any{}
			dec := json.NewDecoder(bytes.NewReader([]byte(r.Properties)))
			dec.UseNumber()
			if err := dec.Decode(&props); err != nil {
				return fmt.Errorf("group %d/%d/%q: properties: %w", r.Team, r.TypeIndex, r.GroupKey, err)
			}
			g.props[groupRef{team: r.Team, index: int(r.TypeIndex), key: r.GroupKey}] = props
		}
		return nil
	})
	return g, err
}

// of returns the request groups of a row's distinct id: nil when the file
// names none; a group the snapshot does not hold has no properties, as a
// request naming an unknown group.
func (g *whatIfGroups) of(team int64, distinctID string) []flags.Group {
	gs := g.members[distinctID]
	if len(gs) == 0 {
		return nil
	}
	var out []flags.Group
	for name, key := range gs {
		i, _ := g.set.GroupTypeIndex(name)
		for len(out) <= i {
			out = append(out, flags.Group{})
		}
		props := g.props[groupRef{team: team, index: i, key: key}]
		if props == nil {
			props = map[string]any{}
		}
		out[i] = flags.Group{Key: key, Properties: props}
	}
	return out
}
