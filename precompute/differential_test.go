package precompute_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/precompute/results"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

var (
	steps = flag.Int("precompute.steps", 0, "randomized steps per backend of TestDifferential (0: the default for the backend)")
	seed  = flag.Uint64("precompute.seed", 1, "seed of TestDifferential")
)

// The team's flags: every kind of flag precompute stores, and kinds it
// keeps live, so that both paths are exercised side by side.
var differentialFlags = []string{
	`{"key":"pro","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}],"payloads":{"true":"{\"tier\":1}"}}}`,
	`{"key":"mv","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":60}],"multivariate":{"variants":[{"key":"control","rollout_percentage":50},{"key":"test","rollout_percentage":50}]},"payloads":{"test":"[1,2]"}}}`,
	`{"key":"recent","active":true,"filters":{"groups":[{"properties":[{"key":"signup","type":"person","operator":"is_date_after","value":"-3d"}],"rollout_percentage":100}]}}`,
	`{"key":"company-ent","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"tier","type":"group","group_type_index":0,"value":"enterprise"}],"rollout_percentage":70}]}}`,
	`{"key":"depends","active":true,"filters":{"groups":[{"properties":[{"key":"pro","type":"flag","operator":"flag_evaluates_to","value":true}],"rollout_percentage":100,"variant":null}]}}`,
	`{"key":"by-device","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`,
	`{"key":"mixed","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100},{"aggregation_group_type_index":0,"properties":[],"rollout_percentage":30}]}}`,
	`{"key":"self-id","active":true,"filters":{"groups":[{"properties":[{"key":"distinct_id","type":"person","operator":"icontains","value":"1"}],"rollout_percentage":100}]}}`,
	`{"key":"vip","active":true,"overrides":[{"distinct_ids":["d-3","d-7"],"value":true}],"filters":{"groups":[{"properties":[{"key":"k1","type":"person","operator":"is_set"}],"rollout_percentage":40}]}}`,
}

// TestDifferential is the proof that precompute is never wrong: over
// randomized persons, merges, deletes, groups, flag and cohort changes and
// a clock that moves (relative dates expire stored results), every /flags
// answer of the service that uses stored results equals the answer of a
// service that evaluates everything live, on the same store and catalog,
// while workers run, stop, lag, are killed mid-run and race. At the end,
// once the workers caught up, every precomputable flag is answered from
// its stored result.
func TestDifferential(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			n := *steps
			if n == 0 {
				n = 2000
				if b.name == "scyllastore" {
					n = 600
				}
				if testing.Short() {
					n = 80
				}
			}
			runDifferential(t, b, n, *seed)
		})
	}
}

