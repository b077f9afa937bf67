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
