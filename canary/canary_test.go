package canary

import (
	"strings"
	"testing"
	"time"
)

// TestGate: any divergence fails; a p99 regression fails only past both
// the ratio and the slack.
func TestGate(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Result
		fail string
	}{
		{"clean", Result{Compared: 10, Baseline: Latency{P99: 1}, Candidate: Latency{P99: 1.1}}, ""},
		{"diverged", Result{Compared: 10, Diverged: 1, Baseline: Latency{P99: 1}, Candidate: Latency{P99: 1}}, "1 of 10 compared requests diverged"},
		{"slower within slack", Result{Compared: 10, Baseline: Latency{P99: 1}, Candidate: Latency{P99: 2.5}}, ""},
		{"slower past both", Result{Compared: 10, Baseline: Latency{P99: 1}, Candidate: Latency{P99: 4}}, "p99 regressed"},
		{"nothing compared", Result{}, "no request was compared"},
	} {
		err := c.r.Gate(0.2, 2*time.Millisecond)
		switch {
		case c.fail == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.fail != "" && (err == nil || !strings.Contains(err.Error(), c.fail)):
			t.Errorf("%s: %v, want %q", c.name, err, c.fail)
		}
	}
}

// TestCompareFlags: v2 records and v1 (/decide) maps compare on values,
// variants and payloads, not on ids, versions or reasons.
func TestCompareFlags(t *testing.T) {
	a := `{"flags":{"f":{"key":"f","enabled":true,"variant":"x","reason":{"code":"condition_match"},"metadata":{"id":1,"version":3,"payload":"{\"a\":1}"}},
	               "g":{"key":"g","enabled":false,"variant":null,"metadata":{"id":2}}},"errorsWhileComputingFlags":false}`
	b := `{"flags":{"f":{"key":"f","enabled":true,"variant":"x","reason":{"code":"other"},"metadata":{"id":9,"version":1,"payload":"{\"a\":1}"}},
	               "g":{"key":"g","enabled":false,"variant":null,"metadata":{"id":7}}},"errorsWhileComputingFlags":false}`
	if d := compareFlags([]byte(a), []byte(b)); len(d) != 0 {
		t.Errorf("equal answers: %q", d)
	}
	c := strings.Replace(strings.Replace(b, `"variant":"x"`, `"variant":"y"`, 1), `{\"a\":1}`, `{\"a\":2}`, 1)
	d := compareFlags([]byte(a), []byte(c))
	if want := []string{`flag f: value "x" != "y"`, `flag f: payload "{\"a\":1}" != "{\"a\":2}"`}; strings.Join(d, "|") != strings.Join(want, "|") {
		t.Errorf("diffs %q, want %q", d, want)
	}
	v1a := `{"featureFlags":{"f":"x","g":true},"featureFlagPayloads":{"f":"p"}}`
	v1b := `{"featureFlags":{"f":"x"},"featureFlagPayloads":{"f":"q"}}`
	if d := compareFlags([]byte(v1a), []byte(v1b)); strings.Join(d, "|") != `flag f: payload "p" != "q"|flag g: only in the baseline (true)` {
		t.Errorf("v1 diffs %q", d)
	}
}
