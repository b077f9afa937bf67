package wire

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/flags"
)

// payloadFlag is a flag as the SDKs read it in the definitions payload.
type payloadFlag struct {
	ID                         int64         `json:"id"`
	TeamID                     int64         `json:"team_id"`
	Key                        string        `json:"key"`
	Name                       string        `json:"name"`
	Active                     bool          `json:"active"`
	Deleted                    bool          `json:"deleted"`
	EnsureExperienceContinuity bool          `json:"ensure_experience_continuity"`
	Version                    int64         `json:"version"`
	HasExperiment              bool          `json:"has_experiment,omitempty"`
	BucketingIdentifier        string        `json:"bucketing_identifier,omitempty"`
	EvaluationRuntime          string        `json:"evaluation_runtime,omitempty"`
	Filters                    flags.Filters `json:"filters"`
}

// payloadDoc is the definitions document. group_type_mapping and cohorts
// are always present, {} when empty, as PostHog's server sends them:
// posthog-python reads both keys unconditionally (a missing one fails every
// poll with a KeyError).
type payloadDoc struct {
	Flags                   []payloadFlag                  `json:"flags"`
	GroupTypeMapping        map[string]string              `json:"group_type_mapping"`
	Cohorts                 map[string]flags.PropertyGroup `json:"cohorts"`
	PropertyMatchingVersion int                            `json:"property_matching_version,omitempty"`
}

// Definitions is a built local-evaluation payload.
type Definitions struct {
	// Body is the JSON the SDKs download.
	Body []byte
	// ETag is the quoted xxhash64 of Body.
	ETag string
	// ServerOnly lists the flags marked so that SDKs ask the server
	// (Vexil features PostHog's SDKs cannot evaluate locally).
	ServerOnly []string
}

// BuildDefinitions renders the local-evaluation payload of a team
// (docs/posthog-compat.md §2): deleted flags left out, inactive ones kept with
// active false, group_type_mapping keys as strings, dependency_chain on
// every flag filter, and, when sendCohorts, every dynamic cohort the flags
// read (static and behavioural cohorts are left out, which tells the SDKs to
// ask the server). group_type_mapping and cohorts are always there, {} when
// empty (cohorts is {} without sendCohorts).
//
// Vexil features the SDKs cannot evaluate the same way (behavioural
// cohorts, which need the stored counters, conditions with
// their own aggregation, overrides they cannot express, a holdout combined
// with overrides, a flag that fails to compile) are sent with
// ensure_experience_continuity set: every SDK then asks the server for that
// flag, so local and remote evaluation never disagree. Overrides the SDKs
// can follow are rewritten as conditions: forced-on group keys as leading
// conditions on $group_key, forced-off ids as an is_not filter on
// distinct_id (or $group_key) added to every condition. Forced-on distinct
// ids make the flag server-only (see rewriteOverrides).
func BuildDefinitions(defs flags.Definitions, set *flags.Set, sendCohorts bool) (*Definitions, error) {
	out := &Definitions{}
	doc := payloadDoc{Flags: []payloadFlag{}, GroupTypeMapping: map[string]string{}, Cohorts: map[string]flags.PropertyGroup{}}
	for idx, name := range defs.GroupTypes {
		doc.GroupTypeMapping[strconv.Itoa(idx)] = name
	}
	if defs.PropertyMatchingVersion == 2 {
		doc.PropertyMatchingVersion = 2
	}
	dynamic := map[int64]*flags.Cohort{}
	for i := range defs.Cohorts {
		c := &defs.Cohorts[i]
		if c.Kind == "" || c.Kind == flags.CohortDynamic {
			dynamic[c.ID] = c
		}
	}
	cohortsUsed := map[int64]bool{}
	serverOnly := map[string]bool{}
	var infos []flags.FlagInfo
	for _, f := range defs.Flags {
		if f.Deleted {
			continue
		}
		info, _ := set.Info(f.Key)
		pf, only := payloadFor(f, info, set)
		serverOnly[f.Key] = only
		doc.Flags = append(doc.Flags, pf)
		infos = append(infos, info)
		for _, id := range info.Cohorts {
			cohortsUsed[id] = true
		}
	}
	// A flag that depends on a server-only flag is server-only too: the
	// SDKs would evaluate its dependency differently.
	for i := range doc.Flags {
		pf := &doc.Flags[i]
		for _, dep := range infos[i].DependencyChain {
			if serverOnly[dep] {
				serverOnly[pf.Key] = true
			}
		}
		if serverOnly[pf.Key] {
			pf.EnsureExperienceContinuity = true
			out.ServerOnly = append(out.ServerOnly, pf.Key)
		}
	}
	if sendCohorts {
		for id := range cohortsUsed {
			if c, ok := dynamic[id]; ok {
				doc.Cohorts[strconv.FormatInt(id, 10)] = c.Filters
			}
		}
	}
	sort.Strings(out.ServerOnly)
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("wire: render definitions: %w", err)
	}
	out.Body = body
	out.ETag = fmt.Sprintf(`"%016x"`, xxhash.Sum64(body))
	return out, nil
}

