package flags

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// gen builds random definitions and contexts from a seeded source.
type gen struct{ r *rand.Rand }

var genProps = []string{"plan", "country", "age", "email", "signup", "app", "beta"}

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g gen) filter(keys []string, self int) PropertyFilter {
	if self > 0 && g.r.IntN(8) == 0 {
		dep := keys[g.r.IntN(len(keys))] // any flag: cycles are allowed and must fail consistently
		vals := []string{`true`, `false`, `"a"`, `"b"`}
		return PropertyFilter{Key: dep, Type: "flag", Operator: "flag_evaluates_to", Value: json.RawMessage(vals[g.r.IntN(len(vals))])}
	}
	if g.r.IntN(10) == 0 {
		return PropertyFilter{Key: "id", Type: "cohort", Value: json.RawMessage(fmt.Sprint(1 + g.r.IntN(2))), Operator: g.pick("in", "not_in")}
	}
	if g.r.IntN(10) == 0 {
		return PropertyFilter{Key: "tier", Type: "group", GroupTypeIndex: ptr(0), Operator: g.pick("exact", "is_not", "is_set"), Value: json.RawMessage(`"gold"`)}
	}
	key := genProps[g.r.IntN(len(genProps))]
	var op, val string
	switch key {
	case "plan", "country":
		op = g.pick("exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "is_set", "is_not_set", "starts_with")
		val = g.pick(`"pro"`, `"free"`, `["pro","team"]`, `"US"`, `"u"`, `"^p"`)
	case "age":
		op = g.pick("gt", "gte", "lt", "lte", "exact", "between")
		val = g.pick(`18`, `"30"`, `21.5`, `"ten"`) // "ten" never matches
		if op == "between" {
			val = g.pick(`[18, 40]`, `[40, 18]`)
		}
	case "email":
		op = g.pick("icontains", "ends_with", "regex", "icontains_multi")
		val = g.pick(`"@corp.com"`, `"corp"`, `["x","corp"]`)
	case "signup":
		op = g.pick("is_date_before", "is_date_after")
		val = g.pick(`"-3d"`, `"-1h"`, `"2m"`, `"-1w"`, `"2026-11-01"`, `"1y"`)
	case "app":
		op = g.pick("semver_gt", "semver_lt", "semver_eq", "semver_tilde", "semver_caret", "semver_wildcard")
		val = g.pick(`"1.2.3"`, `"2.0.0"`, `"1.*"`, `"one"`)
		if op != "semver_wildcard" && val == `"1.*"` {
			val = `"1.5.0"`
		}
	case "beta":
		op = g.pick("exact", "is_not")
		val = g.pick(`true`, `false`, `"true"`)
	}
	return PropertyFilter{Key: key, Type: "person", Operator: op, Value: json.RawMessage(val)}
}

func ptr[T any](v T) *T { return &v }

func (g gen) definitions(n int) Definitions {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("flag-%d", i)
	}
	d := Definitions{GroupTypes: map[int]string{0: "company"}}
	d.Cohorts = []Cohort{
		{ID: 1, Filters: PropertyGroup{Type: "OR", Values: []PropertyNode{{Filter: &PropertyFilter{Key: "email", Type: "person", Operator: "icontains", Value: json.RawMessage(`"corp"`)}}}}},
		{ID: 2, Filters: PropertyGroup{Type: "AND", Values: []PropertyNode{
			{Filter: &PropertyFilter{Key: "age", Type: "person", Operator: "gte", Value: json.RawMessage(`21`)}},
			{Filter: &PropertyFilter{Key: "signup", Type: "person", Operator: "is_date_after", Value: json.RawMessage(`"-2d"`), Negation: g.r.IntN(2) == 0}}}}},
	}
	for i, key := range keys {
		f := Flag{ID: int64(i + 1), Key: key, Active: g.r.IntN(10) != 0, Version: int64(1 + g.r.IntN(5))}
		for range 1 + g.r.IntN(3) {
			c := Condition{}
			for range g.r.IntN(3) {
				c.Properties = append(c.Properties, g.filter(keys, i))
			}
			if g.r.IntN(3) > 0 {
				c.RolloutPercentage = ptr(float64(g.r.IntN(101)))
			}
			if g.r.IntN(6) == 0 {
				c.Aggregation = Aggregation{Set: true, Index: ptr(0)}
			}
			f.Filters.Groups = append(f.Filters.Groups, c)
		}
		if g.r.IntN(3) == 0 {
			f.Filters.Multivariate = &Multivariate{Variants: []Variant{{Key: "a", RolloutPercentage: 50}, {Key: "b", RolloutPercentage: 30}, {Key: "c", RolloutPercentage: 20}}}
			f.Filters.Payloads = map[string]json.RawMessage{"a": json.RawMessage(`"{\"v\": 1}"`)}
		}
		if g.r.IntN(8) == 0 {
			f.Filters.Holdout = &Holdout{ID: 3, ExclusionPercentage: float64(g.r.IntN(30))}
		}
		if g.r.IntN(8) == 0 {
			f.Overrides = []Override{{DistinctIDs: []string{"user-1", "user-2"}, Value: json.RawMessage(`true`)}}
		}
		if g.r.IntN(6) == 0 {
			f.Filters.AggregationGroupTypeIndex = ptr(0)
		}
		d.Flags = append(d.Flags, f)
	}
	return d
}

