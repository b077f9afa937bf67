package flags

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Definitions is a team's whole definition set: what Compile takes.
type Definitions struct {
	Flags   []Flag
	Cohorts []Cohort
	// GroupTypes maps a group type index to its name ("company").
	GroupTypes map[int]string
	// PropertyMatchingVersion is 1 (the default) or 2; see the PostHog
	// boolean rule of exact/is_not.
	PropertyMatchingVersion int
	// Timezone is the team's IANA time zone, for dates written without an
	// offset. Empty means UTC.
	Timezone string
}

// Cohort kinds.
const (
	CohortDynamic    = "dynamic"
	CohortStatic     = "static"
	CohortBehavioral = "behavioral"
)

// MaxGroupTypes bounds group type indexes (PostHog uses 0 to 4).
const MaxGroupTypes = 256

// Set is a compiled, immutable definition set. It is safe for concurrent
// use.
type Set struct {
	flags      []*compiledFlag // in dependency order: a flag after its dependencies
	byKey      map[string]int
	cohorts    map[int64]*compiledCohort
	groupNames map[int]string
	groupIndex map[string]int
	pmv        int
	loc        *time.Location
	// pairs are the (event, event filters) pairs behavioural filters
	// count, by id and by event name.
	pairs   map[uint64]*eventPair
	byEvent map[string][]*eventPair
	pool    sync.Pool // *evaluator
	// groupPairs is GroupEventPairs, computed on first use.
	groupPairsOnce sync.Once
	groupPairs     map[int][]uint64
}

// FlagInfo is what a flag reads, computed at compile time.
type FlagInfo struct {
	// PersonProperties are the person property keys the flag reads,
	// directly or through dynamic cohorts, sorted.
	PersonProperties []string
	// GroupProperties are the group property keys it reads, by group type.
	GroupProperties map[int][]string
	// GroupTypes are the group types its conditions aggregate on.
	GroupTypes []int
	// Cohorts are the cohort ids it reads, directly or nested, sorted.
	Cohorts []int64
	// DependencyChain lists the flags it depends on, transitively, in
	// evaluation order.
	DependencyChain []string
	// TimeDependent is true when its result can change with time alone
	// (relative dates, behavioural cohorts).
	TimeDependent bool
	// Invalid is the code of the problem that keeps the active flag from
	// being evaluated (it always fails), or empty. A filter that never
	// matches is not such a problem.
	Invalid string `json:",omitempty"`
	// Aggregations are what its conditions and holdouts bucket on, sorted:
	// -1 for persons, otherwise a group type index. A flag with no
	// condition lists its flag-level aggregation.
	Aggregations []int `json:",omitempty"`
	// ByDevice is set when it buckets on the request's device_id.
	ByDevice bool `json:",omitempty"`
	// DistinctIDOverrides is set when it has overrides by distinct id;
	// GroupOverrides lists the group types it has overrides by key for.
	DistinctIDOverrides bool  `json:",omitempty"`
	GroupOverrides      []int `json:",omitempty"`
	// UnparsableFilters is set when a filter of the flag, or of a cohort it
	// reads, has a value its operator cannot parse (an invalid_number,
	// invalid_date or invalid_semver warning) or a regex over
	// MaxRegexProgram (regex_too_large). The filter never matches
	// here, as on PostHog's server, but PostHog's SDKs cannot decide it
	// (posthog-node even compares such numbers as text): a definitions
	// payload for local evaluation should leave the flag to the server.
	UnparsableFilters bool `json:",omitempty"`
	// Behavioral is set when a cohort it reads has a behavioural filter:
	// only the stored row's counters decide it (Context.Events), so the
	// SDKs and partial evaluation cannot.
	Behavioral bool `json:",omitempty"`
}

type opcode uint8

const (
	opExact opcode = iota
	opIsNot
	opIsSet
	opIsNotSet
	opIContains
	opNotIContains
	opStartsWith
	opNotStartsWith
	opEndsWith
	opNotEndsWith
	opIContainsMulti
	opNotIContainsMulti
	opRegex
	opNotRegex
	opGT
	opGTE
	opLT
	opLTE
	opDateBefore
	opDateAfter
	opDateExact
	opSemverEQ
	opSemverNEQ
	opSemverGT
	opSemverGTE
	opSemverLT
	opSemverLTE
	opSemverTilde
	opSemverCaret
	opSemverWildcard
	opBetween
	opNotBetween
	opInCohort
	opNotInCohort
	opFlagEvaluatesTo
)

var operators = map[string]opcode{
	"exact": opExact, "is_not": opIsNot, "is_set": opIsSet, "is_not_set": opIsNotSet,
	"icontains": opIContains, "not_icontains": opNotIContains,
	"starts_with": opStartsWith, "not_starts_with": opNotStartsWith,
	"ends_with": opEndsWith, "not_ends_with": opNotEndsWith,
	"icontains_multi": opIContainsMulti, "not_icontains_multi": opNotIContainsMulti,
	"regex": opRegex, "not_regex": opNotRegex,
	"gt": opGT, "gte": opGTE, "lt": opLT, "lte": opLTE,
	"is_date_before": opDateBefore, "is_date_after": opDateAfter, "is_date_exact": opDateExact,
	"semver_eq": opSemverEQ, "semver_neq": opSemverNEQ, "semver_gt": opSemverGT,
	"semver_gte": opSemverGTE, "semver_lt": opSemverLT, "semver_lte": opSemverLTE,
	"semver_tilde": opSemverTilde, "semver_caret": opSemverCaret, "semver_wildcard": opSemverWildcard,
	"between": opBetween, "not_between": opNotBetween,
	"in": opInCohort, "not_in": opNotInCohort,
	"flag_evaluates_to": opFlagEvaluatesTo,
}

