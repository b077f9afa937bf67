package main

import (
	"testing"
	"time"

	"github.com/vexil-dev/vexil/usage"
)

// TestWebUsageOf: the UI's series has every hour of the range (0 where
// nothing was evaluated), the totals and the values of the REST answer.
func TestWebUsageOf(t *testing.T) {
	from := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	last := from.Add(70 * time.Minute)
	rep := &usage.FlagReport{Series: &usage.Series{From: from, To: from.Add(2*time.Hour + 10*time.Minute), LastEvaluatedAt: &last,
		Total:  usage.Summary{Evaluations: 5, UniqueUsers: 4, Values: map[string]uint64{"true": 3, "false": 2}},
		Points: []usage.Point{{Bucket: from.Add(time.Hour), Summary: usage.Summary{Evaluations: 5, UniqueUsers: 4, Values: map[string]uint64{"true": 3, "false": 2}}}}}}
	u := webUsageOf(rep)
	if len(u.Buckets) != 3 || u.Buckets[0].Count != 0 || u.Buckets[1].Count != 5 || u.Buckets[1].Unique != 4 || u.Buckets[2].Count != 0 ||
		u.Buckets[1].Variants["true"] != 3 || !u.Buckets[2].Start.Equal(from.Add(2*time.Hour)) {
		t.Fatalf("buckets: %+v", u.Buckets)
	}
	if u.Total != 5 || u.UniqueIDs != 4 || u.Variants["false"] != 2 || !u.LastEvaluated.Equal(last) {
		t.Fatalf("usage: %+v", u)
	}
	if got := u.SparkJSON(); got != "[[1796526000,1796529600,1796533200],[0,5,0]]" {
		t.Fatalf("spark: %s", got)
	}
}