func (g gen) context(now time.Time) *Context {
	props := map[string]any{}
	for _, k := range genProps {
		if g.r.IntN(4) == 0 {
			continue // absent
		}
		switch k {
		case "plan":
			props[k] = g.pick("pro", "free", "Team")
		case "country":
			props[k] = g.pick("US", "de", "FR")
		case "age":
			props[k] = []any{json.Number("17"), json.Number("30"), "21.5", "x", nil}[g.r.IntN(5)]
		case "email":
			props[k] = g.pick("a@corp.com", "b@CORP.com", "c@x.org")
		case "signup":
			props[k] = now.Add(-time.Duration(g.r.IntN(24*400)) * time.Hour).Format(time.RFC3339)
		case "app":
			props[k] = []any{"1.2.3", "v2.0.1", "1.10.0", "junk", json.Number("2")}[g.r.IntN(5)]
		case "beta":
			props[k] = []any{true, false, "TRUE", nil}[g.r.IntN(4)]
		}
	}
	c := &Context{DistinctID: fmt.Sprintf("user-%d", g.r.IntN(50)), PersonProperties: props, Now: now, Partial: g.r.IntN(5) == 0}
	if g.r.IntN(2) == 0 {
		c.Groups = []Group{{Key: fmt.Sprintf("co-%d", g.r.IntN(5)), Properties: map[string]any{"tier": g.pick("gold", "silver")}}}
	}
	return c
}