// missingMatches reports the server's answer for an operator when the
// property is absent: the negative operators match.
func (op opcode) missingMatches() bool {
	switch op {
	case opIsNot, opIsNotSet, opNotIContains, opNotStartsWith, opNotEndsWith,
		opNotIContainsMulti, opNotRegex, opNotBetween:
		return true
	}
	return false
}

type filterKind uint8

const (
	kindPerson filterKind = iota
	kindGroup
	kindCohort
	kindFlag
	kindBehavioral
)

// matcher is a compiled filter.
type matcher struct {
	kind      filterKind
	op        opcode
	key       string
	groupType int // for group filters; -1: the condition's aggregation
	negate    bool

	// invalid: the value cannot be parsed for the operator (a number, a
	// date, a semver): no match on the server, undecided in partial mode.
	invalid  bool
	boolRule bool     // exact/is_not compare truthiness
	truthy   bool     // truthiness of the filter value
	str      string   // the filter value as a string (lowercased for text ops)
	list     []string // list filter values as strings (exact any-of, icontains_multi)
	num      float64
	num2     float64
	re       *regexp.Regexp // nil: invalid pattern, matches nothing
	date     time.Time
	rel      relativeDate
	isRel    bool
	sem      semver
	rng      semverRange
	cohort   int64
	beh      *behavior // a behavioural filter
	dep      int       // index of the flag depended on; -1 when it is missing
	depKey   string
	depBool  bool
	depIsStr bool
	depStr   string
	// chainEmpty: the definition carried "dependency_chain": [], which
	// PostHog's SDKs read as a cycle (only Context.Partial honours it).
	chainEmpty bool
}

type compiledCond struct {
	filters    []matcher
	rollout    float64 // fraction in [0, 1] (or beyond, as given)
	hasRollout bool
	variant    string // a valid variant override, or ""
	agg        int    // -1 persons, otherwise a group type index
	desc       string // "Matched condition set N"
}

type overrideValue struct {
	enabled bool
	variant string
}

type compiledFlag struct {
	def         Flag
	fatal       *ValidationError
	agg         int
	conds       []compiledCond
	super       []compiledCond
	holdout     []compiledCond // rollout over the holdout hash, variant holdout-<id>
	variants    []string
	vmin, vmax  []float64
	payloadTrue json.RawMessage
	payloads    map[string]json.RawMessage
	byDevice    bool
	enrollKey   string // "$feature_enrollment/<key>" when feature_enrollment
	overrideDID map[string]overrideValue
	overrideGrp map[int]map[string]overrideValue
	deps        []int // direct dependencies (set indexes)
	closure     []int // transitive dependencies in set order
	info        FlagInfo
	timeReliant bool
}

type cohortNode struct {
	and      bool
	children []cohortNode
	filter   *matcher
}

type compiledCohort struct {
	id    int64
	kind  string
	root  cohortNode
	fatal *ValidationError
	// person property keys and cohorts read, nested included
	props   []string
	nested  []int64
	timeDep bool
	// unparsable: a filter's value does not parse, nested cohorts included
	unparsable bool
	// behavioral: a behavioural filter, nested cohorts included
	behavioral bool
}

type compiler struct {
	defs   *Definitions
	set    *Set
	errs   ValidationErrors
	raw    map[int64]*Cohort
	state  map[int64]int // cohort DFS: 1 visiting, 2 done
	flagIx map[string]int
}

func (c *compiler) report(e *ValidationError) *ValidationError {
	c.errs = append(c.errs, e)
	return e
}