func runDifferential(t *testing.T, b backend, n int, seed uint64) {
	e := newEnv(t, b)
	r := rand.New(rand.NewPCG(seed, 0xd1ff))
	cohort := e.createCohort(flags.Cohort{Name: "k1-pro", Kind: flags.CohortDynamic, Filters: flags.PropertyGroup{Type: "AND",
		Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "k1", Type: "person", Value: mustJSON("pro")}}}}})
	for _, s := range differentialFlags {
		e.createFlag(parseFlag(t, s))
	}
	e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"in-cohort","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}}`, cohort)))
	shopper := e.createCohort(flags.Cohort{Name: "shopper", Kind: flags.CohortBehavioral, Filters: behavioralFilters(t, shopperFilters)})
	lapsed := e.createCohort(flags.Cohort{Name: "lapsed", Kind: flags.CohortBehavioral, Filters: behavioralFilters(t, lapsedFilters)})
	e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"shopper","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}],"payloads":{"true":"\"basket\""}}}`, shopper)))
	e.createFlag(parseFlag(t, fmt.Sprintf(`{"key":"win-back","active":true,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d},{"key":"plan","type":"person","operator":"is_set"}],"rollout_percentage":60}]}}`, lapsed)))
	e.notify("flag")

	var version int64
	next := func() *int64 { version++; v := version; return &v }
	did := func() string { return fmt.Sprintf("d-%d", r.IntN(40)) }
	person := func() string { return fmt.Sprintf("p-%d", r.IntN(25)) }
	str := func(s string) string { return `"` + s + `"` }
	plans := []string{"pro", "free", "team"}
	company := func() string { return fmt.Sprintf("c-%d", r.IntN(8)) }
	var uuids []string // the events sent, for duplicates
	events := 0
	behaviour := map[string]map[bool]int{"shopper": {}, "win-back": {}} // flag → answer → count

	workers := []*worker{e.startWorker(precompute.Config{})}
	checked, storedAnswers := 0, 0
	phase := map[string]time.Duration{}
	defer func() { t.Logf("time by phase: %v", phase) }()
	for step := range n {
		t0 := time.Now()
		x := r.IntN(100)
		kind := "ingest" // the phase this step's time is counted in
		switch {
		case x < 40: // person writes, sometimes a burst to one person
			k := 1 + r.IntN(3)
			var envs []*ingestv1.Envelope
			p, d := person(), did()
			for range k {
				set := map[string]string{"plan": str(plans[r.IntN(len(plans))])}
				if r.IntN(2) == 0 {
					set["signup"] = str(e.clock.Now().Add(-time.Duration(r.IntN(6*24)) * time.Hour).Format(time.RFC3339))
				}
				if r.IntN(3) == 0 {
					set["k1"] = str([]string{"pro", "x"}[r.IntN(2)])
				}
				if r.IntN(10) == 0 {
					set["distinct_id"] = str(did()) // a stored property shadowing the implicit one
				}
				envs = append(envs, &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
					Team: e.team, PersonId: p, DistinctIds: []string{d}, Set: set, Version: next()}}})
			}
			e.ingest(envs...)
		case x < 48:
			e.ingest(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
				Team: e.team, PersonId: person(), DistinctIds: []string{did(), did()}, Version: next()}}})
		case x < 51:
			e.ingest(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonDelete{PersonDelete: &ingestv1.PersonDelete{
				Team: e.team, PersonId: person(), Version: next()}}})
		case x < 61:
			e.ingest(&ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: e.team, GroupTypeIndex: 0, GroupKey: company(),
				Set: map[string]string{"tier": str([]string{"enterprise", "startup"}[r.IntN(2)])}, Version: next()}}})
		case x < 68: // a flag change
			kind = "definitions"
			switch r.IntN(4) {
			case 0:
				e.updateFlag("mv", func(f *flags.Flag) { p := float64(r.IntN(101)); f.Filters.Groups[0].RolloutPercentage = &p })
			case 1:
				e.updateFlag("pro", func(f *flags.Flag) { f.Active = !f.Active })
			case 2:
				e.updateFlag("company-ent", func(f *flags.Flag) { p := float64(r.IntN(101)); f.Filters.Groups[0].RolloutPercentage = &p })
			case 3:
				e.updateFlag("pro", func(f *flags.Flag) {
					f.Filters.Groups[0].Properties[0].Value = mustJSON(plans[r.IntN(len(plans))])
				})
			}
			e.notify("flag")
		case x < 71: // a cohort change
			kind = "definitions"
			e.updateCohort(cohort, func(c *flags.Cohort) {
				c.Filters.Values[0].Filter.Value = mustJSON([]string{"pro", "x"}[r.IntN(2)])
			})
			e.notify("cohort")
		case x < 78: // time passes: relative dates move
			kind = "clock"
			e.clock.advance(time.Duration(1+r.IntN(36)) * time.Hour)
		case x >= 88: // events: a burst, some redelivered, out of order
			kind = "events"
			if r.IntN(3) == 0 { // the windows move by seconds
				e.clock.advance(time.Duration(1+r.IntN(300)) * time.Second)
			}
			var envs []*ingestv1.Envelope
			for range 1 + r.IntN(4) {
				id := fmt.Sprintf("ev-%d", len(uuids))
				if len(uuids) > 0 && r.IntN(5) == 0 {
					id = uuids[r.IntN(len(uuids))] // a duplicate: counted once
				} else {
					uuids = append(uuids, id)
				}
				ev := &ingestv1.Event{Team: e.team, DistinctId: did(), Event: "checkout", Uuid: id,
					Timestamp: timestamppb.New(e.clock.Now().Add(-time.Duration(r.IntN(900)) * time.Second))}
				if r.IntN(3) == 0 {
					ev.Event = "purchase"
					ev.Properties = map[string]string{"amount": fmt.Sprint(50 + r.IntN(100))}
				}
				envs = append(envs, &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: ev}})
			}
			events += len(envs)
			e.ingest(envs...)
		case x < 84: // worker lifecycle
			kind = "workers"
			switch r.IntN(5) {
			case 4: // kill one in the middle of a run
				e.updateFlag("mv", func(f *flags.Flag) { p := float64(r.IntN(101)); f.Filters.Groups[0].RolloutPercentage = &p })
				e.notify("flag")
				if len(workers) > 0 {
					time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
					workers[0].stop(t)
					workers = workers[1:]
				}
			case 0: // kill one (mid-run, mid-batch: whatever it was doing)
				if len(workers) > 0 {
					i := r.IntN(len(workers))
					workers[i].stop(t)
					workers = append(workers[:i], workers[i+1:]...)
				}
			case 1: // start one; two or more race
				if len(workers) < 3 {
					workers = append(workers, e.startWorker(precompute.Config{}))
				}
			case 2: // a lagging one
				if len(workers) < 3 {
					workers = append(workers, e.startWorker(precompute.Config{Store: slowStore{e.st, 20 * time.Millisecond}, Coalesce: 50 * time.Millisecond}))
				}
			case 3: // stop them all for a while
				for _, w := range workers {
					w.stop(t)
				}
				workers = nil
			}
		}
		if len(workers) == 0 && r.IntN(8) == 0 {
			workers = append(workers, e.startWorker(precompute.Config{}))
		}
		phase[kind] += time.Since(t0)
		t0 = time.Now()
		// Compare a few requests of several shapes.
		for range 4 {
			body := requestBody(r, did(), company())
			got, src := flagsResponse(t, e.sh, body, true)
			want, _ := flagsResponse(t, e.lh, body, false)
			checked++
			for _, k := range []string{"shopper", "win-back"} {
				f, _ := want["flags"].(map[string]any)[k].(map[string]any)
				on, _ := f["enabled"].(bool)
				behaviour[k][on]++
			}
			storedAnswers += strings.Count(src, "=stored")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d (seed %d): stored path differs from live for %s\nsources %s\n got %v\nwant %v", step, seed, body, src, got, want)
			}
		}
		phase["compare"] += time.Since(t0)
	}
	t.Logf("%d steps, %d events sent, %d requests compared, %d flag answers from stored results; behavioural flags on/off %v", n, events, checked, storedAnswers, behaviour)
	for k, on := range behaviour {
		if on[true] == 0 || on[false] == 0 {
			t.Errorf("%s answered %v: the events did not move it both ways", k, on)
		}
	}

	// Catch up, then every precomputable flag of every row is a hit.
	if len(workers) == 0 {
		e.startWorker(precompute.Config{})
	}
	e.waitQuiet()
	first := e.hitRatio(t, 40)
	e.waitQuiet() // the first pass may have asked for repairs (see evalsvc Config.Repair)
	final := e.hitRatio(t, 40)
	t.Logf("hit ratio of precomputable flags after catch-up: %.4f on the first pass, %.4f after repairs", first, final)
	if final != 1 {
		t.Errorf("hit ratio after catch-up = %v, want 1", final)
	}
}

// The behavioural cohorts of the differential test: "shopper" checked out
// at least twice in the last 10 minutes on a pro plan, or bought for over
// 100 for the first time in the last 2 hours; "lapsed" did not check out
// in the last day.
const (
	shopperFilters = `{"type":"OR","values":[
		{"type":"AND","values":[
			{"key":"checkout","type":"behavioral","value":"performed_event_multiple","operator":"gte","operator_value":2,"time_value":10,"time_interval":"minute"},
			{"key":"plan","type":"person","value":"pro"}]},
		{"key":"purchase","type":"behavioral","value":"performed_event_first_time","time_value":2,"time_interval":"hour",
		 "event_filters":[{"key":"amount","type":"event","operator":"gt","value":100}]}]}`
	lapsedFilters = `{"type":"AND","values":[
		{"key":"checkout","type":"behavioral","value":"performed_event","negation":true,"time_value":1,"time_interval":"day"}]}`
)

func behavioralFilters(t testing.TB, s string) flags.PropertyGroup {
	t.Helper()
	var g flags.PropertyGroup
	if err := json.Unmarshal([]byte(s), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// requestBody is a /flags body of a random shape: as posthog-node sends it
// (person_properties with distinct_id), with a group, with a property
// override, with a subset of keys, with a device id.
func requestBody(r *rand.Rand, did, company string) string {
	switch r.IntN(6) {
	case 0:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, testToken, did)
	case 1:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q,"person_properties":{"distinct_id":%q}}`, testToken, did, did)
	case 2:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q,"groups":{"company":%q},"group_properties":{"company":{"$group_key":%q}}}`, testToken, did, company, company)
	case 3:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q,"person_properties":{"plan":"pro"}}`, testToken, did)
	case 4:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q,"flag_keys_to_evaluate":["recent","depends","company-ent"],"groups":{"company":%q}}`, testToken, did, company)
	default:
		return fmt.Sprintf(`{"token":%q,"distinct_id":%q,"$device_id":"dev-%d","groups":{"company":%q},"group_properties":{"company":{"tier":"enterprise"}}}`, testToken, did, r.IntN(5), company)
	}
}

// hitRatio queries every row and every group (plain requests, as an SDK
// sends them) and returns the share of precomputable flags answered from
// stored results. Answers the request itself forces live are left out: a
// person whose stored "distinct_id" property differs from the distinct id
// the SDK sends in person_properties (live_override).
func (e *env) hitRatio(t *testing.T, rows int) float64 {
	t.Helper()
	hits, total, overridden := 0, 0, 0
	plan := e.plan(t)
	for i := range rows {
		did := fmt.Sprintf("d-%d", i)
		if _, err := e.st.GetRow(e.ctx, e.team, did); err != nil {
			continue // no row: nothing stored to use
		}
		for c := range 8 {
			company := fmt.Sprintf("c-%d", c)
			_, grpErr := e.st.GetGroup(e.ctx, e.team, 0, company)
			body := fmt.Sprintf(`{"token":%q,"distinct_id":%q,"person_properties":{"distinct_id":%q},"groups":{"company":%q}}`, testToken, did, did, company)
			_, src := flagsResponse(t, e.sh, body, true)
			for k, s := range sources(src) {
				fp, ok := plan.Flag(k)
				if !ok || !fp.Precomputable || (fp.Subject != results.Persons && grpErr != nil) {
					continue
				}
				if s == results.Overridden.String() {
					overridden++
					continue
				}
				total++
				if s == "stored" {
					hits++
				} else if c == 7 {
					t.Logf("%s %s: %s", did, k, s)
				}
			}
		}
	}
	if total == 0 {
		t.Fatal("no precomputable flag answered")
	}
	t.Logf("%d answers of precomputable flags, %d stored, %d live because the request overrides what they read", total+overridden, hits, overridden)
	return float64(hits) / float64(total)
}

func (e *env) plan(t *testing.T) *results.Plan {
	snap, err := e.cat.Snapshot(e.ctx, e.team)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := flags.Compile(snap.Definitions)
	return results.NewPlan(snap.Definitions, set, results.Options{})
}
