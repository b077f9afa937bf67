package flags

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// A behavioural cohort used by a condition aggregating on company reads the
// company's counted events (Context.Groups[i].Events), not the person's;
// GroupEventPairs names the pairs to count on company rows.
func TestGroupAggregatedBehavioralCohort(t *testing.T) {
	var defs Definitions
	if err := json.Unmarshal([]byte(`{
	"cohorts": [{"id": 1, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral",
	    "value": "performed_event_multiple", "operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute", "event_type": "events"}]}}],
	  "flags": [
	    {"key": "busy-company", "active": true, "filters": {"aggregation_group_type_index": 0,
	      "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 1}], "rollout_percentage": 100}]}},
	    {"key": "busy-person", "active": true, "filters": {
	      "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 1}], "rollout_percentage": 100}]}}
	  ]}`), &defs); err != nil {
		t.Fatal(err)
	}
	defs.GroupTypes = map[int]string{0: "company"}
	set, problems := Compile(defs)
	if problems != nil {
		t.Fatalf("compile: %v", problems)
	}
	pairs := set.EventPairs()
	if len(pairs) != 1 {
		t.Fatalf("pairs %v", pairs)
	}
	if got := set.GroupEventPairs(); len(got) != 1 || !slices.Equal(got[0], []uint64{pairs[0].ID}) {
		t.Fatalf("GroupEventPairs = %v, want company: [%d]", got, pairs[0].ID)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	twice := caseHistory{pairs[0].ID: {{Start: now.Add(-3 * time.Minute).Unix(), Width: 1, Count: 1}, {Start: now.Add(-time.Minute).Unix(), Width: 1, Count: 1}}}
	once := caseHistory{pairs[0].ID: {{Start: now.Add(-time.Minute).Unix(), Width: 1, Count: 1}}}
	for _, c := range []struct {
		name            string
		person, company EventHistory
		now             time.Time
		companyOn       bool
		personOn        bool
		until           time.Time
	}{
		{"the company twice, the person never", nil, twice, now, true, false, now.Add(2 * time.Minute)},
		{"the company once", twice, once, now, false, true, now.Add(4 * time.Minute)},
		{"the company's first aged out", nil, twice, now.Add(2 * time.Minute), false, false, now.Add(4 * time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := &Context{DistinctID: "u1", Events: c.person, Now: c.now,
				Groups: []Group{{Key: "acme", Events: c.company}}}
			var company, person Result
			for _, r := range set.Evaluate(ctx) {
				switch r.Key {
				case "busy-company":
					company = r
				case "busy-person":
					person = r
				}
			}
			if company.Enabled != c.companyOn || person.Enabled != c.personOn {
				t.Fatalf("company %+v, person %+v; want %v, %v", company, person, c.companyOn, c.personOn)
			}
			if !company.ValidUntil.Equal(c.until) {
				t.Fatalf("company ValidUntil %v, want %v", company.ValidUntil, c.until)
			}
		})
	}
}

// GroupBehavioralCohorts lists, per group type, the behavioural cohorts a
// group-aggregated flag reads that a group's row decides alone, and
// InGroupCohort decides them from the group's events.
func TestGroupBehavioralCohorts(t *testing.T) {
	var defs Definitions
	if err := json.Unmarshal([]byte(`{
	"cohorts": [
	  {"id": 1, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral",
	    "value": "performed_event_multiple", "operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute", "event_type": "events"}]}},
	  {"id": 2, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral",
	    "value": "performed_event", "time_value": 5, "time_interval": "minute", "event_type": "events"},
	    {"key": "plan", "type": "person", "operator": "exact", "value": "pro"}]}},
	  {"id": 3, "kind": "dynamic", "filters": {"type": "OR", "values": [{"key": "id", "type": "cohort", "value": 1}]}},
	  {"id": 4, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "signup", "type": "behavioral",
	    "value": "performed_event", "time_value": 5, "time_interval": "minute", "event_type": "events"}]}}
	],
	"flags": [
	  {"key": "busy-company", "active": true, "filters": {"aggregation_group_type_index": 0,
	    "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 3}], "rollout_percentage": 100},
	               {"properties": [{"key": "id", "type": "cohort", "value": 2}], "rollout_percentage": 100}]}},
	  {"key": "person-signup", "active": true, "filters": {
	    "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 4}], "rollout_percentage": 100}]}}
	]}`), &defs); err != nil {
		t.Fatal(err)
	}
	defs.GroupTypes = map[int]string{0: "company"}
	set, err := Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	// 1 (nested in 3) and 3 are decided by the company; 2 reads a person
	// property; 4 is read by persons only.
	got := set.GroupBehavioralCohorts()
	if len(got) != 1 || !slices.Equal(got[0], []int64{1, 3}) {
		t.Fatalf("GroupBehavioralCohorts = %v, want company: [1 3]", got)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	pair := set.CohortPairs(1)[0]
	twice := caseHistory{pair: {{Start: now.Add(-3 * time.Minute).Unix(), Width: 1, Count: 1}, {Start: now.Add(-time.Minute).Unix(), Width: 1, Count: 1}}}
	ctx := &Context{Now: now, Events: nil, Groups: []Group{{Key: "acme", Events: twice}}}
	for _, id := range []int64{1, 3} {
		member, known, until := set.InGroupCohort(ctx, 0, id)
		if !member || !known || !until.Equal(now.Add(2*time.Minute)) {
			t.Errorf("cohort %d for acme: %v %v %v, want a member until %v", id, member, known, until, now.Add(2*time.Minute))
		}
		// The same context as a person: no events of the person's.
		if member, _, _ := set.InCohort(ctx, id); member {
			t.Errorf("cohort %d: the person is a member with the company's events", id)
		}
	}
}