// Compile validates a definition set and compiles it for evaluation. The
// returned Set is never nil: see the package documentation for how flags
// with problems evaluate. The error, when not nil, is a ValidationErrors.
func Compile(defs Definitions) (*Set, error) {
	s := &Set{
		byKey:      map[string]int{},
		cohorts:    map[int64]*compiledCohort{},
		groupNames: map[int]string{},
		groupIndex: map[string]int{},
		pmv:        defs.PropertyMatchingVersion,
		loc:        time.UTC,
		pairs:      map[uint64]*eventPair{},
		byEvent:    map[string][]*eventPair{},
	}
	c := &compiler{defs: &defs, set: s, raw: map[int64]*Cohort{}, state: map[int64]int{}, flagIx: map[string]int{}}
	if s.pmv == 0 {
		s.pmv = 1
	}
	if defs.Timezone != "" {
		loc, err := time.LoadLocation(defs.Timezone)
		if err != nil {
			c.report(&ValidationError{Path: "timezone", Code: CodeInvalidTimezone, Reason: fmt.Sprintf("unknown time zone %q; UTC is used", defs.Timezone)})
		} else {
			s.loc = loc
		}
	}
	for idx, name := range defs.GroupTypes {
		if idx < 0 || idx >= MaxGroupTypes {
			c.report(&ValidationError{Path: fmt.Sprintf("group_types[%d]", idx), Code: CodeUnknownGroupType, Reason: fmt.Sprintf("group type index %d is outside 0..%d", idx, MaxGroupTypes-1)})
			continue
		}
		s.groupNames[idx] = name
		s.groupIndex[name] = idx
	}
	for i := range defs.Cohorts {
		co := &defs.Cohorts[i]
		c.raw[co.ID] = co
	}
	ids := make([]int64, 0, len(c.raw))
	for id := range c.raw {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		c.cohort(id)
	}

	// Flags: keys first, so dependencies resolve whatever the order.
	var live []*compiledFlag
	for i := range defs.Flags {
		f := defs.Flags[i]
		if f.Deleted {
			continue
		}
		cf := &compiledFlag{def: f, agg: -1}
		if f.Key == "" {
			cf.fatal = c.report(&ValidationError{Flag: f.Key, Path: "key", Code: CodeInvalidKey, Reason: "the key is empty", Fatal: true})
		} else if _, dup := c.flagIx[f.Key]; dup {
			c.report(&ValidationError{Flag: f.Key, Path: "key", Code: CodeDuplicateKey, Reason: "another flag has this key; this one is ignored", Fatal: true})
			continue
		}
		c.flagIx[f.Key] = len(live)
		live = append(live, cf)
	}
	for _, cf := range live {
		c.flag(cf)
	}
	c.order(live)
	if len(c.errs) > 0 {
		return s, c.errs
	}
	return s, nil
}

// order sorts flags so that each comes after its dependencies, marks
// cycles, and fills the set's index.
func (c *compiler) order(live []*compiledFlag) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(live))
	var sorted []int
	var visit func(i int, stack []int)
	visit = func(i int, stack []int) {
		switch state[i] {
		case done:
			return
		case visiting:
			// A cycle: every flag on it from i onwards fails.
			start := 0
			for k, j := range stack {
				if j == i {
					start = k
				}
			}
			cycle := stack[start:]
			names := make([]string, 0, len(cycle)+1)
			for _, j := range cycle {
				names = append(names, live[j].def.Key)
			}
			names = append(names, live[i].def.Key)
			for _, j := range cycle {
				if live[j].fatal == nil || live[j].fatal.Code != CodeDependencyCycle {
					live[j].fatal = c.report(&ValidationError{Flag: live[j].def.Key, Path: "filters", Code: CodeDependencyCycle,
						Reason: fmt.Sprintf("flag dependencies form a cycle: %v", names), Fatal: true})
				}
			}
			return
		}
		state[i] = visiting
		stack = append(stack, i)
		for _, d := range live[i].deps {
			visit(d, stack)
		}
		state[i] = done
		sorted = append(sorted, i)
	}
	for i := range live {
		visit(i, nil)
	}
	pos := make([]int, len(live))
	s := c.set
	s.flags = make([]*compiledFlag, len(sorted))
	for p, i := range sorted {
		pos[i] = p
		s.flags[p] = live[i]
		s.byKey[live[i].def.Key] = p
	}
	// Remap dependency indexes (kept in every matcher) to set positions.
	remap := func(conds []compiledCond) {
		for ci := range conds {
			for fi := range conds[ci].filters {
				m := &conds[ci].filters[fi]
				if m.kind == kindFlag && m.dep >= 0 {
					m.dep = pos[m.dep]
				}
			}
		}
	}
	for _, cf := range s.flags {
		remap(cf.conds)
		remap(cf.super)
		for k, d := range cf.deps {
			cf.deps[k] = pos[d]
		}
	}
	for _, cf := range s.flags {
		if cf.fatal != nil && cf.def.Active { // an inactive flag is disabled, never failed
			cf.info.Invalid = cf.fatal.Code
		}
	}
	// Transitive closure in set order; a flag's dependencies come first.
	for p, cf := range s.flags {
		seen := map[int]bool{}
		var walk func(int)
		walk = func(i int) {
			for _, d := range s.flags[i].deps {
				if d != p && !seen[d] {
					seen[d] = true
					walk(d)
				}
			}
		}
		walk(p)
		for d := range seen {
			cf.closure = append(cf.closure, d)
		}
		sort.Ints(cf.closure)
		for _, d := range cf.closure {
			cf.info.DependencyChain = append(cf.info.DependencyChain, s.flags[d].def.Key)
			if s.flags[d].timeReliant {
				cf.info.TimeDependent = true
			}
		}
	}
}

