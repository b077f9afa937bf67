package posthogdiff

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/vexil-dev/vexil/flags"
)

// The generator draws property values and filter values from shared pools,
// one per kind of property, so that filters match often enough to matter.

var (
	textValues = []any{"a", "A", "abc", "ABC", "xabcx", "straße", "STRASSE", "Straße", "É", "é", "éclair", "ÉCLAIR",
		"İstanbul", "istanbul", "ǅ", "ǆ", "foo@corp.com", "FOO@Corp.COM", "bar@example.org", "", "null", "true", "false",
		"True", "FALSE", " a ", "a\nb", "日本", "word here", "a word"}
	numberValues = []any{json.Number("5"), json.Number("5.0"), json.Number("-3"), json.Number("1.5"), json.Number("0"),
		json.Number("1000"), json.Number("12"), json.Number("1e3"), "5", "5.0", "-3", "12", "1.5", "1e3", " 5", "abc", "0x10",
		true, false, nil}
	dateValues = []any{"2024-01-15", "2024-01-15T10:00:00Z", "2024-01-15 10:00:00", "2024-01-15T10:00:00+02:00",
		"2023-12-31", "2020-02-29", "2026-06-01T00:00:00Z", "2019-07-04T12:30:00.123Z", "not a date", "2024-13-01",
		json.Number("1700000000"), ""}
	relativeDates = []any{"-7d", "7d", "-30d", "-1m", "-6m", "-1y", "-2y", "-12h", "-1w", "-3w", "-100d", "-10y"}
	semverValues  = []any{"1.2.3", "1.2", "1", "v1.2.3", "2.0.0", "2.0.0-rc1", "1.2.3-beta", "0.1.5", "0.0.3", "10.0.1",
		"1.10.0", "1.9.9", "3.08", "1.02.3", "garbage", "", json.Number("2"), json.Number("1.5")}
	wildcards = []any{"1.*", "1.2.*", "*", "0.*", "2.*", "10.0.*"}
	regexes   = []any{"^a", "c$", "a.c", "[a-c]+", "^(foo|bar)", `\d+`, "é", "(?i)abc", `\bword\b`, "[", "^$", "", "corp\\.com$",
		"^[A-Z]", "x*", "(a+)+$", "ß"}
	listValues = []any{[]any{"a", "b"}, []any{"1.2.3"}, []any{json.Number("5"), "x"}, []any{}, []any{true}}
	keys       = []struct {
		name string
		pool [][]any
	}{
		{"name", [][]any{textValues}},
		{"email", [][]any{textValues}},
		{"n", [][]any{numberValues}},
		{"signup", [][]any{dateValues}},
		{"app_version", [][]any{semverValues}},
		{"tags", [][]any{listValues, textValues}},
		{"flag", [][]any{{true, false, "true", "false", "TRUE", nil, json.Number("0"), json.Number("1"), ""}}},
	}
	groupKeys = []struct {
		name string
		pool [][]any
	}{
		{"plan", [][]any{textValues}},
		{"seats", [][]any{numberValues}},
		{"created", [][]any{dateValues}},
	}
	textOps      = []string{"exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "is_set", "is_not_set"}
	numberOps    = []string{"gt", "gte", "lt", "lte", "exact", "is_not"}
	dateOps      = []string{"is_date_before", "is_date_after"}
	semverOps    = []string{"semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte", "semver_tilde", "semver_caret", "semver_wildcard"}
	allPersonOps = append(append(append(append([]string{}, textOps...), numberOps...), dateOps...), semverOps...)
)

type gen struct {
	r *rand.Rand
}

func (g *gen) pick(xs []any) any        { return xs[g.r.IntN(len(xs))] }
func (g *gen) pickS(xs []string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) chance(p float64) bool    { return g.r.Float64() < p }

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// value draws a value of a key's kind (sometimes of another kind).
func (g *gen) value(pools [][]any) any {
	if g.chance(0.1) {
		all := [][]any{textValues, numberValues, dateValues, semverValues, listValues}
		return g.pick(all[g.r.IntN(len(all))])
	}
	return g.pick(pools[g.r.IntN(len(pools))])
}

// operatorFor picks an operator for a key's kind, and a filter value.
func (g *gen) operatorFor(key string, pools [][]any) (string, any) {
	var op string
	switch {
	case g.chance(0.15):
		op = g.pickS(allPersonOps)
	case key == "n" || key == "seats":
		op = g.pickS(numberOps)
	case key == "signup" || key == "created":
		op = g.pickS(dateOps)
	case key == "app_version":
		op = g.pickS(semverOps)
	default:
		op = g.pickS(textOps)
	}
	switch {
	case op == "regex" || op == "not_regex":
		return op, g.pick(regexes)
	case op == "is_set" || op == "is_not_set":
		return op, op
	case op == "is_date_before" || op == "is_date_after":
		if g.chance(0.4) {
			return op, g.pick(relativeDates)
		}
		return op, g.pick(dateValues)
	case op == "semver_wildcard":
		// Never a full version: there the SDK and the server disagree
		// (posthog-compat §5.2, SDK-only caution), and Vexil follows the server.
		return op, g.pick(wildcards)
	case len(op) > 7 && op[:7] == "semver_":
		return op, g.pick(semverValues)
	case op == "exact" || op == "is_not":
		if g.chance(0.3) {
			n := 1 + g.r.IntN(3)
			list := make([]any, n)
			for i := range list {
				list[i] = g.value(pools)
			}
			return op, list
		}
		return op, g.value(pools)
	}
	return op, g.value(pools)
}

func (g *gen) personFilter() flags.PropertyFilter {
	if g.chance(0.05) {
		ids := []any{"u1", "u2", "U1", json.Number("7")}
		return flags.PropertyFilter{Key: "distinct_id", Type: "person", Operator: "exact", Value: raw(g.pick(ids))}
	}
	k := keys[g.r.IntN(len(keys))]
	op, v := g.operatorFor(k.name, k.pool)
	f := flags.PropertyFilter{Key: k.name, Type: "person", Operator: op, Value: raw(v)}
	if op == "exact" && g.chance(0.1) {
		f.Operator = "" // a missing operator means exact
	}
	return f
}

func (g *gen) groupFilter(idx int) flags.PropertyFilter {
	k := groupKeys[g.r.IntN(len(groupKeys))]
	op, v := g.operatorFor(k.name, k.pool)
	i := idx
	return flags.PropertyFilter{Key: k.name, Type: "group", GroupTypeIndex: &i, Operator: op, Value: raw(v)}
}

// cohortGroup is a random AND/OR tree of person filters and references to
// earlier cohorts, with negation inside.
func (g *gen) cohortGroup(depth int, earlier []int64) flags.PropertyGroup {
	pg := flags.PropertyGroup{Type: g.pickS([]string{"AND", "OR"})}
	n := g.r.IntN(3) + 1
	if g.chance(0.05) {
		n = 0 // an empty group matches
	}
	for range n {
		switch {
		case depth < 2 && g.chance(0.25):
			sub := g.cohortGroup(depth+1, earlier)
			pg.Values = append(pg.Values, flags.PropertyNode{Group: &sub})
		case len(earlier) > 0 && g.chance(0.2):
			id := earlier[g.r.IntN(len(earlier))]
			f := flags.PropertyFilter{Key: "id", Type: "cohort", Value: raw(id), Negation: g.chance(0.2)}
			pg.Values = append(pg.Values, flags.PropertyNode{Filter: &f})
		default:
			f := g.personFilter()
			f.Negation = g.chance(0.2)
			pg.Values = append(pg.Values, flags.PropertyNode{Filter: &f})
		}
	}
	return pg
}

var rollouts = []*float64{nil, ptr(0.0), ptr(30.0), ptr(50.5), ptr(100.0), ptr(100.0), ptr(75.0), ptr(99.9)}

func ptr[T any](v T) *T { return &v }

// generate builds one case from its seed.
func generate(id int, seed uint64) testCase {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	defs := flags.Definitions{GroupTypes: map[int]string{0: "company", 1: "project"}}
	if g.chance(0.2) {
		defs.PropertyMatchingVersion = 2
	}
	// Cohorts: dynamic ones (property groups, possibly nesting earlier
	// ones), and now and then a static one (the SDK cannot decide it).
	var cohortIDs []int64
	for i := range g.r.IntN(3) {
		cid := int64(10 + i)
		defs.Cohorts = append(defs.Cohorts, flags.Cohort{ID: cid, Kind: flags.CohortDynamic, Filters: g.cohortGroup(0, cohortIDs)})
		cohortIDs = append(cohortIDs, cid)
	}
	if g.chance(0.1) {
		defs.Cohorts = append(defs.Cohorts, flags.Cohort{ID: 99, Kind: flags.CohortStatic})
		cohortIDs = append(cohortIDs, 99)
	}

	nflags := 1 + g.r.IntN(4)
	for i := range nflags {
		f := flags.Flag{ID: int64(i + 1), TeamID: 1, Key: fmt.Sprintf("flag-%d", i), Active: !g.chance(0.08), Version: 1}
		agg := -1
		if g.chance(0.2) {
			agg = g.r.IntN(2)
			a := agg
			f.Filters.AggregationGroupTypeIndex = &a
		}
		var variants []string
		if g.chance(0.4) {
			n := 2 + g.r.IntN(3)
			pcts := split(g, n)
			mv := &flags.Multivariate{}
			for j := range n {
				v := fmt.Sprintf("v%d", j)
				if j == 0 && g.chance(0.3) {
					v = "Control" // variant keys are case-sensitive
				}
				mv.Variants = append(mv.Variants, flags.Variant{Key: v, RolloutPercentage: pcts[j]})
				variants = append(variants, v)
			}
			f.Filters.Multivariate = mv
		}
		if g.chance(0.6) {
			f.Filters.Payloads = map[string]json.RawMessage{}
			if variants == nil {
				f.Filters.Payloads["true"] = raw(`{"on": 1}`)
			}
			for _, v := range variants {
				if g.chance(0.7) {
					f.Filters.Payloads[v] = raw(fmt.Sprintf(`{"variant": %q}`, v))
				}
			}
		}
		ncond := 1 + g.r.IntN(3)
		if g.chance(0.05) {
			ncond = 0
		}
		for range ncond {
			c := flags.Condition{RolloutPercentage: rollouts[g.r.IntN(len(rollouts))]}
			for range g.r.IntN(3) {
				switch {
				case agg >= 0:
					c.Properties = append(c.Properties, g.groupFilter(agg))
				case len(cohortIDs) > 0 && g.chance(0.15):
					op := g.pickS([]string{"in", "not_in", ""})
					id := cohortIDs[g.r.IntN(len(cohortIDs))]
					c.Properties = append(c.Properties, flags.PropertyFilter{Key: "id", Type: "cohort", Operator: op, Value: raw(id)})
				case i > 0 && defs.Flags[i-1].Filters.AggregationGroupTypeIndex == nil && g.chance(0.15):
					// A dependency on an earlier person flag: true, false or a
					// variant. Not on a group flag: posthog-python evaluates such
					// a dependency on the person's id, the server on the group.
					dep := defs.Flags[i-1]
					var v any = g.chance(0.5)
					if dep.Filters.Multivariate != nil && g.chance(0.5) {
						v = dep.Filters.Multivariate.Variants[g.r.IntN(len(dep.Filters.Multivariate.Variants))].Key
					}
					c.Properties = append(c.Properties, flags.PropertyFilter{Key: dep.Key, Type: "flag", Operator: "flag_evaluates_to", Value: raw(v)})
				default:
					c.Properties = append(c.Properties, g.personFilter())
				}
			}
			if variants != nil && g.chance(0.3) {
				v := variants[g.r.IntN(len(variants))]
				if g.chance(0.2) {
					v = "no-such-variant"
				}
				c.Variant = &v
			}
			f.Filters.Groups = append(f.Filters.Groups, c)
		}
		if g.chance(0.1) {
			f.Filters.Holdout = &flags.Holdout{ID: 7, ExclusionPercentage: float64(g.r.IntN(4) * 20)}
		}
		if g.chance(0.1) {
			f.Filters.EarlyExit = true
		}
		if agg < 0 && g.chance(0.15) {
			var v any = g.chance(0.5)
			if variants != nil {
				v = variants[g.r.IntN(len(variants))]
				if g.chance(0.3) {
					v = false
				}
			}
			f.Overrides = []flags.Override{{DistinctIDs: []string{"u1", "u3"}, Value: raw(v)}}
		}
		defs.Flags = append(defs.Flags, f)
	}

	c := testCase{ID: id, Seed: seed, Defs: defs, DistinctID: g.pickS([]string{"u1", "u2", "u3", "user-42", "ÉMILE", "7"}),
		Person: map[string]any{}}
	for _, k := range keys {
		if g.chance(0.6) {
			c.Person[k.name] = g.value(k.pool)
		}
	}
	if g.chance(0.3) {
		c.Person["distinct_id"] = c.DistinctID
	}
	if g.chance(0.7) {
		c.Groups = map[string]string{}
		c.GroupProps = map[string]map[string]any{}
		for _, name := range []string{"company", "project"} {
			if !g.chance(0.7) {
				continue
			}
			c.Groups[name] = g.pickS([]string{"acme", "globex", "42"})
			props := map[string]any{}
			for _, k := range groupKeys {
				if g.chance(0.7) {
					props[k.name] = g.value(k.pool)
				}
			}
			c.GroupProps[name] = props
		}
	}
	return c
}

// split draws n variant percentages: mostly summing to 100, sometimes less
// or more, sometimes with a zero or a fraction.
func split(g *gen, n int) []float64 {
	out := make([]float64, n)
	switch {
	case g.chance(0.15):
		for i := range out {
			out[i] = float64(g.r.IntN(40))
		}
	case g.chance(0.1):
		for i := range out {
			out[i] = 33.33
		}
		out[n-1] = 100 - 33.33*float64(n-1)
	default:
		left := 100
		for i := range n - 1 {
			out[i] = float64(g.r.IntN(left + 1))
			left -= int(out[i])
		}
		out[n-1] = float64(left)
	}
	return out
}