// payloadFor renders one flag; serverOnly says the SDKs must not evaluate it.
func payloadFor(f flags.Flag, info flags.FlagInfo, set *flags.Set) (payloadFlag, bool) {
	pf := payloadFlag{ID: f.ID, TeamID: f.TeamID, Key: f.Key, Name: f.Name, Active: f.Active,
		EnsureExperienceContinuity: f.EnsureExperienceContinuity, Version: f.Version, HasExperiment: f.HasExperiment,
		BucketingIdentifier: f.BucketingIdentifier, EvaluationRuntime: f.EvaluationRuntime}
	fl := f.Filters
	// Copy what is rewritten, so the caller's definitions stay untouched.
	fl.Groups = copyConditions(fl.Groups)
	fl.SuperGroups = copyConditions(fl.SuperGroups)
	// A filter value the server reads as a non-match (docs/posthog-compat.md §5.2)
	// is one the SDKs cannot decide, or, in posthog-node, decide differently.
	serverOnly := info.Invalid != "" || info.UnparsableFilters
	// A behavioural cohort is decided by the stored row's counters only.
	serverOnly = serverOnly || info.Behavioral

	flagAgg := -1
	if fl.AggregationGroupTypeIndex != nil {
		flagAgg = *fl.AggregationGroupTypeIndex
	}
	for i := range fl.Groups {
		c := &fl.Groups[i]
		if c.Aggregation.Set {
			agg := -1
			if c.Aggregation.Index != nil {
				agg = *c.Aggregation.Index
			}
			if agg != flagAgg {
				serverOnly = true // mixed targeting: PostHog's SDKs know one aggregation per flag
			}
			c.Aggregation = flags.Aggregation{}
		}
	}
	for _, conds := range [][]flags.Condition{fl.Groups, fl.SuperGroups} {
		for i := range conds {
			for j := range conds[i].Properties {
				p := &conds[i].Properties[j]
				if p.Type != "flag" {
					continue
				}
				chain := []string{}
				if dep, ok := set.Info(p.Key); ok && dep.Invalid != flags.CodeDependencyCycle {
					chain = append(append(chain, dep.DependencyChain...), p.Key)
				} else if !ok {
					chain = append(chain, p.Key)
				}
				p.DependencyChain = chain
			}
		}
	}
	if len(f.Overrides) > 0 {
		if fl.Holdout != nil || len(fl.HoldoutGroups) > 0 {
			serverOnly = true // the SDKs apply the holdout first; Vexil applies overrides first
		} else if !rewriteOverrides(&fl, f.Overrides, flagAgg) {
			serverOnly = true
		}
	}
	pf.Filters = fl
	return pf, serverOnly
}