// flag compiles one flag's filters.
func (c *compiler) flag(cf *compiledFlag) {
	f := &cf.def
	fl := f.Filters
	rep := func(path, code, reason string, fatal bool) *ValidationError {
		return c.report(&ValidationError{Flag: f.Key, Path: path, Code: code, Reason: reason, Fatal: fatal})
	}
	if fl.AggregationGroupTypeIndex != nil {
		cf.agg = *fl.AggregationGroupTypeIndex
		c.checkGroupType(f.Key, "filters.aggregation_group_type_index", cf.agg)
	}
	switch f.EvaluationRuntime {
	case "", "server", "client", "all":
	default:
		rep("evaluation_runtime", CodeInvalidEvalRuntime, fmt.Sprintf("%q is not server, client or all", f.EvaluationRuntime), false)
	}
	bucketing := f.BucketingIdentifier
	if bucketing == "" {
		bucketing = fl.BucketingIdentifier
	}
	switch bucketing {
	case "", "distinct_id":
	case "device_id":
		cf.byDevice = true
	default:
		rep("bucketing_identifier", CodeInvalidBucketing, fmt.Sprintf("%q is not distinct_id or device_id", bucketing), false)
	}

	// Variants and payloads.
	if fl.Multivariate != nil {
		sum := 0.0
		seen := map[string]bool{}
		for i, v := range fl.Multivariate.Variants {
			path := fmt.Sprintf("filters.multivariate.variants[%d]", i)
			if v.Key == "" {
				rep(path+".key", CodeInvalidKey, "a variant key is empty", false)
			}
			if seen[v.Key] {
				rep(path+".key", CodeDuplicateVariant, fmt.Sprintf("variant %q appears twice", v.Key), false)
			}
			seen[v.Key] = true
			if v.RolloutPercentage < 0 || v.RolloutPercentage > 100 || math.IsNaN(v.RolloutPercentage) {
				rep(path+".rollout_percentage", CodeRolloutOutOfRange, fmt.Sprintf("%v is outside 0-100", v.RolloutPercentage), false)
			}
			lo := sum / 100
			sum += v.RolloutPercentage
			cf.variants = append(cf.variants, v.Key)
			cf.vmin = append(cf.vmin, lo)
			cf.vmax = append(cf.vmax, lo+v.RolloutPercentage/100)
		}
		if len(fl.Multivariate.Variants) > 0 && math.Abs(sum-100) > 1e-9 {
			rep("filters.multivariate.variants", CodeVariantsSum, fmt.Sprintf("variant rollout percentages sum to %v, not 100", sum), false)
		}
	}
	// The variant table uses PostHog's running float sums exactly.
	if len(cf.variants) > 0 {
		run := 0.0
		for i, v := range fl.Multivariate.Variants {
			cf.vmin[i] = run
			run += v.RolloutPercentage / 100
			cf.vmax[i] = run
		}
	}
	cf.payloads = fl.Payloads
	cf.payloadTrue = fl.Payloads["true"]

	isVariant := func(v string) bool {
		for _, k := range cf.variants {
			if k == v {
				return true
			}
		}
		return false
	}
	compileConds := func(conds []Condition, base string) []compiledCond {
		out := make([]compiledCond, len(conds))
		for i, cond := range conds {
			path := fmt.Sprintf("%s[%d]", base, i)
			cc := compiledCond{agg: cf.agg, hasRollout: cond.RolloutPercentage != nil, desc: fmt.Sprintf("Matched condition set %d", i+1)}
			if cond.Aggregation.Set {
				cc.agg = -1
				if cond.Aggregation.Index != nil {
					cc.agg = *cond.Aggregation.Index
					c.checkGroupType(f.Key, path+".aggregation_group_type_index", cc.agg)
				}
			}
			if cond.RolloutPercentage != nil {
				r := *cond.RolloutPercentage
				if r < 0 || r > 100 || math.IsNaN(r) {
					rep(path+".rollout_percentage", CodeRolloutOutOfRange, fmt.Sprintf("%v is outside 0-100", r), false)
				}
				cc.rollout = r / 100
			}
			if cond.Variant != nil && *cond.Variant != "" {
				if isVariant(*cond.Variant) {
					cc.variant = *cond.Variant
				} else {
					rep(path+".variant", CodeUnknownVariant, fmt.Sprintf("variant %q is not a variant of the flag; the variant hash is used", *cond.Variant), false)
				}
			}
			for j, pf := range cond.Properties {
				m := c.filter(cf, &pf, fmt.Sprintf("%s.properties[%d]", path, j), cc.agg)
				cc.filters = append(cc.filters, m)
			}
			out[i] = cc
		}
		return out
	}
	cf.conds = compileConds(fl.Groups, "filters.groups")
	cf.super = compileConds(fl.SuperGroups, "filters.super_groups")
	if fl.FeatureEnrollment {
		cf.enrollKey = "$feature_enrollment/" + f.Key
		cf.info.PersonProperties = append(cf.info.PersonProperties, cf.enrollKey)
	}
	for _, sc := range fl.SuperGroups {
		if len(sc.Properties) > 0 {
			cf.info.PersonProperties = append(cf.info.PersonProperties, sc.Properties[0].Key)
		}
	}
	if h := fl.Holdout; h != nil {
		p := h.ExclusionPercentage
		if p < 0 || p > 100 || math.IsNaN(p) {
			rep("filters.holdout.exclusion_percentage", CodeInvalidHoldout, fmt.Sprintf("%v is outside 0-100; it is clamped", p), false)
			p = math.Max(0, math.Min(100, p))
			if math.IsNaN(h.ExclusionPercentage) {
				p = 0
			}
		}
		cf.holdout = append(cf.holdout, compiledCond{rollout: p / 100, hasRollout: true, variant: "holdout-" + strconv.FormatInt(h.ID, 10), agg: cf.agg})
	}
	for i, hg := range fl.HoldoutGroups {
		r := 100.0
		if hg.RolloutPercentage != nil {
			r = *hg.RolloutPercentage
		}
		v := ""
		if hg.Variant != nil {
			v = *hg.Variant
		}
		if v == "" {
			rep(fmt.Sprintf("filters.holdout_groups[%d].variant", i), CodeInvalidHoldout, "a holdout group needs its holdout-<id> variant", false)
			continue
		}
		cf.holdout = append(cf.holdout, compiledCond{rollout: r / 100, hasRollout: true, variant: v, agg: cf.agg})
	}

	// Overrides.
	for i, o := range f.Overrides {
		path := fmt.Sprintf("overrides[%d]", i)
		ov, ok := c.overrideValue(o.Value, isVariant)
		if !ok {
			rep(path+".value", CodeInvalidOverride, fmt.Sprintf("%s is not true, false or a variant of the flag", string(o.Value)), false)
			continue
		}
		if o.GroupTypeIndex != nil {
			gt := *o.GroupTypeIndex
			c.checkGroupType(f.Key, path+".group_type_index", gt)
			if len(o.DistinctIDs) > 0 {
				rep(path, CodeInvalidOverride, "an override lists distinct_ids or group_keys, not both", false)
			}
			if cf.overrideGrp == nil {
				cf.overrideGrp = map[int]map[string]overrideValue{}
			}
			if cf.overrideGrp[gt] == nil {
				cf.overrideGrp[gt] = map[string]overrideValue{}
			}
			for _, k := range o.GroupKeys {
				cf.overrideGrp[gt][k] = ov
			}
			continue
		}
		if len(o.GroupKeys) > 0 {
			rep(path+".group_type_index", CodeInvalidOverride, "group_keys need a group_type_index", false)
		}
		if cf.overrideDID == nil {
			cf.overrideDID = map[string]overrideValue{}
		}
		for _, d := range o.DistinctIDs {
			cf.overrideDID[d] = ov
		}
	}

	// What the flag reads.
	info := &cf.info
	info.PersonProperties = uniqueStrings(info.PersonProperties)
	info.Cohorts = uniqueInt64s(info.Cohorts)
	for gt, keys := range info.GroupProperties {
		info.GroupProperties[gt] = uniqueStrings(keys)
	}
	aggs := map[int]bool{}
	for _, list := range [][]compiledCond{cf.conds, cf.super, cf.holdout} {
		for _, cc := range list {
			aggs[cc.agg] = true
		}
	}
	if len(cf.conds) == 0 {
		aggs[cf.agg] = true
	}
	if cf.enrollKey != "" {
		aggs[-1] = true
	}
	for a := range aggs {
		info.Aggregations = append(info.Aggregations, a)
	}
	sort.Ints(info.Aggregations)
	info.ByDevice = cf.byDevice
	info.DistinctIDOverrides = len(cf.overrideDID) > 0
	for gt := range cf.overrideGrp {
		info.GroupOverrides = append(info.GroupOverrides, gt)
	}
	sort.Ints(info.GroupOverrides)
	gts := map[int]bool{}
	for _, list := range [][]compiledCond{cf.conds, cf.super} {
		for _, cc := range list {
			if cc.agg >= 0 {
				gts[cc.agg] = true
			}
		}
	}
	for gt := range gts {
		info.GroupTypes = append(info.GroupTypes, gt)
	}
	sort.Ints(info.GroupTypes)
	info.TimeDependent = cf.timeReliant
}

