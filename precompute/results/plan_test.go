package results

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/flags"
)

// testFlag decodes a flag definition, failing the test on bad JSON.
func testFlag(t testing.TB, js string) flags.Flag {
	t.Helper()
	f, err := flags.ParseFlag([]byte(js))
	if err != nil {
		t.Fatalf("ParseFlag(%s): %v", js, err)
	}
	return f
}

// personFlag is an active person flag with one condition of the given
// filters (JSON array) at 100%.
func personFlag(id int64, key, filters string) string {
	return fmt.Sprintf(`{"id":%d,"key":%q,"active":true,"filters":{"groups":[{"properties":%s,"rollout_percentage":100}]}}`, id, key, filters)
}

// groupFlag is an active flag aggregating on group type gt.
func groupFlag(id int64, key string, gt int, filters string) string {
	return fmt.Sprintf(`{"id":%d,"key":%q,"active":true,"filters":{"aggregation_group_type_index":%d,"groups":[{"properties":%s,"rollout_percentage":100}]}}`, id, key, gt, filters)
}

func dynCohort(id int64, props ...string) flags.Cohort {
	c := flags.Cohort{ID: id, Kind: flags.CohortDynamic, Filters: flags.PropertyGroup{Type: "AND"}}
	for _, p := range props {
		c.Filters.Values = append(c.Filters.Values, flags.PropertyNode{Filter: &flags.PropertyFilter{Key: p, Type: "person", Operator: "is_set", Value: json.RawMessage(`"is_set"`)}})
	}
	return c
}

func testDefs(t testing.TB, cohorts []flags.Cohort, flagJSON ...string) flags.Definitions {
	t.Helper()
	d := flags.Definitions{GroupTypes: map[int]string{0: "company", 1: "project"}, Cohorts: cohorts}
	for _, js := range flagJSON {
		d.Flags = append(d.Flags, testFlag(t, js))
	}
	return d
}

func testPlan(t testing.TB, d flags.Definitions, opt Options) *Plan {
	t.Helper()
	set, _ := flags.Compile(d) // validation errors are part of some cases
	return NewPlan(d, set, opt)
}

func mustFlag(t testing.TB, p *Plan, key string) *FlagPlan {
	t.Helper()
	fp, ok := p.Flag(key)
	if !ok {
		t.Fatalf("plan has no flag %q", key)
	}
	return fp
}

const (
	emailFilter   = `[{"key":"email","type":"person","operator":"icontains","value":"@example.com"}]`
	planFilter    = `[{"key":"plan","type":"group","group_type_index":0,"operator":"exact","value":["pro"]}]`
	projectFilter = `[{"key":"tier","type":"group","group_type_index":1,"operator":"exact","value":["gold"]}]`
)

func depFilter(key string) string {
	return fmt.Sprintf(`[{"key":%q,"type":"flag","operator":"flag_evaluates_to","value":true}]`, key)
}

func cohortFilter(id int64) string {
	return fmt.Sprintf(`[{"key":"id","type":"cohort","value":%d}]`, id)
}

// A behavioural cohort is read from the row's counters: its flags are
// stored on person rows.
func TestPlanBehavioralCohort(t *testing.T) {
	c := flags.Cohort{ID: 7, Kind: flags.CohortBehavioral, Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{
		Key: "checkout", Type: "behavioral", Value: json.RawMessage(`"performed_event"`), TimeValue: json.RawMessage(`5`), TimeInterval: "minute"}}}}}
	p := testPlan(t, testDefs(t, []flags.Cohort{c}, personFlag(1, "f", cohortFilter(7))), Options{})
	if fp := mustFlag(t, p, "f"); !fp.Precomputable || fp.Subject != Persons {
		t.Fatalf("f: Precomputable %v, Subject %d, Why %q; want stored on person rows", fp.Precomputable, fp.Subject, fp.Why)
	}
}