func copyConditions(in []flags.Condition) []flags.Condition {
	if in == nil {
		return nil
	}
	out := make([]flags.Condition, len(in))
	for i, c := range in {
		c.Properties = append([]flags.PropertyFilter(nil), c.Properties...)
		out[i] = c
	}
	return out
}

// rewriteOverrides expresses overrides as conditions the SDKs evaluate the
// same way Vexil does, or reports that it cannot.
func rewriteOverrides(fl *flags.Filters, overrides []flags.Override, flagAgg int) bool {
	type forced struct {
		variant string // "" for true
		ids     []string
	}
	var on []forced
	var off []string
	key, typ := "distinct_id", "person"
	var gti *int
	for _, o := range overrides {
		ids := o.DistinctIDs
		if o.GroupTypeIndex != nil {
			if *o.GroupTypeIndex != flagAgg {
				return false
			}
			ids = o.GroupKeys
			key, typ = "$group_key", "group"
			g := *o.GroupTypeIndex
			gti = &g
		} else if flagAgg >= 0 {
			return false // a person override on a group flag (so person and group overrides never mix)
		}
		var v any
		if err := json.Unmarshal(o.Value, &v); err != nil {
			return false
		}
		switch x := v.(type) {
		case bool:
			if !x {
				off = append(off, ids...)
				continue
			}
			if fl.Multivariate != nil && len(fl.Multivariate.Variants) > 0 {
				return false // "true" with no variant: an SDK would pick one by hash
			}
			on = append(on, forced{ids: ids})
		case string:
			if !hasVariant(fl, x) {
				continue // the engine ignores an override to an unknown variant
			}
			on = append(on, forced{variant: x, ids: ids})
		default:
			return false
		}
	}
	idList := func(ids []string) json.RawMessage {
		b, _ := json.Marshal(ids)
		return b
	}
	if len(off) > 0 {
		not := flags.PropertyFilter{Key: key, Type: typ, Operator: "is_not", Value: idList(off), GroupTypeIndex: gti}
		for i := range fl.Groups {
			fl.Groups[i].Properties = append(fl.Groups[i].Properties, not)
		}
		for i := range fl.SuperGroups {
			fl.SuperGroups[i].Properties = append(fl.SuperGroups[i].Properties, not)
		}
	}
	hundred := 100.0
	var lead []flags.Condition
	for _, fo := range on {
		c := flags.Condition{Properties: []flags.PropertyFilter{{Key: key, Type: typ, Operator: "exact", Value: idList(fo.ids), GroupTypeIndex: gti}}, RolloutPercentage: &hundred}
		if fo.variant != "" {
			v := fo.variant
			c.Variant = &v
		}
		lead = append(lead, c)
	}
	if len(lead) > 0 {
		if typ == "person" {
			// posthog-python (7.91) adds distinct_id to the person properties
			// in its public calls, and only when the caller passed none; an
			// SDK or entry point that does not add it finds a leading
			// condition on it inconclusive and takes the first later
			// condition that matches, a value the override does not give.
			// So only the server answers these. (A forced-off is_not filter
			// sits in every condition: where it is inconclusive, every
			// condition is, and the SDK asks the server.)
			return false
		}
		if len(fl.SuperGroups) > 0 || fl.FeatureEnrollment {
			return false // enrollment is decided before conditions in the SDKs
		}
		fl.Groups = append(lead, fl.Groups...)
	}
	return true
}

func hasVariant(fl *flags.Filters, key string) bool {
	if fl.Multivariate == nil {
		return false
	}
	for _, v := range fl.Multivariate.Variants {
		if v.Key == key {
			return true
		}
	}
	return false
}

// ETagMatches reports whether an If-None-Match header names etag: a
// comma-separated list, W/ prefixes accepted, "*" matching anything.
func ETagMatches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" || etag == "" {
		return false
	}
	for _, part := range strings.Split(ifNoneMatch, ",") {
		p := strings.TrimSpace(part)
		p = strings.TrimPrefix(p, "W/")
		if p == "*" || p == etag || strings.Trim(p, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}