func (c *compiler) overrideValue(raw json.RawMessage, isVariant func(string) bool) (overrideValue, bool) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return overrideValue{}, false
	}
	switch x := v.(type) {
	case bool:
		return overrideValue{enabled: x}, true
	case string:
		if isVariant(x) {
			return overrideValue{enabled: true, variant: x}, true
		}
	}
	return overrideValue{}, false
}

func (c *compiler) checkGroupType(flag, path string, gt int) {
	if gt < 0 || gt >= MaxGroupTypes {
		c.report(&ValidationError{Flag: flag, Path: path, Code: CodeInvalidAggregation, Reason: fmt.Sprintf("group type index %d is outside 0..%d", gt, MaxGroupTypes-1), Fatal: true})
		return
	}
	if _, ok := c.set.groupNames[gt]; !ok {
		c.report(&ValidationError{Flag: flag, Path: path, Code: CodeUnknownGroupType, Reason: fmt.Sprintf("group type index %d has no name in the group type mapping", gt)})
	}
}

// filter compiles one filter of a flag condition. agg is the condition's
// aggregation, for group filters without a group_type_index.
func (c *compiler) filter(cf *compiledFlag, pf *PropertyFilter, path string, agg int) matcher {
	m, err := c.compileFilter(pf, path, agg, cf.def.Key, 0)
	if err != nil && err.Fatal && cf.fatal == nil {
		cf.fatal = err
	}
	info := &cf.info
	if m.invalid {
		info.UnparsableFilters = true
	}
	switch m.kind {
	case kindPerson:
		info.PersonProperties = append(info.PersonProperties, m.key)
	case kindGroup:
		if info.GroupProperties == nil {
			info.GroupProperties = map[int][]string{}
		}
		gt := m.groupType
		if gt < 0 {
			gt = agg
		}
		info.GroupProperties[gt] = append(info.GroupProperties[gt], m.key)
	case kindCohort:
		if err != nil {
			break
		}
		info.Cohorts = append(info.Cohorts, m.cohort)
		if co := c.set.cohorts[m.cohort]; co != nil {
			info.Cohorts = append(info.Cohorts, co.nested...)
			info.PersonProperties = append(info.PersonProperties, co.props...)
			if co.timeDep {
				cf.timeReliant = true
			}
			if co.unparsable {
				info.UnparsableFilters = true
			}
			if co.behavioral {
				info.Behavioral = true
			}
			if co.fatal != nil && cf.fatal == nil {
				cf.fatal = co.fatal
			}
		} else {
			c.report(&ValidationError{Flag: cf.def.Key, Path: path + ".value", Code: CodeUnknownCohort, Reason: fmt.Sprintf("cohort %d is not defined; membership is asked of the cohort source", m.cohort)})
		}
	case kindFlag:
		if m.depKey != "" {
			if ix, ok := c.flagIx[m.depKey]; ok {
				m.dep = ix
				cf.deps = append(cf.deps, ix)
			} else if err == nil {
				c.report(&ValidationError{Flag: cf.def.Key, Path: path + ".key", Code: CodeUnknownDependency, Reason: fmt.Sprintf("flag %q does not exist (or is deleted); the flag evaluates to missing_dependency", m.depKey)})
			}
		}
	}
	if m.isRel {
		cf.timeReliant = true
	}
	return m
}

