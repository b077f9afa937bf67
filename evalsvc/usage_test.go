package evalsvc

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// TestUsageCounts: what /flags and /decide count per flag, exactly:
// requests answering every flag (counted against the team's layout),
// flag_keys subsets, and an evaluation_runtime that leaves a flag out
// (counted flag by flag), by endpoint, value and unique distinct id.
func TestUsageCounts(t *testing.T) {
	cat, st := newFixture(t)
	now := time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC)
	us := memstore.New()
	rec, err := usage.NewRecorder(usage.RecorderConfig{Store: us, Node: "n", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := newService(t, Config{Store: st, Catalog: cat, Usage: rec}).Handler()
	for _, r := range []struct{ path, body string }{
		{"/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`},
		{"/flags?v=2", `{"token":"phc_team1","distinct_id":"u1"}`},
		{"/flags?v=2", `{"token":"phc_team1","distinct_id":"u2"}`},
		{"/decide/?v=2", `{"token":"phc_team1","distinct_id":"u2"}`},
		{"/flags?v=2", `{"token":"phc_team1","distinct_id":"u3","flag_keys_to_evaluate":["beta","mv"]}`},
		{"/flags?v=2", `{"token":"phc_team1","distinct_id":"u4","evaluation_runtime":"server"}`},
	} {
		if res, body := post(t, h, r.path, r.body); res.StatusCode != 200 {
			t.Fatalf("%s %s: status %d: %s", r.path, r.body, res.StatusCode, body)
		}
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	type want struct {
		evals, flags, decide, errors uint64
		values                       map[string]uint64
		uniques                      uint64
	}
	// u1 (plan pro, cohort 9 member) twice, u2 (free) twice, u3 beta and
	// mv only, u4 every flag but client-only.
	wants := map[string]want{
		"beta":          {6, 5, 1, 0, map[string]uint64{"true": 2, "false": 4}, 4},
		"mv":            {6, 5, 1, 0, map[string]uint64{"test": 6}, 4},
		"everyone":      {5, 4, 1, 0, map[string]uint64{"true": 5}, 3},
		"company-flag":  {5, 4, 1, 0, map[string]uint64{"false": 5}, 3},
		"static-cohort": {5, 4, 1, 0, map[string]uint64{"true": 2, "false": 3}, 3},
		"client-only":   {4, 3, 1, 0, map[string]uint64{"true": 4}, 2},
	}
	b := now.Truncate(time.Minute).Unix()
	for key, w := range wants {
		var got *usage.Counts
		err := us.ScanUsage(context.Background(), 1, key, store.UsageMinute, b, b+1, func(r store.UsageRow) error {
			got = new(usage.Counts)
			return got.UnmarshalBinary(r.Value)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Errorf("%s: no minute row", key)
			continue
		}
		if got.Evaluations != w.evals || got.ByEndpoint[usage.EndpointFlags] != w.flags || got.ByEndpoint[usage.EndpointDecide] != w.decide ||
			got.Errors != w.errors || !maps.Equal(got.Values, w.values) || got.Uniques() != w.uniques {
			t.Errorf("%s: %d evaluations (%d flags, %d decide), %d errors, values %v, %d uniques; want %+v",
				key, got.Evaluations, got.ByEndpoint[usage.EndpointFlags], got.ByEndpoint[usage.EndpointDecide], got.Errors, got.Values, got.Uniques(), w)
		}
	}
}
