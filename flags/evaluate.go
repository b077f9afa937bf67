package flags

import (
	"encoding/json"
	"errors"
	"time"
)

// Context is what one evaluation knows about the subject.
type Context struct {
	// DistinctID is the person's distinct id; the default bucketing value
	// and the implicit person property "distinct_id".
	DistinctID string
	// DeviceID is used for flags bucketed by device_id.
	DeviceID string
	// PersonProperties are the person's properties, request overrides
	// already applied. Values are as encoding/json decodes them with
	// UseNumber (numbers as json.Number, keeping their text).
	PersonProperties map[string]any
	// Groups is indexed by group type index; a group with an empty Key is
	// not part of the request. See Set.GroupTypeIndex for names.
	Groups []Group
	// Cohorts answers membership of cohorts the set does not evaluate
	// itself (static, behavioural, unknown). Nil means "not a member" (or
	// inconclusive when Partial).
	Cohorts CohortSource
	// Events is the subject's counted events, for behavioural filters (the
	// stored row's counters: package flags/counters). Nil means none (or
	// inconclusive when Partial).
	Events EventHistory
	// HashKeyOverrides maps a flag key to the hash key that flags with
	// experience continuity bucket on instead of the distinct id.
	HashKeyOverrides map[string]string
	// Now is the evaluation time; the zero value means time.Now().
	Now time.Time
	// Partial says the properties are only what a caller passed, not the
	// stored person: a missing property is then inconclusive.
	Partial bool
	// Deadline, when not zero, bounds the evaluation: the engine reads
	// Clock at the first flag and then every DeadlineCheckEvery filters,
	// and once Clock's time is past Deadline every flag not yet decided
	// fails with deadline_exceeded (ErrInconclusive). The flags already
	// decided keep their results.
	Deadline time.Time
	// Clock is read for the Deadline; nil is time.Now.
	Clock func() time.Time
}

// DeadlineCheckEvery is how many filters (and flags) the engine evaluates
// between two reads of Context.Clock when a Deadline is set.
const DeadlineCheckEvery = 16

// Group is one group of the request.
type Group struct {
	Key        string
	Properties map[string]any
	// Events is the group's counted events (the stored group's counters),
	// read by the behavioural filters of cohorts used by a condition that
	// aggregates on this group type. Nil means none.
	Events EventHistory
}

// CohortSource answers cohort membership for cohorts the engine does not
// evaluate from properties. validUntil is when the answer may change with
// nothing else changing (zero: not by time alone). An unknown cohort is
// ErrCohortNotFound.
type CohortSource interface {
	InCohort(id int64) (member bool, validUntil time.Time, err error)
}

// ReasonCode is PostHog's reason.code.
type ReasonCode string

// Reason codes, PostHog's and Vexil's own ReasonOverride.
const (
	ReasonConditionMatch    ReasonCode = "condition_match"
	ReasonNoConditionMatch  ReasonCode = "no_condition_match"
	ReasonOutOfRolloutBound ReasonCode = "out_of_rollout_bound"
	ReasonNoGroupType       ReasonCode = "no_group_type"
	ReasonSuperCondition    ReasonCode = "super_condition_value"
	ReasonHoldout           ReasonCode = "holdout_condition_value"
	ReasonFlagDisabled      ReasonCode = "flag_disabled"
	ReasonMissingDependency ReasonCode = "missing_dependency"
	// ReasonOverride: an explicit override listed the subject.
	ReasonOverride ReasonCode = "override"
	// ReasonError: the flag could not be decided; see Result.Err.
	ReasonError ReasonCode = "error"
)

// rank orders non-matching reasons, most informative first.
func (r ReasonCode) rank() int {
	switch r {
	case ReasonOutOfRolloutBound:
		return 4
	case ReasonNoConditionMatch:
		return 3
	case ReasonNoGroupType:
		return 2
	}
	return 0
}

// Reason says why a flag has its value.
type Reason struct {
	Code ReasonCode
	// ConditionIndex is the 0-based condition, or -1 for none.
	ConditionIndex int
	Description    string
}