func TestPlanNotPrecomputable(t *testing.T) {
	cases := []struct {
		name    string
		cohorts []flags.Cohort
		flags   []string // the flag under test is keyed "f"
		opt     Options
		why     string
	}{
		{name: "invalid definition", flags: []string{personFlag(1, "f", `[{"key":"email","type":"bogus","value":"x"}]`)}, why: WhyInvalid},
		{name: "experience continuity", flags: []string{`{"id":1,"key":"f","active":true,"ensure_experience_continuity":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`}, why: WhyContinuity},
		{name: "device bucketing", flags: []string{`{"id":1,"key":"f","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`}, why: WhyDevice},
		{name: "mixed persons and group", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50},{"properties":[],"rollout_percentage":50,"aggregation_group_type_index":null}]}}`}, why: WhyMixed},
		{name: "mixed two group types", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50},{"properties":[],"rollout_percentage":50,"aggregation_group_type_index":1}]}}`}, why: WhyMixed},
		{name: "group overrides on a person flag", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]},"overrides":[{"group_type_index":0,"group_keys":["acme"],"value":true}]}`}, why: WhyOverrides},
		{name: "distinct-id overrides on a group flag", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50}]},"overrides":[{"distinct_ids":["u1"],"value":true}]}`}, why: WhyOverrides},
		{name: "group overrides of another type on a group flag", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50}]},"overrides":[{"group_type_index":1,"group_keys":["p1"],"value":true}]}`}, why: WhyOverrides},
		{name: "person flag reads group properties", flags: []string{personFlag(1, "f", planFilter)}, why: WhyOtherSubject},
		{name: "group flag reads person properties", flags: []string{groupFlag(1, "f", 0, emailFilter)}, why: WhyOtherSubject},
		{name: "group flag reads another group type", flags: []string{groupFlag(1, "f", 0, projectFilter)}, why: WhyOtherSubject},
		{name: "static cohort", cohorts: []flags.Cohort{{ID: 7, Kind: flags.CohortStatic}}, flags: []string{personFlag(1, "f", cohortFilter(7))}, why: WhyCohort},
		{name: "static cohort nested in a dynamic one", cohorts: []flags.Cohort{{ID: 7, Kind: flags.CohortStatic}, {ID: 8, Kind: flags.CohortDynamic, Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{Key: "id", Type: "cohort", Value: json.RawMessage(`7`)}}}}}}, flags: []string{personFlag(1, "f", cohortFilter(8))}, why: WhyCohort},
		{name: "geoip prefix", flags: []string{personFlag(1, "f", `[{"key":"$geoip_country_code","type":"person","operator":"exact","value":["FR"]}]`)}, why: WhyRequestOnly},
		{name: "current url exact", flags: []string{personFlag(1, "f", `[{"key":"$current_url","type":"person","operator":"icontains","value":"/pricing"}]`)}, why: WhyRequestOnly},
		{name: "request-only through a cohort", cohorts: []flags.Cohort{dynCohort(5, "$pathname")}, flags: []string{personFlag(1, "f", cohortFilter(5))}, why: WhyRequestOnly},
		{name: "options override the default list", opt: Options{RequestOnly: []string{"email"}}, flags: []string{personFlag(1, "f", emailFilter)}, why: WhyRequestOnly},
		{name: "options prefix", opt: Options{RequestOnly: []string{"em*"}}, flags: []string{personFlag(1, "f", emailFilter)}, why: WhyRequestOnly},
		{name: "depends on a device-bucketed flag", flags: []string{
			`{"id":2,"key":"dev","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`,
			personFlag(1, "f", depFilter("dev"))}, why: WhyDependency},
		{name: "person flag depends on a group flag", flags: []string{groupFlag(2, "g", 0, planFilter), personFlag(1, "f", depFilter("g"))}, why: WhyDependency},
		{name: "group flag depends on a person flag", flags: []string{personFlag(2, "p", emailFilter), groupFlag(1, "f", 0, depFilter("p"))}, why: WhyDependency},
		{name: "depends transitively on a live flag", flags: []string{
			`{"id":3,"key":"dev","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`,
			personFlag(2, "mid", depFilter("dev")), personFlag(1, "f", depFilter("mid"))}, why: WhyDependency},
		{name: "unknown cohort", flags: []string{personFlag(1, "f", cohortFilter(99))}, why: WhyUnknownCohort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t, testDefs(t, tc.cohorts, tc.flags...), tc.opt)
			fp := mustFlag(t, p, "f")
			if fp.Precomputable || fp.Why != tc.why {
				t.Fatalf("f: Precomputable %v, Why %q; want false, %q", fp.Precomputable, fp.Why, tc.why)
			}
			if slices.Contains(p.Keys(Persons), "f") || slices.Contains(p.Keys(0), "f") || slices.Contains(p.Keys(1), "f") {
				t.Errorf("Keys lists the live flag f: persons %v, 0 %v, 1 %v", p.Keys(Persons), p.Keys(0), p.Keys(1))
			}
			if got := p.Changed(nil); slices.Contains(got, "f") {
				t.Errorf("Changed(nil) = %v lists the live flag f", got)
			}
		})
	}
}

