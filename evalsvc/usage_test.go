package evalsvc

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute/results"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
	"github.com/vexil-dev/vexil/usage"
)

// newUsageRecorder is a recorder on a memory store (returned, to read
// the flushed rows) whose clock stands at now, half a minute into a
// minute bucket.
func newUsageRecorder(t *testing.T) (now time.Time, us *memstore.Store, rec *usage.Recorder) {
	t.Helper()
	now = time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC)
	us = memstore.New()
	rec, err := usage.NewRecorder(usage.RecorderConfig{Store: us, Node: "n", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return now, us, rec
}

// TestUsageCounts: what /flags and /decide count per flag, exactly:
// requests answering every flag (counted against the team's layout),
// flag_keys subsets, and an evaluation_runtime that leaves a flag out
// (counted flag by flag), by endpoint, value and unique distinct id.
func TestUsageCounts(t *testing.T) {
	cat, st := newFixture(t)
	now, us, rec := newUsageRecorder(t)
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

// TestUsageStoredMatchesAnswers: the stored share usage counts per flag
// (RecordAll reads it beside each result, from merge) agrees with the
// service's own count of answers by source (FlagAnswers), for persons
// with stored results, without, a forced live request and a subset.
func TestUsageStoredMatchesAnswers(t *testing.T) {
	cat, st := newFixture(t)
	defs := cat.snaps[1].Definitions
	set, err := flags.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	plan := results.NewPlan(defs, set, results.Options{})
	var b store.Batch
	var sc results.Scratch
	for _, did := range []string{"s1", "s2"} {
		props := []byte(`{"plan":"pro"}`)
		row := &store.Row{Team: 1, DistinctID: did, PersonID: "p-" + did, PersonVersion: 1, Properties: props, Revision: store.Revision(props)}
		b.PutRow(row)
		res, _, _ := results.Compute(nil, set, plan, results.Subject{Type: results.Persons, Key: did, Version: 1,
			Revision: row.Revision, Props: map[string]any{"plan": "pro"}}, time.Now(), nil, nil, &sc)
		b.SetResults(1, did, res, 1)
	}
	if err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	now, us, rec := newUsageRecorder(t)
	s := newService(t, Config{Store: st, Catalog: cat, Usage: rec})
	h := s.Handler()
	for _, r := range []struct{ body, live string }{
		{`{"token":"phc_team1","distinct_id":"s1"}`, ""},
		{`{"token":"phc_team1","distinct_id":"s2"}`, ""},
		{`{"token":"phc_team1","distinct_id":"s1"}`, "live"},
		{`{"token":"phc_team1","distinct_id":"u1"}`, ""},
		{`{"token":"phc_team1","distinct_id":"s2","flag_keys_to_evaluate":["beta","mv"]}`, ""},
	} {
		var hdr []string
		if r.live != "" {
			hdr = []string{EvalHeader, r.live}
		}
		if res, body := post(t, h, "/flags?v=2", r.body, hdr...); res.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", r.body, res.StatusCode, body)
		}
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	answers := s.FlagAnswers(1)
	bucket := now.Truncate(time.Minute).Unix()
	var stored uint64
	for key, a := range answers {
		var got usage.Counts
		err := us.ScanUsage(context.Background(), 1, key, store.UsageMinute, bucket, bucket+1, func(r store.UsageRow) error {
			return got.UnmarshalBinary(r.Value)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Evaluations != a.Total() || got.Stored != a[results.Stored] {
			t.Errorf("%s: usage %d evaluations, %d stored; answers %d, %d stored (%v)", key, got.Evaluations, got.Stored, a.Total(), a[results.Stored], a)
		}
		stored += got.Stored
	}
	if len(answers) != 6 || stored == 0 {
		t.Errorf("%d flags answered, %d stored answers: the requests did not reach stored results", len(answers), stored)
	}
}

// failingMembers is a catalog whose static cohort reads fail.
type failingMembers struct{ *fakeCatalog }

func (failingMembers) IsCohortMember(context.Context, int64, int64, string) (bool, error) {
	return false, errors.New("catalog down")
}

// TestUsageCountsErrors: a flag that fails (its static cohort cannot be
// read) is
// counted as an error, with no value, in requests that answer every flag
// and in subsets; the others count their values.
func TestUsageCountsErrors(t *testing.T) {
	cat, st := newFixture(t)
	now, us, rec := newUsageRecorder(t)
	h := newService(t, Config{Store: st, Catalog: failingMembers{cat}, Usage: rec}).Handler()
	for _, body := range []string{
		`{"token":"phc_team1","distinct_id":"u1"}`,
		`{"token":"phc_team1","distinct_id":"u2"}`,
		`{"token":"phc_team1","distinct_id":"u2","flag_keys_to_evaluate":["static-cohort","everyone"]}`,
	} {
		if res, b := post(t, h, "/flags?v=2", body); res.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", body, res.StatusCode, b)
		}
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	bucket := now.Truncate(time.Minute).Unix()
	for key, w := range map[string]struct {
		evals, errors uint64
		values        map[string]uint64
	}{
		"static-cohort": {3, 3, map[string]uint64{}},
		"everyone":      {3, 0, map[string]uint64{"true": 3}},
		"mv":            {2, 0, map[string]uint64{"test": 2}},
	} {
		var got usage.Counts
		err := us.ScanUsage(context.Background(), 1, key, store.UsageMinute, bucket, bucket+1, func(r store.UsageRow) error {
			return got.UnmarshalBinary(r.Value)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Evaluations != w.evals || got.Errors != w.errors || !maps.Equal(got.Values, w.values) {
			t.Errorf("%s: %d evaluations, %d errors, values %v; want %d, %d, %v", key, got.Evaluations, got.Errors, got.Values, w.evals, w.errors, w.values)
		}
	}
}