// sameResult compares two results, errors by code.
func sameResult(a, b Result) bool {
	codeOf := func(err error) string {
		var ee *EvalError
		if errors.As(err, &ee) {
			return ee.Code
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	if codeOf(a.Err) != codeOf(b.Err) {
		return false
	}
	a.Err, b.Err = nil, nil
	return reflect.DeepEqual(a, b)
}

// sameValue compares what a client sees: value, payload, reason code.
func sameValue(a, b Result) bool {
	return a.Enabled == b.Enabled && a.Variant == b.Variant && string(a.Payload) == string(b.Payload) &&
		a.Reason.Code == b.Reason.Code && (a.Err == nil) == (b.Err == nil)
}

func TestDifferentialEntryPoints(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for it := range iterations {
		g := gen{rand.New(rand.NewPCG(uint64(it), 42))}
		defs := g.definitions(2 + g.r.IntN(12))
		set, _ := Compile(defs)

		// The same definitions in another order compile to the same answers.
		shuffled := defs
		shuffled.Flags = append([]Flag(nil), defs.Flags...)
		g.r.Shuffle(len(shuffled.Flags), func(i, j int) { shuffled.Flags[i], shuffled.Flags[j] = shuffled.Flags[j], shuffled.Flags[i] })
		set2, _ := Compile(shuffled)

		for range 10 {
			c := g.context(now)
			all := set.Evaluate(c)
			byKey := map[string]Result{}
			for _, r := range all {
				byKey[r.Key] = r
			}
			for _, r := range set2.Evaluate(c) {
				if !sameResult(r, byKey[r.Key]) {
					t.Fatalf("seed %d: order of definitions changed %s:\n%+v\n%+v", it, r.Key, byKey[r.Key], r)
				}
			}
			// Requested keys only: a random subset, in random order.
			keys := set.Keys()
			g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			keys = keys[:g.r.IntN(len(keys)+1)]
			sub := set.EvaluateKeys(c, keys)
			if len(sub) != len(keys) {
				t.Fatalf("seed %d: %d results for %d keys", it, len(sub), len(keys))
			}
			for _, r := range sub {
				if !sameResult(r, byKey[r.Key]) {
					t.Fatalf("seed %d: %s differs between all flags and requested keys:\n all %+v\n keys %+v", it, r.Key, byKey[r.Key], r)
				}
			}
			// Every stored form expands back to the very same result.
			for _, r := range all {
				cp, ok := r.Compact()
				if !ok {
					if r.Err == nil {
						t.Fatalf("seed %d: %s: a result without error does not compact: %+v", it, r.Key, r)
					}
					continue
				}
				back, ok := set.Expand(r.Key, cp)
				if !ok || !reflect.DeepEqual(back, r) {
					t.Fatalf("seed %d: %s: expand(compact) differs:\n got %+v\nwant %+v", it, r.Key, back, r)
				}
				// ExpandAt, at the flag's index in Keys and at a wrong
				// one (looked up by key), writes the same result over
				// whatever was there.
				at := slices.Index(set.Keys(), r.Key)
				for _, i := range []int{at, (at + 1) % set.Len(), -1} {
					dst := Result{Key: "junk", Variant: "junk", Payload: []byte("junk")}
					if !set.ExpandAt(i, r.Key, cp, &dst) || !reflect.DeepEqual(dst, r) {
						t.Fatalf("seed %d: %s: ExpandAt(%d) differs:\n got %+v\nwant %+v", it, r.Key, i, dst, r)
					}
				}
			}
			if set.Len() > 0 {
				var dst Result
				if set.ExpandAt(0, "no-such-flag", Compact{Code: ReasonNoConditionMatch, ConditionIndex: -1}, &dst) {
					t.Fatalf("seed %d: ExpandAt of an unknown key succeeded", it)
				}
			}
			// ValidUntil is sound: until then, time alone changes nothing;
			// without it, time alone never changes the value.
			for _, r := range all {
				later := c.Now.Add(time.Duration(1+g.r.IntN(24*500)) * time.Hour)
				if !r.ValidUntil.IsZero() {
					if !r.ValidUntil.After(c.Now) {
						t.Fatalf("seed %d: %s valid_until %v is not after now", it, r.Key, r.ValidUntil)
					}
					later = r.ValidUntil.Add(-time.Nanosecond)
				}
				c2 := *c
				c2.Now = later
				r2 := set.EvaluateKeys(&c2, []string{r.Key})[0]
				if !sameValue(r, r2) {
					t.Fatalf("seed %d: %s changed by time alone before valid_until %v (at %v):\n%+v\n%+v", it, r.Key, r.ValidUntil, later, r, r2)
				}
			}
		}
	}
}

// Fuzz targets. Seeds come from the case files and a few flags.

func addDefinitionSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/cases/*.json")
	for _, path := range files {
		var cf caseFile
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if err := json.Unmarshal(data, &cf); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(cf.Definitions))
	}
}

func FuzzParseDefinitions(f *testing.F) {
	addDefinitionSeeds(f)
	f.Add([]byte(`{"flags":[{"key":"a","active":true,"filters":{"groups":[{"properties":[{"key":"a","type":"flag","operator":"flag_evaluates_to","value":true}]}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseDefinitions(data)
		if err != nil {
			return
		}
		set, _ := Compile(defs)
		if set == nil {
			t.Fatal("nil set")
		}
		c := &Context{DistinctID: "fuzz", PersonProperties: map[string]any{"plan": "pro", "age": json.Number("30")},
			Groups: []Group{{Key: "acme"}}, Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		a, b := set.Evaluate(c), set.Evaluate(c)
		if len(a) != set.Len() || len(b) != len(a) {
			t.Fatalf("got %d and %d results for %d flags", len(a), len(b), set.Len())
		}
		for i := range a {
			if !sameResult(a[i], b[i]) {
				t.Fatalf("not deterministic: %+v vs %+v", a[i], b[i])
			}
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	f.Add(`{"key":"k","active":true,"filters":{"groups":[{"properties":[{"key":"p","type":"person","operator":"regex","value":"^a"}],"rollout_percentage":50}]}}`, "user-1", `{"p":"abc"}`)
	f.Add(`{"key":"k","active":true,"filters":{"groups":[{"properties":[{"key":"p","operator":"is_date_before","value":"-2m"}]}],"multivariate":{"variants":[{"key":"x","rollout_percentage":70}]}}}`, "", `{"p":"2026-02-30"}`)
	f.Add(`{"key":"k","active":true,"filters":{"groups":[{"properties":[{"key":"p","operator":"semver_caret","value":"0.0.1"}]}]}}`, "u", `{"p":"0.0.1-rc"}`)
	f.Fuzz(func(t *testing.T, flagJSON, distinctID, propsJSON string) {
		fl, err := ParseFlag([]byte(flagJSON))
		if err != nil {
			return
		}
		var props map[string]any
		if v, err := decodeValue(json.RawMessage(propsJSON)); err == nil {
			props, _ = v.(map[string]any)
		}
		set, _ := Compile(Definitions{Flags: []Flag{fl}, GroupTypes: map[int]string{0: "company"}})
		for _, partial := range []bool{false, true} {
			c := &Context{DistinctID: distinctID, PersonProperties: props, Partial: partial, Now: time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)}
			a := set.Evaluate(c)
			b := set.EvaluateKeys(c, []string{fl.Key})
			if len(a) != len(b) {
				t.Fatalf("%d results vs %d", len(a), len(b))
			}
			for i := range a {
				if !sameResult(a[i], b[i]) {
					t.Fatalf("entry points disagree: %+v vs %+v", a[i], b[i])
				}
				if a[i].Err != nil && a[i].Enabled {
					t.Fatalf("a failed flag is enabled: %+v", a[i])
				}
			}
		}
	})
}