func TestPlanRequestOnlyOptionReplacesDefault(t *testing.T) {
	d := testDefs(t, nil, personFlag(1, "f", `[{"key":"$geoip_country_code","type":"person","operator":"exact","value":["FR"]}]`))
	p := testPlan(t, d, Options{RequestOnly: []string{"email"}})
	if fp := mustFlag(t, p, "f"); !fp.Precomputable || fp.Subject != Persons {
		t.Errorf("with RequestOnly [email], a $geoip flag: Precomputable %v Subject %d Why %q; want stored on persons", fp.Precomputable, fp.Subject, fp.Why)
	}
	p = testPlan(t, d, Options{RequestOnly: []string{}})
	if fp := mustFlag(t, p, "f"); !fp.Precomputable {
		t.Errorf("with an empty (non-nil) RequestOnly, a $geoip flag is not precomputable: %q", fp.Why)
	}
}

func TestPlanPrecomputable(t *testing.T) {
	cases := []struct {
		name    string
		cohorts []flags.Cohort
		flags   []string
		subject int
		reads   []string
	}{
		{name: "person flag", flags: []string{personFlag(1, "f", emailFilter)}, subject: Persons, reads: []string{"email"}},
		{name: "person flag without conditions", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"groups":[]}}`}, subject: Persons},
		{name: "disabled person flag", flags: []string{`{"id":1,"key":"f","active":false,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}}`}, subject: Persons},
		{name: "group flag", flags: []string{groupFlag(1, "f", 0, planFilter)}, subject: 0, reads: []string{"plan"}},
		{name: "group flag on type 1", flags: []string{groupFlag(1, "f", 1, projectFilter)}, subject: 1, reads: []string{"tier"}},
		{name: "group flag with overrides of its own type", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50}]},"overrides":[{"group_type_index":0,"group_keys":["acme"],"value":true}]}`}, subject: 0},
		{name: "person flag with distinct-id overrides", flags: []string{`{"id":1,"key":"f","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]},"overrides":[{"distinct_ids":["u1"],"value":true}]}`}, subject: Persons},
		{name: "dynamic cohort", cohorts: []flags.Cohort{dynCohort(5, "country", "age")}, flags: []string{personFlag(1, "f", cohortFilter(5))}, subject: Persons, reads: []string{"age", "country"}},
		{name: "nested dynamic cohorts", cohorts: []flags.Cohort{dynCohort(5, "country"), {ID: 6, Filters: flags.PropertyGroup{Type: "OR", Values: []flags.PropertyNode{
			{Filter: &flags.PropertyFilter{Key: "id", Type: "cohort", Value: json.RawMessage(`5`)}},
			{Filter: &flags.PropertyFilter{Key: "lang", Type: "person", Value: json.RawMessage(`["fr"]`)}}}}}},
			flags: []string{personFlag(1, "f", cohortFilter(6))}, subject: Persons, reads: []string{"country", "lang"}},
		{name: "depends on a person flag", flags: []string{personFlag(2, "dep", emailFilter), personFlag(1, "f", `[{"key":"age","type":"person","operator":"gt","value":18},{"key":"dep","type":"flag","operator":"flag_evaluates_to","value":true}]`)},
			subject: Persons, reads: []string{"age", "email"}},
		{name: "depends transitively", cohorts: []flags.Cohort{dynCohort(5, "country")}, flags: []string{personFlag(3, "base", cohortFilter(5)), personFlag(2, "mid", depFilter("base")), personFlag(1, "f", depFilter("mid"))},
			subject: Persons, reads: []string{"country"}},
		{name: "group flag depends on a group flag", flags: []string{groupFlag(2, "dep", 0, planFilter), groupFlag(1, "f", 0, `[{"key":"seats","type":"group","group_type_index":0,"operator":"gt","value":5},{"key":"dep","type":"flag","operator":"flag_evaluates_to","value":true}]`)},
			subject: 0, reads: []string{"plan", "seats"}},
		{name: "depends on a missing flag", flags: []string{personFlag(1, "f", depFilter("nope"))}, subject: Persons},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlan(t, testDefs(t, tc.cohorts, tc.flags...), Options{})
			fp := mustFlag(t, p, "f")
			if !fp.Precomputable || fp.Why != "" || fp.Subject != tc.subject {
				t.Fatalf("f: Precomputable %v Why %q Subject %d; want true, \"\", %d", fp.Precomputable, fp.Why, fp.Subject, tc.subject)
			}
			if !slices.Equal(fp.Reads, tc.reads) {
				t.Errorf("Reads = %q, want %q", fp.Reads, tc.reads)
			}
			if fp.ID != 1 {
				t.Errorf("ID = %d, want 1", fp.ID)
			}
			if !slices.Contains(p.Keys(tc.subject), "f") {
				t.Errorf("Keys(%d) = %v lacks f", tc.subject, p.Keys(tc.subject))
			}
			if i, ok := p.Index("f"); !ok || p.Flags[i].Key != "f" {
				t.Errorf("Index(f) = %d, %v", i, ok)
			}
			if got, ok := p.byID(1); !ok || got.Key != "f" {
				t.Errorf("byID(1) = %v, %v", got, ok)
			}
		})
	}
}

