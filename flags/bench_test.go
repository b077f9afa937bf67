package flags

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func rollout(p float64) *float64 { return &p }

func benchContext() *Context {
	return &Context{
		DistinctID: "user-12345",
		PersonProperties: map[string]any{
			"email":   "someone@example.com",
			"country": "US",
			"plan":    "pro",
			"age":     json.Number("31"),
			"app":     "3.4.1",
		},
		Now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	}
}

func boolFlag(key string) Flag {
	return Flag{ID: 1, Key: key, Active: true, Version: 3, Filters: Filters{Groups: []Condition{{
		Properties: []PropertyFilter{
			{Key: "country", Type: "person", Operator: "exact", Value: json.RawMessage(`["US","CA"]`)},
			{Key: "plan", Type: "person", Operator: "is_not", Value: json.RawMessage(`"free"`)},
		},
		RolloutPercentage: rollout(50),
	}}, Payloads: map[string]json.RawMessage{"true": json.RawMessage(`"{\"on\": 1}"`)}}}
}

func multivariateFlag(key string) Flag {
	return Flag{ID: 2, Key: key, Active: true, Version: 1, Filters: Filters{
		Groups: []Condition{{Properties: []PropertyFilter{
			{Key: "country", Type: "person", Operator: "exact", Value: json.RawMessage(`["US"]`)},
		}, RolloutPercentage: rollout(100)}},
		Multivariate: &Multivariate{Variants: []Variant{
			{Key: "control", RolloutPercentage: 34}, {Key: "test", RolloutPercentage: 33}, {Key: "test-2", RolloutPercentage: 33},
		}},
		Payloads: map[string]json.RawMessage{"test": json.RawMessage(`"{\"price\": 9}"`)},
	}}
}

func regexFlag(key string) Flag {
	return Flag{ID: 3, Key: key, Active: true, Version: 1, Filters: Filters{Groups: []Condition{{
		Properties: []PropertyFilter{
			{Key: "email", Type: "person", Operator: "regex", Value: json.RawMessage(`"^[a-z]+@example\\.(com|org)$"`)},
		},
		RolloutPercentage: rollout(100),
	}}}}
}

func benchSet(b *testing.B, flags ...Flag) *Set {
	set, err := Compile(Definitions{Flags: flags})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func runBench(b *testing.B, set *Set) {
	c := benchContext()
	out := make([]Result, 0, set.Len())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out = set.AppendEvaluate(out[:0], c, nil)
	}
	b.StopTimer()
	if len(out) != set.Len() {
		b.Fatalf("got %d results", len(out))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(set.Len()), "ns/flag")
}

// BenchmarkEvaluateBoolean: a boolean flag with two property conditions and
// a 50% rollout.
func BenchmarkEvaluateBoolean(b *testing.B) { runBench(b, benchSet(b, boolFlag("bool-flag"))) }

// BenchmarkEvaluateMultivariate: three variants behind a country condition.
func BenchmarkEvaluateMultivariate(b *testing.B) {
	runBench(b, benchSet(b, multivariateFlag("mv-flag")))
}

// BenchmarkEvaluateRegex: one regex filter.
func BenchmarkEvaluateRegex(b *testing.B) { runBench(b, benchSet(b, regexFlag("regex-flag"))) }

// fiftyFlags is the peers' workload ("The peers" in BENCHMARKS.md): half
// boolean at 50% on the user id, half multivariate 34/33/33 gated on
// country == US.
func fiftyFlags() []Flag {
	var out []Flag
	for i := range 50 {
		if i%2 == 0 {
			out = append(out, Flag{ID: int64(i), Key: fmt.Sprintf("bool-%d", i), Active: true, Version: 1,
				Filters: Filters{Groups: []Condition{{Properties: []PropertyFilter{}, RolloutPercentage: rollout(50)}}}})
			continue
		}
		f := multivariateFlag(fmt.Sprintf("mv-%d", i))
		f.ID = int64(i)
		f.Filters.Groups[0].Properties[0].Value = json.RawMessage(`"US"`)
		out = append(out, f)
	}
	return out
}

// BenchmarkEvaluate50Flags evaluates a 50-flag team at once.
func BenchmarkEvaluate50Flags(b *testing.B) { runBench(b, benchSet(b, fiftyFlags()...)) }

// BenchmarkHash is the floor: one SHA-1 bucketing hash.
func BenchmarkHash(b *testing.B) {
	var sink float64
	for b.Loop() {
		sink += Hash("beta-feature", ".", "user-12345", "")
	}
	if sink < 0 {
		b.Fatal("impossible")
	}
}