// compileFilter compiles a filter; flag is the flag key for errors (empty
// inside a cohort, then cohort is the cohort id).
func (c *compiler) compileFilter(pf *PropertyFilter, path string, agg int, flag string, cohort int64) (matcher, *ValidationError) {
	m := matcher{key: pf.Key, groupType: -1, negate: pf.Negation, dep: -1}
	fail := func(sub, code, reason string, fatal bool) *ValidationError {
		return c.report(&ValidationError{Flag: flag, Cohort: cohort, Path: path + sub, Code: code, Reason: reason, Fatal: fatal})
	}
	// never marks a filter whose value the operator cannot parse. PostHog's
	// server counts it as no match, one filter at a time and negated
	// operators included, and evaluates the rest of the flag; its SDKs
	// cannot decide it. A warning, not a fatal problem.
	never := func(code, reason string) (matcher, *ValidationError) {
		m.invalid = true
		return m, fail(".value", code, reason+"; the filter never matches", false)
	}
	opName := pf.Operator
	if opName == "" {
		opName = "exact"
	}
	op, known := operators[opName]
	switch pf.Type {
	case "person", "person_metadata", "":
		m.kind = kindPerson
	case "group":
		m.kind = kindGroup
		if pf.GroupTypeIndex != nil {
			m.groupType = *pf.GroupTypeIndex
			if flag != "" {
				c.checkGroupType(flag, path+".group_type_index", m.groupType)
			}
		} else if agg < 0 {
			return m, fail(".group_type_index", CodeInvalidAggregation, "a group filter needs a group_type_index in a person condition", true)
		}
	case "cohort":
		m.kind = kindCohort
		if pf.Operator == "" || opName == "exact" {
			op, known = opInCohort, true
		}
		if op != opInCohort && op != opNotInCohort {
			return m, fail(".operator", CodeInvalidOperator, fmt.Sprintf("cohort filters take in or not_in, not %q", opName), true)
		}
		m.op = op
		id, ok := parseCohortID(pf.Value)
		if !ok {
			return m, fail(".value", CodeInvalidValue, fmt.Sprintf("cohort id %s is not an integer", string(pf.Value)), true)
		}
		m.cohort = id
		return m, nil
	case "behavioral":
		m.kind = kindBehavioral
		if flag != "" {
			return m, fail(".type", CodeInvalidPropertyType, "behavioral filters are allowed only in cohorts", true)
		}
		return m, c.compileBehavior(&m, pf, path, cohort)
	case "flag":
		m.kind = kindFlag
		if op != opFlagEvaluatesTo || !known {
			return m, fail(".operator", CodeInvalidOperator, fmt.Sprintf("flag filters take flag_evaluates_to, not %q", opName), true)
		}
		m.op = op
		m.depKey = pf.Key
		m.chainEmpty = pf.DependencyChain != nil && len(pf.DependencyChain) == 0
		if pf.Key == "" {
			return m, fail(".key", CodeInvalidValue, "a flag filter needs the key of the flag it depends on", true)
		}
		v, err := decodeValue(pf.Value)
		switch x := v.(type) {
		case bool:
			m.depBool = x
		case string:
			m.depIsStr, m.depStr = true, x
		default:
			err = fmt.Errorf("not a bool or a string")
		}
		if err != nil {
			return m, fail(".value", CodeInvalidValue, "flag_evaluates_to takes true, false or a variant key", true)
		}
		return m, nil
	default:
		return m, fail(".type", CodeInvalidPropertyType, fmt.Sprintf("unknown filter type %q", pf.Type), true)
	}
	if !known || op == opInCohort || op == opNotInCohort || op == opFlagEvaluatesTo {
		return m, fail(".operator", CodeInvalidOperator, fmt.Sprintf("unknown operator %q for a %s filter", opName, pf.Type), true)
	}
	m.op = op
	if pf.Key == "" {
		return m, fail(".key", CodeInvalidKey, "the property key is empty", true)
	}
	v, err := decodeValue(pf.Value)
	if err != nil {
		return m, fail(".value", CodeInvalidValue, "the value is not valid JSON", true)
	}
	switch op {
	case opExact, opIsNot:
		list, isList := v.([]any)
		if isList && len(list) == 0 || c.set.pmv < 2 && isBoolish(v) {
			m.boolRule, m.truthy = true, truthy(v)
		} else if isList {
			for _, e := range list {
				m.list = append(m.list, lowerFull(stringify(e)))
			}
		} else {
			m.str = lowerFull(stringify(v))
		}
	case opIsSet, opIsNotSet:
	case opIContains, opNotIContains, opStartsWith, opNotStartsWith, opEndsWith, opNotEndsWith:
		m.str = asciiLowerString(stringify(v))
	case opIContainsMulti, opNotIContainsMulti:
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for _, e := range list {
			m.list = append(m.list, asciiLowerString(stringify(e)))
		}
	case opRegex, opNotRegex:
		pattern := stringify(v)
		re, err := regexp.Compile(pattern)
		if err != nil {
			fail(".value", CodeInvalidRegex, fmt.Sprintf("invalid regex: %v; the filter matches nothing", err), false)
			break
		}
		if n := regexProgramSize(pattern); n > MaxRegexProgram {
			return never(CodeRegexTooLarge, fmt.Sprintf("the regex compiles to %d instructions, more than %d", n, MaxRegexProgram))
		}
		m.re = re
	case opGT, opGTE, opLT, opLTE:
		n, ok := parseNumber(v)
		if !ok {
			return never(CodeInvalidNumber, fmt.Sprintf("%s is not a number", string(pf.Value)))
		}
		m.num = n
	case opBetween, opNotBetween:
		list, ok := v.([]any)
		if !ok || len(list) != 2 {
			return never(CodeInvalidNumber, "between takes [min, max]")
		}
		lo, ok1 := parseNumber(list[0])
		hi, ok2 := parseNumber(list[1])
		if !ok1 || !ok2 {
			return never(CodeInvalidNumber, "between takes two numbers")
		}
		if lo > hi {
			return never(CodeInvalidNumber, fmt.Sprintf("between takes [min, max] with min <= max, not %s", string(pf.Value)))
		}
		m.num, m.num2 = lo, hi
	case opDateBefore, opDateAfter, opDateExact:
		s, ok := v.(string)
		if !ok {
			return never(CodeInvalidDate, fmt.Sprintf("%s is not a date", string(pf.Value)))
		}
		if looksRelative(s) {
			rel, ok := parseRelativeDate(s)
			if !ok {
				return never(CodeInvalidDate, fmt.Sprintf("%q is not a relative date (-<n><h|d|w|m|y>, n < 10000)", s))
			}
			m.rel, m.isRel = rel, true
			break
		}
		t, ok := parseDate(s, c.set.loc)
		if !ok {
			return never(CodeInvalidDate, fmt.Sprintf("%q is not an ISO-8601 date", s))
		}
		m.date = t
	case opSemverEQ, opSemverNEQ, opSemverGT, opSemverGTE, opSemverLT, opSemverLTE, opSemverTilde, opSemverCaret:
		sv, _, ok := parseSemver(stringify(v))
		if !ok {
			return never(CodeInvalidSemver, fmt.Sprintf("%s is not a semantic version", string(pf.Value)))
		}
		m.sem = sv
		switch op {
		case opSemverTilde:
			m.rng = tildeRange(sv)
		case opSemverCaret:
			m.rng = caretRange(sv)
		}
	case opSemverWildcard:
		rng, ok := wildcardRange(stringify(v))
		if !ok {
			return never(CodeInvalidSemver, fmt.Sprintf("%s is not a version pattern (1.*, 1.2.*)", string(pf.Value)))
		}
		m.rng = rng
	}
	return m, nil
}