// stampTeam is a team whose flags read each other and cohorts.
type stampTeam struct {
	cohorts []flags.Cohort
	flags   map[string]string
	order   []string
	pmv     int
	tz      string
}

func newStampTeam() *stampTeam {
	return &stampTeam{
		cohorts: []flags.Cohort{dynCohort(5, "country"), dynCohort(6, "lang")},
		flags: map[string]string{
			"base":    personFlag(1, "base", cohortFilter(5)),
			"dep":     personFlag(2, "dep", depFilter("base")),
			"other":   personFlag(3, "other", emailFilter),
			"company": groupFlag(4, "company", 0, planFilter),
			"device":  `{"id":5,"key":"device","active":true,"bucketing_identifier":"device_id","filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}`,
			"lang":    personFlag(6, "lang", cohortFilter(6)),
		},
		order: []string{"base", "dep", "other", "company", "device", "lang"},
	}
}

func (s *stampTeam) plan(t testing.TB) *Plan {
	t.Helper()
	var js []string
	for _, k := range s.order {
		js = append(js, s.flags[k])
	}
	d := testDefs(t, slices.Clone(s.cohorts), js...)
	d.PropertyMatchingVersion, d.Timezone = s.pmv, s.tz
	return testPlan(t, d, Options{})
}

func stamps(p *Plan) map[string]uint64 {
	out := map[string]uint64{}
	for _, fp := range p.Flags {
		out[fp.Key] = fp.Stamp
	}
	return out
}