// Result is one flag's evaluation.
type Result struct {
	Key     string
	FlagID  int64
	Version int64
	Enabled bool
	// Variant is the variant key, empty for a boolean value.
	Variant string
	// Payload is the stored payload of the value, nil for none.
	Payload json.RawMessage
	Reason  Reason
	// Err is set when the flag could not be decided (Enabled is then
	// false): an *EvalError wrapping ErrInconclusive or
	// ErrInvalidDefinition.
	Err error
	// ValidUntil is the first instant at which the result may change with
	// nothing else changing; zero means only a change of definitions or
	// properties can change it.
	ValidUntil time.Time
}

var (
	descNoMatch    = "No matching condition set"
	descOutOfRoll  = "Out of rollout bound"
	descNoGroup    = "No group type"
	descDisabled   = "Flag is disabled"
	descHoldout    = "Holdout condition value"
	descSuper      = "Super condition value"
	descMissingDep = "Missing dependency"
	descOverride   = "Override"
	descError      = "Could not evaluate"
)

// tri is a three-valued match.
type tri int8

const (
	no tri = iota
	yes
	unknown
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

func (t tri) not() tri {
	switch t {
	case yes:
		return no
	case no:
		return yes
	}
	return unknown
}

// evaluator is the per-call state, pooled per Set.
type evaluator struct {
	set     *Set
	ctx     *Context
	now     time.Time
	res     []Result // by set index
	stamp   []uint32 // res[i] is valid for this call when stamp[i] == gen
	gen     uint32
	need    []uint32
	needGen uint32
	// steps counts flags and filters since the call began, for the
	// deadline checks; late is set once the deadline has passed.
	steps uint32
	late  bool
	// cohortAgg is 1 + the aggregation of the condition whose cohort
	// filter is being evaluated (0: persons): a behavioural filter in it
	// reads that group's events.
	cohortAgg int

	flagState
}

// flagState is the state of the flag being evaluated.
type flagState struct {
	validUntil time.Time
	incCode    string
	// abort: in partial mode, something needs the server (a static
	// cohort, an unknown group type...): the whole flag is inconclusive,
	// as PostHog's SDKs decide, whatever later conditions say.
	abort      bool
	depMissing bool
	hashID     string
	hashVal    float64
	hashOK     bool
}

func (s *Set) getEvaluator(c *Context) *evaluator {
	e, _ := s.pool.Get().(*evaluator)
	if e == nil {
		e = &evaluator{set: s, res: make([]Result, len(s.flags)), stamp: make([]uint32, len(s.flags)), need: make([]uint32, len(s.flags))}
	}
	e.ctx = c
	e.steps, e.late = 0, false
	e.now = c.Now
	if e.now.IsZero() {
		e.now = time.Now()
	}
	e.gen++
	if e.gen == 0 { // wrapped: clear the stamps
		clear(e.stamp)
		e.gen = 1
	}
	return e
}

func (s *Set) putEvaluator(e *evaluator) {
	e.ctx = nil
	s.pool.Put(e)
}

// Evaluate evaluates every flag of the set and returns the results in
// evaluation order.
func (s *Set) Evaluate(c *Context) []Result {
	return s.AppendEvaluate(make([]Result, 0, len(s.flags)), c, nil)
}

// EvaluateKeys evaluates only the named flags (and what they depend on) and
// returns their results in evaluation order. Unknown keys are left out.
func (s *Set) EvaluateKeys(c *Context, keys []string) []Result {
	return s.AppendEvaluate(make([]Result, 0, len(keys)), c, keys)
}

// AppendEvaluate appends results to out: every flag when keys is nil,
// otherwise only the named ones. It allocates nothing for boolean flags
// once out has room.
func (s *Set) AppendEvaluate(out []Result, c *Context, keys []string) []Result {
	e := s.getEvaluator(c)
	defer s.putEvaluator(e)
	if keys == nil {
		for i := range s.flags {
			e.eval(i)
		}
		return append(out, e.res...)
	}
	e.needGen++
	if e.needGen == 0 {
		clear(e.need)
		e.needGen = 1
	}
	for _, k := range keys {
		if i, ok := s.byKey[k]; ok {
			e.need[i] = e.needGen
		}
	}
	for i := range s.flags {
		if e.need[i] == e.needGen {
			e.eval(i) // dependencies are evaluated on demand

			out = append(out, e.res[i])
		}
	}
	return out
}

// eval evaluates flag i once per call; its dependencies are already done
// (set order) or evaluated on demand.
func (e *evaluator) eval(i int) {
	if e.stamp[i] == e.gen {
		return
	}
	saved := e.flagState // a dependency evaluated on demand must not clobber its dependent
	e.res[i] = e.flag(e.set.flags[i])
	e.flagState = saved
	e.stamp[i] = e.gen
}

func (e *evaluator) flag(f *compiledFlag) Result {
	r := Result{Key: f.def.Key, FlagID: f.def.ID, Version: f.def.Version}
	e.flagState = flagState{}
	c := e.ctx

	// An inactive flag is disabled whatever its filters hold.
	if !f.def.Active {
		r.Reason = Reason{Code: ReasonFlagDisabled, ConditionIndex: -1, Description: descDisabled}
		return r
	}
	if e.overdue() {
		return e.fail(r, &EvalError{Flag: f.def.Key, Code: CodeDeadlineExceeded, err: ErrInconclusive})
	}
	if f.fatal != nil {
		return e.fail(r, &EvalError{Flag: f.def.Key, Code: f.fatal.Code, Detail: f.fatal.Reason, err: ErrInvalidDefinition})
	}
	personID := c.DistinctID
	if f.def.EnsureExperienceContinuity {
		if hk, ok := c.HashKeyOverrides[f.def.Key]; ok && hk != "" {
			personID = hk
		} else if c.Partial {
			return e.fail(r, &EvalError{Flag: f.def.Key, Code: CodeExperienceContinuity, Detail: "experience continuity needs the server's hash key", err: ErrInconclusive})
		}
	} else if f.byDevice && c.DeviceID != "" {
		personID = c.DeviceID
	}

	// Overrides come first.
	if f.overrideDID != nil {
		if ov, ok := f.overrideDID[c.DistinctID]; ok {
			return e.overridden(f, r, ov)
		}
	}
	for gt, keys := range f.overrideGrp {
		if gt < len(c.Groups) && c.Groups[gt].Key != "" {
			if ov, ok := keys[c.Groups[gt].Key]; ok {
				return e.overridden(f, r, ov)
			}
		}
	}

	// Holdout.
	for _, h := range f.holdout {
		id, ok := e.bucketID(h.agg, personID)
		if !ok {
			continue
		}
		if h.rollout >= 1 || Hash("holdout", "-", id, "") <= h.rollout {
			r.Enabled, r.Variant = true, h.variant
			r.Payload = f.payloads[h.variant]
			r.Reason = Reason{Code: ReasonHoldout, ConditionIndex: -1, Description: descHoldout}
			return r
		}
	}

	// Early access enrollment.
	if f.enrollKey != "" {
		if v, ok := c.PersonProperties[f.enrollKey]; ok {
			return e.superValue(f, r, truthy(v), personID, nil)
		}
	}
	for i := range f.super {
		sc := &f.super[i]
		if len(sc.filters) == 0 {
			continue
		}
		if _, ok := c.PersonProperties[sc.filters[0].key]; !ok {
			continue
		}
		switch e.condition(f, sc, personID) {
		case condMatch:
			return e.superValue(f, r, true, personID, sc)
		case condUnknown:
			return e.fail(r, e.inconclusive(f))
		default:
			return e.superValue(f, r, false, personID, sc)
		}
	}

	best := Reason{Code: ReasonNoConditionMatch, ConditionIndex: -1, Description: descNoMatch}
	bestRank := 0
	sawUnknown := false
	for i := range f.conds {
		cc := &f.conds[i]
		res := e.condition(f, cc, personID)
		if e.abort {
			return e.fail(r, e.inconclusive(f))
		}
		switch res {
		case condMatch:
			r.Enabled = true
			r.Variant = e.variant(f, cc, personID)
			r.Payload = e.payload(f, r.Variant)
			r.Reason = Reason{Code: ReasonConditionMatch, ConditionIndex: i, Description: cc.desc}
			r.ValidUntil = e.validUntil
			return r
		case condUnknown:
			sawUnknown = true
		case condOutOfRollout:
			if ReasonOutOfRolloutBound.rank() > bestRank {
				best = Reason{Code: ReasonOutOfRolloutBound, ConditionIndex: i, Description: descOutOfRoll}
				bestRank = ReasonOutOfRolloutBound.rank()
			}
			if f.def.Filters.EarlyExit {
				goto done
			}
		case condNoMatch:
			if ReasonNoConditionMatch.rank() > bestRank {
				best = Reason{Code: ReasonNoConditionMatch, ConditionIndex: i, Description: descNoMatch}
				bestRank = ReasonNoConditionMatch.rank()
			}
		case condNoGroup:
			if ReasonNoGroupType.rank() > bestRank {
				best = Reason{Code: ReasonNoGroupType, ConditionIndex: -1, Description: descNoGroup}
				bestRank = ReasonNoGroupType.rank()
			}
		}
	}
done:
	if sawUnknown {
		return e.fail(r, e.inconclusive(f))
	}
	if e.depMissing {
		best = Reason{Code: ReasonMissingDependency, ConditionIndex: -1, Description: descMissingDep}
	}
	if best.Code == ReasonNoConditionMatch && bestRank == 0 {
		best.ConditionIndex = -1
	}
	r.Reason = best
	r.ValidUntil = e.validUntil
	return r
}

func (e *evaluator) fail(r Result, err *EvalError) Result {
	r.Enabled, r.Variant, r.Payload = false, "", nil
	r.Err = err
	r.Reason = Reason{Code: ReasonError, ConditionIndex: -1, Description: descError}
	// Time alone can decide a failed flag too: a relative date that stops
	// matching rules out the condition that held the unreadable filter.
	r.ValidUntil = e.validUntil
	return r
}

func (e *evaluator) inconclusive(f *compiledFlag) *EvalError {
	code := e.incCode
	if code == "" {
		code = CodeMissingContext
	}
	return &EvalError{Flag: f.def.Key, Code: code, err: ErrInconclusive}
}

func (e *evaluator) overridden(f *compiledFlag, r Result, ov overrideValue) Result {
	r.Enabled, r.Variant = ov.enabled, ov.variant
	if ov.enabled {
		r.Payload = e.payload(f, ov.variant)
	}
	r.Reason = Reason{Code: ReasonOverride, ConditionIndex: -1, Description: descOverride}
	return r
}

func (e *evaluator) superValue(f *compiledFlag, r Result, on bool, personID string, sc *compiledCond) Result {
	r.Reason = Reason{Code: ReasonSuperCondition, ConditionIndex: 0, Description: descSuper}
	if !on {
		r.ValidUntil = e.validUntil
		return r
	}
	r.Enabled = true
	if sc != nil {
		r.Variant = e.variant(f, sc, personID)
	} else {
		r.Variant = e.variant(f, &compiledCond{agg: -1}, personID)
	}
	r.Payload = e.payload(f, r.Variant)
	r.ValidUntil = e.validUntil
	return r
}

func (e *evaluator) payload(f *compiledFlag, variant string) json.RawMessage {
	if variant != "" {
		return f.payloads[variant]
	}
	return f.payloadTrue
}

// bucketID returns the value a condition buckets on: the group key for a
// group aggregation, the person's id otherwise.
func (e *evaluator) bucketID(agg int, personID string) (string, bool) {
	if agg < 0 {
		return personID, true
	}
	if agg < len(e.ctx.Groups) && e.ctx.Groups[agg].Key != "" {
		return e.ctx.Groups[agg].Key, true
	}
	return "", false
}

func (e *evaluator) variant(f *compiledFlag, cc *compiledCond, personID string) string {
	if cc.variant != "" {
		return cc.variant
	}
	if len(f.variants) == 0 {
		return ""
	}
	id, ok := e.bucketID(cc.agg, personID)
	if !ok {
		id = personID
	}
	h := Hash(f.def.Key, ".", id, "variant")
	for i := range f.variants {
		if f.vmin[i] <= h && h < f.vmax[i] {
			return f.variants[i]
		}
	}
	return ""
}

type condResult int8

const (
	condNoMatch condResult = iota
	condMatch
	condOutOfRollout
	condUnknown
	condNoGroup
)

func (e *evaluator) condition(f *compiledFlag, cc *compiledCond, personID string) condResult {
	id, ok := e.bucketID(cc.agg, personID)
	if !ok {
		if e.ctx.Partial && cc.agg >= 0 {
			if _, named := e.set.groupNames[cc.agg]; !named {
				e.setUnknown(CodeUnsupported)
				return condUnknown
			}
		}
		return condNoGroup
	}
	sawUnknown := false
	abort, incCode := e.abort, e.incCode
	for i := range cc.filters {
		if e.overdue() {
			// The flag fails whatever its other conditions would say.
			e.abort, e.incCode = true, CodeDeadlineExceeded
			return condUnknown
		}
		switch e.match(&cc.filters[i], cc.agg) {
		case no:
			// A filter that rules the condition out decides it, whatever
			// another filter could not read (a static cohort, a failed
			// dependency): the server says no too, and posthog-python goes
			// on to the next condition.
			e.abort, e.incCode = abort, incCode
			return condNoMatch
		case unknown:
			sawUnknown = true
		}
	}
	if sawUnknown {
		return condUnknown
	}
	if cc.hasRollout && cc.rollout < 1 {
		if !e.hashOK || e.hashID != id {
			e.hashID, e.hashVal, e.hashOK = id, Hash(f.def.Key, ".", id, ""), true
		}
		if e.hashVal > cc.rollout {
			return condOutOfRollout
		}
	}
	return condMatch
}

// overdue counts one step (a flag or a filter) and reports whether the
// Context's Deadline has passed, reading the clock at the first step and
// then every DeadlineCheckEvery steps. Without a Deadline it is one branch.
func (e *evaluator) overdue() bool {
	c := e.ctx
	if c.Deadline.IsZero() {
		return false
	}
	if e.late {
		return true
	}
	e.steps++
	if e.steps%DeadlineCheckEvery != 1 {
		return false
	}
	now := time.Time{}
	if c.Clock != nil {
		now = c.Clock()
	} else {
		now = time.Now()
	}
	e.late = now.After(c.Deadline)
	return e.late
}

// setUnknown makes a filter inconclusive; any code but missing_context
// makes the whole flag inconclusive (see flagState.abort).
func (e *evaluator) setUnknown(code string) tri {
	e.undecided(code)
	if code != CodeMissingContext {
		e.abort = true
	}
	return unknown
}

// undecided makes a filter inconclusive and lets later conditions still
// decide the flag; the flag's code prefers anything to missing_context.
func (e *evaluator) undecided(code string) tri {
	if e.incCode == "" || code != CodeMissingContext && e.incCode == CodeMissingContext {
		e.incCode = code
	}
	return unknown
}

func (e *evaluator) noteValidUntil(t time.Time) {
	if t.IsZero() {
		return
	}
	if e.validUntil.IsZero() || t.Before(e.validUntil) {
		e.validUntil = t
	}
}

// match evaluates one filter; agg is the condition's aggregation.
func (e *evaluator) match(m *matcher, agg int) tri {
	c := e.ctx
	var v any
	var ok bool
	switch m.kind {
	case kindPerson:
		v, ok = c.PersonProperties[m.key]
		if !ok && m.key == "distinct_id" {
			v, ok = c.DistinctID, true
		}
	case kindGroup:
		gt := m.groupType
		if gt < 0 {
			gt = agg
		}
		if gt < 0 || gt >= len(c.Groups) || c.Groups[gt].Key == "" {
			return no
		}
		g := &c.Groups[gt]
		v, ok = g.Properties[m.key]
		if !ok && m.key == "$group_key" {
			v, ok = g.Key, true
		}
	case kindCohort:
		saved := e.cohortAgg
		if saved == 0 && agg >= 0 {
			e.cohortAgg = agg + 1
		}
		t := e.inCohort(m.cohort)
		e.cohortAgg = saved
		if m.op == opNotInCohort {
			t = t.not()
		}
		return t
	case kindFlag:
		return e.dependency(m)
	case kindBehavioral:
		return e.behavioral(m)
	}
	if m.invalid && c.Partial {
		// The SDKs cannot decide a filter whose value they cannot parse,
		// with or without the property, and try the next condition.
		return e.undecided(CodeUnsupported)
	}
	if !ok {
		if c.Partial {
			return e.setUnknown(CodeMissingContext)
		}
		return triOf(m.op.missingMatches())
	}
	if m.invalid {
		return no // the server's validation error: no match, negated operators too
	}
	return e.compare(m, v)
}

// compare applies an operator to a present property value.
func (e *evaluator) compare(m *matcher, v any) tri {
	switch m.op {
	case opExact, opIsNot:
		return triOf(exactMatch(m, v) == (m.op == opExact))
	case opIsSet:
		return yes
	case opIsNotSet:
		return no
	case opIContains:
		return triOf(containsFold(stringify(v), m.str))
	case opNotIContains:
		return triOf(!containsFold(stringify(v), m.str))
	case opStartsWith:
		return triOf(hasPrefixFold(stringify(v), m.str))
	case opNotStartsWith:
		return triOf(!hasPrefixFold(stringify(v), m.str))
	case opEndsWith:
		return triOf(hasSuffixFold(stringify(v), m.str))
	case opNotEndsWith:
		return triOf(!hasSuffixFold(stringify(v), m.str))
	case opIContainsMulti, opNotIContainsMulti:
		s := stringify(v)
		found := false
		for _, n := range m.list {
			if containsFold(s, n) {
				found = true
				break
			}
		}
		return triOf(found == (m.op == opIContainsMulti))
	case opRegex, opNotRegex:
		if m.re == nil {
			return no // an invalid pattern matches nothing, negated or not
		}
		return triOf(m.re.MatchString(stringify(v)) == (m.op == opRegex))
	case opGT, opGTE, opLT, opLTE:
		n, ok := parseNumber(v)
		if !ok {
			return no
		}
		switch m.op {
		case opGT:
			return triOf(n > m.num)
		case opGTE:
			return triOf(n >= m.num)
		case opLT:
			return triOf(n < m.num)
		default:
			return triOf(n <= m.num)
		}
	case opBetween, opNotBetween:
		n, ok := parseNumber(v)
		if !ok {
			return no
		}
		in := n >= m.num && n <= m.num2
		return triOf(in == (m.op == opBetween))
	case opDateBefore, opDateAfter, opDateExact:
		return e.compareDate(m, v)
	case opSemverWildcard, opSemverTilde, opSemverCaret:
		sv, _, ok := parseSemver(stringify(v)) // a number by its text: 2 is 2.0.0
		if !ok {
			return no
		}
		return triOf(m.rng.contains(sv))
	case opSemverEQ, opSemverNEQ, opSemverGT, opSemverGTE, opSemverLT, opSemverLTE:
		sv, _, ok := parseSemver(stringify(v)) // a number by its text: 2 is 2.0.0
		if !ok {
			return no
		}
		d := sv.cmp(m.sem)
		switch m.op {
		case opSemverEQ:
			return triOf(d == 0)
		case opSemverNEQ:
			return triOf(d != 0)
		case opSemverGT:
			return triOf(d > 0)
		case opSemverGTE:
			return triOf(d >= 0)
		case opSemverLT:
			return triOf(d < 0)
		default:
			return triOf(d <= 0)
		}
	}
	return no
}

// exactMatch is PostHog's exact: the boolean rule, a list filter as any-of,
// otherwise case-insensitive string equality.
func exactMatch(m *matcher, v any) bool {
	if m.boolRule {
		return truthy(v) == m.truthy
	}
	s := stringify(v)
	if m.list != nil {
		for _, want := range m.list {
			if equalLower(s, want) {
				return true
			}
		}
		return false
	}
	return equalLower(s, m.str)
}

func (e *evaluator) compareDate(m *matcher, v any) tri {
	s, ok := v.(string)
	if !ok {
		return no
	}
	p, ok := parseDate(s, e.set.loc)
	if !ok {
		return no
	}
	t := m.date
	if m.isRel {
		t = m.rel.at(e.now)
	}
	var res bool
	switch m.op {
	case opDateBefore:
		res = p.Before(t)
		if m.isRel && !res {
			// Becomes true once the threshold passes p.
			e.noteValidUntil(m.rel.flipAt(p, true))
		}
	case opDateAfter:
		res = p.After(t)
		if m.isRel && res {
			// Becomes false once the threshold reaches p.
			e.noteValidUntil(m.rel.flipAt(p, false))
		}
	default:
		res = p.Equal(t)
		if m.isRel {
			e.noteValidUntil(e.now.Add(time.Nanosecond))
		}
	}
	return triOf(res)
}

func (e *evaluator) inCohort(id int64) tri {
	if co := e.set.cohorts[id]; co != nil {
		if co.fatal != nil {
			return e.setUnknown(CodeUnsupported)
		}
		if co.kind == CohortDynamic || co.kind == CohortBehavioral {
			return e.cohortNode(&co.root)
		}
	}
	if e.ctx.Cohorts == nil {
		if e.ctx.Partial {
			return e.setUnknown(CodeUnsupported)
		}
		return no
	}
	member, until, err := e.ctx.Cohorts.InCohort(id)
	switch {
	case errors.Is(err, ErrCohortNotFound):
		return no
	case err != nil:
		return e.setUnknown(CodeCohortUnavailable)
	}
	e.noteValidUntil(until)
	return triOf(member)
}

// cohortNode evaluates a cohort property group: in an AND a definite false
// decides, in an OR a definite true decides; an empty group matches.
func (e *evaluator) cohortNode(n *cohortNode) tri {
	if n.filter != nil {
		t := e.match(n.filter, -1)
		if n.filter.negate {
			t = t.not()
		}
		return t
	}
	if len(n.children) == 0 {
		return yes
	}
	sawUnknown := false
	for i := range n.children {
		t := e.cohortNode(&n.children[i])
		switch {
		case t == unknown:
			sawUnknown = true
		case n.and && t == no:
			return no
		case !n.and && t == yes:
			return yes
		}
	}
	if sawUnknown {
		return unknown
	}
	return triOf(n.and)
}

func (e *evaluator) dependency(m *matcher) tri {
	if m.chainEmpty && e.ctx.Partial {
		return e.setUnknown(CodeUnsupported) // an SDK reads an empty chain as a cycle
	}
	if m.dep < 0 {
		e.depMissing = true
		if e.ctx.Partial {
			return e.setUnknown(CodeUnsupported)
		}
		return no
	}
	e.eval(m.dep)
	r := &e.res[m.dep]
	if r.Err != nil {
		return e.setUnknown(CodeDependencyFailed)
	}
	e.noteValidUntil(r.ValidUntil)
	switch {
	case m.depIsStr:
		return triOf(r.Variant == m.depStr)
	case m.depBool:
		return triOf(r.Enabled)
	default:
		return triOf(!r.Enabled)
	}
}
