package flags

import (
	"slices"
	"time"
)

// BehavioralCohorts returns the ids of the set's cohorts whose definitions
// hold a behavioural filter (nested cohorts included) and that compiled
// without a fatal problem, ascending: the cohorts whose membership time
// alone can change, which package signals watches.
func (s *Set) BehavioralCohorts() []int64 {
	var ids []int64
	for id, co := range s.cohorts {
		if co.behavioral && co.fatal == nil && co.kind != CohortStatic {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// InCohort evaluates whether c's subject is a member of cohort id at c.Now,
// with the server's rules, as a flag condition reading the cohort would.
// known is false when the answer is inconclusive (partial mode, a cohort
// the set cannot evaluate); validUntil is the first instant the answer may
// change with nothing else happening (zero: not by time alone).
func (s *Set) InCohort(c *Context, id int64) (member, known bool, validUntil time.Time) {
	e := s.getEvaluator(c)
	defer s.putEvaluator(e)
	e.validUntil = time.Time{}
	e.incCode = ""
	t := e.inCohort(id)
	return t == yes, t != unknown, e.validUntil
}

// CohortPairs returns the ids of the event pairs cohort id counts, its
// nested cohorts' included, ascending (none for an unknown cohort): the
// pairs a backfill of the cohort fills.
func (s *Set) CohortPairs(id int64) []uint64 {
	co := s.cohorts[id]
	if co == nil {
		return nil
	}
	var ids []uint64
	var walk func(n *cohortNode)
	walk = func(n *cohortNode) {
		if n.filter != nil && n.filter.beh != nil && n.filter.beh.pair != nil {
			ids = append(ids, n.filter.beh.pair.ID)
		}
		for i := range n.children {
			walk(&n.children[i])
		}
	}
	walk(&co.root)
	for _, nid := range co.nested {
		if nc := s.cohorts[nid]; nc != nil {
			walk(&nc.root)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// GroupBehavioralCohorts returns, per group type, the behavioural cohorts
// a group of that type is a member of or not on its own: read (directly or
// nested) by a flag aggregating on the type, compiled without a fatal
// problem, and reading no person property and no static cohort, nested
// cohorts included (those depend on the person asking, not on the group).
// Their membership is decided from the group's row (InGroupCohort), as a
// stored group result is; package signals watches them on group rows.
// Each list is ascending.
func (s *Set) GroupBehavioralCohorts() map[int][]int64 {
	out := map[int][]int64{}
	for _, f := range s.flags {
		for _, gt := range f.info.Aggregations {
			if gt < 0 {
				continue
			}
			for _, id := range f.info.Cohorts {
				if s.groupDecidable(id) && !slices.Contains(out[gt], id) {
					out[gt] = append(out[gt], id)
				}
			}
		}
	}
	for gt := range out {
		slices.Sort(out[gt])
	}
	return out
}

// groupDecidable reports whether cohort id is behavioural and decided by
// a group's row alone (see GroupBehavioralCohorts).
func (s *Set) groupDecidable(id int64) bool {
	co := s.cohorts[id]
	if co == nil || !co.behavioral || co.fatal != nil || co.kind == CohortStatic || len(co.props) > 0 {
		return false
	}
	for _, n := range co.nested {
		if nc := s.cohorts[n]; nc == nil || nc.kind == CohortStatic || len(nc.props) > 0 {
			return false
		}
	}
	return true
}

// InGroupCohort is InCohort for the group of type groupType in
// c.Groups: its behavioural filters read that group's events, as under a
// condition aggregating on groupType.
func (s *Set) InGroupCohort(c *Context, groupType int, id int64) (member, known bool, validUntil time.Time) {
	e := s.getEvaluator(c)
	defer s.putEvaluator(e)
	e.validUntil = time.Time{}
	e.incCode = ""
	e.cohortAgg = groupType + 1
	t := e.inCohort(id)
	e.cohortAgg = 0
	return t == yes, t != unknown, e.validUntil
}