// MaxRegexProgram bounds the compiled size of a regex filter, in
// instructions of Go's RE2 program (regexp/syntax). RE2 matches in time
// linear in the input, but the factor is the program's size: (.*a){1000}
// compiles to some 5000 instructions, and against a long property value one
// match took seconds. Request property values are bounded too (evalsvc), so
// one match is bounded by both. Common patterns (an email domain, an IP
// address, an alternation of some dozen ids) stay far below it.
const MaxRegexProgram = 1000

// regexProgramSize is the number of instructions pattern compiles to, as
// regexp compiles it (Perl syntax, simplified); a pattern that does not
// parse is 0 (regexp.Compile reports it).
func regexProgramSize(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// decodeValue decodes a filter value, numbers as json.Number. Absent is nil.
func decodeValue(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func parseCohortID(raw json.RawMessage) (int64, bool) {
	v, err := decodeValue(raw)
	if err != nil {
		return 0, false
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	default:
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// cohort compiles cohort id (once), detecting cohort-in-cohort cycles.
func (c *compiler) cohort(id int64) *compiledCohort {
	if co, ok := c.set.cohorts[id]; ok {
		return co
	}
	raw, ok := c.raw[id]
	if !ok {
		return nil
	}
	if c.state[id] == 1 {
		return nil // a cycle; the caller reports it
	}
	c.state[id] = 1
	co := &compiledCohort{id: id, kind: raw.Kind}
	if co.kind == "" {
		co.kind = CohortDynamic
	}
	switch co.kind {
	case CohortDynamic, CohortBehavioral:
		// Behavioural filters may sit in any cohort's tree, as in
		// PostHog; the kind only says that one does.
		co.root = c.cohortGroup(co, &raw.Filters, "filters")
	case CohortStatic:
	default:
		co.fatal = c.report(&ValidationError{Cohort: id, Path: "kind", Code: CodeInvalidValue, Reason: fmt.Sprintf("unknown cohort kind %q", raw.Kind), Fatal: true})
	}
	co.props = uniqueStrings(co.props)
	co.nested = uniqueInt64s(co.nested)
	c.state[id] = 2
	c.set.cohorts[id] = co
	return co
}

func (c *compiler) cohortGroup(co *compiledCohort, g *PropertyGroup, path string) cohortNode {
	n := cohortNode{}
	switch g.Type {
	case "AND", "and", "":
		n.and = true
	case "OR", "or":
	default:
		co.fatal = c.report(&ValidationError{Cohort: co.id, Path: path + ".type", Code: CodeInvalidValue, Reason: fmt.Sprintf("group type %q is not AND or OR", g.Type), Fatal: true})
	}
	for i, v := range g.Values {
		p := fmt.Sprintf("%s.values[%d]", path, i)
		switch {
		case v.Group != nil:
			n.children = append(n.children, c.cohortGroup(co, v.Group, p))
		case v.Filter != nil:
			m, err := c.compileFilter(v.Filter, p, -1, "", co.id)
			if err != nil && err.Fatal && co.fatal == nil {
				co.fatal = err
			}
			co.unparsable = co.unparsable || m.invalid
			switch m.kind {
			case kindPerson:
				co.props = append(co.props, m.key)
			case kindCohort:
				if m.cohort == co.id || c.state[m.cohort] == 1 {
					co.fatal = c.report(&ValidationError{Cohort: co.id, Path: p + ".value", Code: CodeCohortCycle, Reason: fmt.Sprintf("cohort %d refers back to itself through cohort %d", co.id, m.cohort), Fatal: true})
					break
				}
				co.nested = append(co.nested, m.cohort)
				if inner := c.cohort(m.cohort); inner != nil {
					co.props = append(co.props, inner.props...)
					co.nested = append(co.nested, inner.nested...)
					co.timeDep = co.timeDep || inner.timeDep
					co.unparsable = co.unparsable || inner.unparsable
					co.behavioral = co.behavioral || inner.behavioral
					if inner.fatal != nil && co.fatal == nil {
						co.fatal = inner.fatal
					}
				}
			case kindBehavioral:
				co.timeDep, co.behavioral = true, true
			case kindFlag:
				co.fatal = c.report(&ValidationError{Cohort: co.id, Path: p, Code: CodeInvalidPropertyType, Reason: "flag filters are not allowed in cohorts", Fatal: true})
			case kindGroup:
				co.fatal = c.report(&ValidationError{Cohort: co.id, Path: p, Code: CodeInvalidPropertyType, Reason: "group filters are not allowed in cohorts", Fatal: true})
			}
			if m.isRel {
				co.timeDep = true
			}
			mm := m
			n.children = append(n.children, cohortNode{filter: &mm})
		}
	}
	return n
}

func uniqueStrings(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	sort.Strings(in)
	out := in[:1]
	for _, s := range in[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

func uniqueInt64s(in []int64) []int64 {
	if len(in) == 0 {
		return nil
	}
	sort.Slice(in, func(i, j int) bool { return in[i] < in[j] })
	out := in[:1]
	for _, s := range in[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

// Len returns the number of flags in the set (deleted flags are left out).
func (s *Set) Len() int { return len(s.flags) }

// Keys returns the flag keys in evaluation order.
func (s *Set) Keys() []string {
	out := make([]string, len(s.flags))
	for i, f := range s.flags {
		out[i] = f.def.Key
	}
	return out
}

// Flag returns the definition of a flag.
func (s *Set) Flag(key string) (Flag, bool) {
	i, ok := s.byKey[key]
	if !ok {
		return Flag{}, false
	}
	return s.flags[i].def, true
}

// Info returns what a flag reads.
func (s *Set) Info(key string) (FlagInfo, bool) {
	i, ok := s.byKey[key]
	if !ok {
		return FlagInfo{}, false
	}
	return s.flags[i].info, true
}

// GroupTypeIndex returns the index of a group type name.
func (s *Set) GroupTypeIndex(name string) (int, bool) {
	i, ok := s.groupIndex[name]
	return i, ok
}

// GroupTypeName returns the name of a group type index.
func (s *Set) GroupTypeName(i int) (string, bool) {
	n, ok := s.groupNames[i]
	return n, ok
}