func TestPlanStamps(t *testing.T) {
	all := []string{"base", "dep", "other", "company", "device", "lang"}
	cases := []struct {
		name    string
		change  func(*stampTeam)
		stamped []string // flags whose stamp changes
		changed []string // Changed(old), in evaluation order
	}{
		{name: "nothing", change: func(*stampTeam) {}},
		{name: "flag json", change: func(s *stampTeam) {
			s.flags["other"] = strings.Replace(s.flags["other"], `"rollout_percentage":100`, `"rollout_percentage":50`, 1)
		},
			stamped: []string{"other"}, changed: []string{"other"}},
		{name: "flag description only", change: func(s *stampTeam) {
			s.flags["other"] = strings.Replace(s.flags["other"], `"active":true`, `"active":true,"description":"x"`, 1)
		}, stamped: []string{"other"}, changed: []string{"other"}},
		{name: "cohort read", change: func(s *stampTeam) { s.cohorts[0] = dynCohort(5, "country", "city") },
			stamped: []string{"base", "dep"}, changed: []string{"base", "dep"}},
		{name: "cohort version", change: func(s *stampTeam) { s.cohorts[1].Version = 2 },
			stamped: []string{"lang"}, changed: []string{"lang"}},
		{name: "unrelated cohort added", change: func(s *stampTeam) { s.cohorts = append(s.cohorts, dynCohort(9, "x")) }},
		{name: "dependency", change: func(s *stampTeam) {
			s.flags["base"] = strings.Replace(s.flags["base"], `"rollout_percentage":100`, `"rollout_percentage":10`, 1)
		},
			stamped: []string{"base", "dep"}, changed: []string{"base", "dep"}},
		{name: "dependent only", change: func(s *stampTeam) {
			s.flags["dep"] = strings.Replace(s.flags["dep"], `"rollout_percentage":100`, `"rollout_percentage":10`, 1)
		},
			stamped: []string{"dep"}, changed: []string{"dep"}},
		{name: "live flag", change: func(s *stampTeam) {
			s.flags["device"] = strings.Replace(s.flags["device"], `"rollout_percentage":50`, `"rollout_percentage":10`, 1)
		}, stamped: []string{"device"}},
		{name: "unrelated flag added", change: func(s *stampTeam) {
			s.flags["new"] = personFlag(7, "new", emailFilter)
			s.order = append(s.order, "new")
		},
			changed: []string{"new"}},
		{name: "property matching version", change: func(s *stampTeam) { s.pmv = 2 }, stamped: all, changed: []string{"base", "dep", "other", "company", "lang"}},
		{name: "timezone", change: func(s *stampTeam) { s.tz = "Europe/Paris" }, stamped: all, changed: []string{"base", "dep", "other", "company", "lang"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStampTeam()
			old := s.plan(t)
			before := stamps(old)
			// A plan built twice from the same definitions is identical.
			if again := s.plan(t); again.Fingerprint != old.Fingerprint || len(again.Changed(old)) != 0 {
				t.Fatalf("rebuilding the plan: fingerprint %x vs %x, Changed %v", again.Fingerprint, old.Fingerprint, again.Changed(old))
			}
			tc.change(s)
			p := s.plan(t)
			after := stamps(p)
			var stamped []string
			for _, k := range all {
				if before[k] != after[k] {
					stamped = append(stamped, k)
				}
			}
			if !slices.Equal(stamped, tc.stamped) {
				t.Errorf("stamps changed for %v, want %v", stamped, tc.stamped)
			}
			got := p.Changed(old)
			if !slices.Equal(got, tc.changed) {
				t.Errorf("Changed(old) = %v, want %v", got, tc.changed)
			}
			if fpChanged := p.Fingerprint != old.Fingerprint; fpChanged != (len(tc.changed) > 0) {
				t.Errorf("Fingerprint changed %v, want %v", fpChanged, len(tc.changed) > 0)
			}
		})
	}
}

