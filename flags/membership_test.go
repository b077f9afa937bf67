package flags

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestInCohort(t *testing.T) {
	var cohorts []Cohort
	for _, c := range []string{
		`{"id": 1, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral",
		  "value": "performed_event_multiple", "operator": "gte", "operator_value": 2, "time_value": 5, "time_interval": "minute", "event_type": "events"}]}}`,
		`{"id": 2, "filters": {"type": "AND", "values": [{"key": "plan", "type": "person", "operator": "exact", "value": "pro"}]}}`,
		`{"id": 3, "kind": "static", "filters": {"type": "AND", "values": []}}`,
		`{"id": 4, "filters": {"type": "OR", "values": [{"key": "id", "type": "cohort", "value": 1}, {"key": "id", "type": "cohort", "value": 2}]}}`,
	} {
		var co Cohort
		if err := json.Unmarshal([]byte(c), &co); err != nil {
			t.Fatal(err)
		}
		cohorts = append(cohorts, co)
	}
	set, problems := Compile(Definitions{Cohorts: cohorts})
	if problems != nil {
		t.Fatalf("compile: %v", problems)
	}
	if got := set.BehavioralCohorts(); !slices.Equal(got, []int64{1, 4}) {
		t.Fatalf("BehavioralCohorts = %v, want [1 4]", got)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	history := func(ats ...time.Time) caseHistory {
		h := caseHistory{}
		for _, at := range ats {
			for _, id := range set.MatchEvent("checkout", nil, at, nil) {
				h[id] = append(h[id], EventBucket{Start: at.Unix(), Width: 1, Count: 1})
			}
		}
		return h
	}
	twice := history(now.Add(-3*time.Minute), now.Add(-time.Minute))
	for _, c := range []struct {
		name    string
		ctx     Context
		id      int64
		member  bool
		known   bool
		expires time.Time
	}{
		{"twice in the window", Context{Events: twice, Now: now}, 1, true, true, now.Add(2 * time.Minute)},
		{"once", Context{Events: history(now.Add(-time.Minute)), Now: now}, 1, false, true, now.Add(4 * time.Minute)},
		{"the first aged out", Context{Events: twice, Now: now.Add(2 * time.Minute)}, 1, false, true, now.Add(4 * time.Minute)},
		{"nested, through the behavioural one", Context{Events: twice, Now: now}, 4, true, true, now.Add(2 * time.Minute)},
		{"nested, through the property one", Context{PersonProperties: map[string]any{"plan": "pro"}, Now: now}, 4, true, true, time.Time{}},
		{"partial: inconclusive", Context{Partial: true, Now: now}, 1, false, false, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			member, known, until := set.InCohort(&c.ctx, c.id)
			if member != c.member || known != c.known || !until.Equal(c.expires) {
				t.Fatalf("InCohort = %v, %v, %v; want %v, %v, %v", member, known, until, c.member, c.known, c.expires)
			}
		})
	}
}

// CohortPairs lists a cohort's pairs, nested cohorts' included;
// EventPropertyKeys the event properties a name's pairs filter on.
func TestCohortPairsAndEventKeys(t *testing.T) {
	var cohorts []Cohort
	for _, c := range []string{
		`{"id": 1, "kind": "behavioral", "filters": {"type": "AND", "values": [{"key": "checkout", "type": "behavioral",
		  "value": "performed_event", "time_value": 5, "time_interval": "minute"}]}}`,
		`{"id": 2, "kind": "behavioral", "filters": {"type": "OR", "values": [{"key": "id", "type": "cohort", "value": 1},
		  {"key": "purchase", "type": "behavioral", "value": "performed_event", "time_value": 1, "time_interval": "day",
		   "event_filters": [{"key": "amount", "type": "event", "operator": "gt", "value": 100},
		                     {"key": "currency", "type": "event", "value": "EUR"}]}]}}`,
		`{"id": 3, "filters": {"type": "AND", "values": [{"key": "plan", "type": "person", "value": "pro"}]}}`,
	} {
		var co Cohort
		if err := json.Unmarshal([]byte(c), &co); err != nil {
			t.Fatal(err)
		}
		cohorts = append(cohorts, co)
	}
	set, problems := Compile(Definitions{Cohorts: cohorts})
	if problems != nil {
		t.Fatalf("compile: %v", problems)
	}
	checkout := PairID("checkout", nil)
	if got := set.CohortPairs(1); !slices.Equal(got, []uint64{checkout}) {
		t.Fatalf("CohortPairs(1) = %x", got)
	}
	if got := set.CohortPairs(2); len(got) != 2 || !slices.Contains(got, checkout) || !slices.IsSorted(got) {
		t.Fatalf("CohortPairs(2) = %x, want checkout's and purchase's", got)
	}
	if got := set.CohortPairs(3); got != nil {
		t.Fatalf("a property cohort's pairs: %x", got)
	}
	if got := set.EventPropertyKeys("purchase"); !slices.Equal(got, []string{"amount", "currency"}) {
		t.Fatalf("purchase keys %v", got)
	}
	if got := set.EventPropertyKeys("checkout"); got != nil {
		t.Fatalf("checkout keys %v", got)
	}
}