func TestPlanFingerprintSubjectChange(t *testing.T) {
	// A flag that stops being precomputable changes the fingerprint even
	// though no precomputable flag's stamp changes.
	d := testDefs(t, nil, personFlag(1, "a", emailFilter), personFlag(2, "b", `[{"key":"$host","type":"person","operator":"exact","value":["x"]}]`))
	p1 := testPlan(t, d, Options{RequestOnly: []string{}})
	p2 := testPlan(t, d, Options{})
	if mustFlag(t, p1, "b").Stamp != mustFlag(t, p2, "b").Stamp {
		t.Fatal("the stamp depends on Options")
	}
	if p1.Fingerprint == p2.Fingerprint {
		t.Error("Fingerprint unchanged when b stops being precomputable")
	}
	if got := p2.Changed(p1); len(got) != 0 {
		t.Errorf("p2.Changed(p1) = %v, want none (b is no longer stored)", got)
	}
	if got := p1.Changed(p2); !slices.Equal(got, []string{"b"}) {
		t.Errorf("p1.Changed(p2) = %v, want [b]", got)
	}
}

func TestPlanKeysAndGroupTypes(t *testing.T) {
	d := testDefs(t, nil,
		personFlag(1, "p1", emailFilter),
		groupFlag(2, "g1", 1, projectFilter),
		personFlag(3, "p2", depFilter("p1")),
		groupFlag(4, "g0", 0, planFilter),
		`{"id":5,"key":"dev","active":true,"bucketing_identifier":"device_id","filters":{"groups":[]}}`,
		groupFlag(6, "g0b", 0, `[]`),
	)
	p := testPlan(t, d, Options{})
	if got, want := p.Keys(Persons), []string{"p1", "p2"}; !slices.Equal(got, want) {
		t.Errorf("Keys(Persons) = %v, want %v", got, want)
	}
	if got, want := p.Keys(0), []string{"g0", "g0b"}; !slices.Equal(got, want) {
		t.Errorf("Keys(0) = %v, want %v", got, want)
	}
	if got, want := p.Keys(1), []string{"g1"}; !slices.Equal(got, want) {
		t.Errorf("Keys(1) = %v, want %v", got, want)
	}
	if got := p.Keys(2); len(got) != 0 {
		t.Errorf("Keys(2) = %v", got)
	}
	if got, want := p.GroupTypes(), []int{0, 1}; !slices.Equal(got, want) {
		t.Errorf("GroupTypes() = %v, want %v", got, want)
	}
	if got, want := p.Changed(nil), []string{"p1", "g1", "p2", "g0", "g0b"}; !slices.Equal(got, want) {
		// evaluation order is the set's; compare as sets, then order by Flags
		var order []string
		for _, fp := range p.Flags {
			if fp.Precomputable {
				order = append(order, fp.Key)
			}
		}
		if !slices.Equal(got, order) {
			t.Errorf("Changed(nil) = %v, want the precomputable flags in evaluation order %v", got, order)
		}
	}
	if len(p.Flags) != 6 {
		t.Errorf("len(Flags) = %d, want 6", len(p.Flags))
	}
	if _, ok := p.Flag("nope"); ok {
		t.Error("Flag(nope) found")
	}
	onlyPersons := testPlan(t, testDefs(t, nil, personFlag(1, "p", emailFilter)), Options{})
	if got := onlyPersons.GroupTypes(); len(got) != 0 {
		t.Errorf("GroupTypes() of a persons-only team = %v", got)
	}
}

// A group flag on a group type the team never named cannot be asked for
// (requests name groups by type name): it stays live.
func TestPlanUnnamedGroupType(t *testing.T) {
	defs, err := flags.ParseDefinitions([]byte(`{"group_type_mapping":{"0":"company"},"flags":[
	 {"id":1,"key":"named","active":true,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[],"rollout_percentage":50}]}},
	 {"id":2,"key":"unnamed","active":true,"filters":{"aggregation_group_type_index":3,"groups":[{"properties":[],"rollout_percentage":50}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	set, _ := flags.Compile(defs)
	p := NewPlan(defs, set, Options{})
	if fp, _ := p.Flag("named"); !fp.Precomputable || fp.Subject != 0 {
		t.Errorf("named: %+v", fp)
	}
	if fp, _ := p.Flag("unnamed"); fp.Precomputable || fp.Why != WhyNoGroupTypeSet {
		t.Errorf("unnamed: %+v, want %s", fp, WhyNoGroupTypeSet)
	}
}
