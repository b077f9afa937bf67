package flags

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// regexSet compiles one flag per pattern (key "f<i>"), each with a regex
// condition and a not_regex condition on "v" ahead of a catch-all, and
// returns the set and the problems Compile reported.
func regexSet(t *testing.T, patterns ...string) (*Set, ValidationErrors) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"flags":[`)
	for i, p := range patterns {
		if i > 0 {
			b.WriteByte(',')
		}
		q := strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `"`, `\"`)
		fmt.Fprintf(&b, `{"key":"f%d","active":true,"filters":{"groups":[{"properties":[{"key":"v","type":"person","operator":"regex","value":"%s"}]},`+
			`{"properties":[{"key":"v","type":"person","operator":"not_regex","value":"%s"}]}]}}`, i, q, q)
	}
	b.WriteString(`]}`)
	defs, err := ParseDefinitions([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	var ves ValidationErrors
	if err != nil && !errors.As(err, &ves) {
		t.Fatal(err)
	}
	return set, ves
}

func TestRegexProgramBound(t *testing.T) {
	huge := `(.*a){1000}$`
	atBound := `(.*a){199}$` // 5 instructions a repeat, plus 3: 998
	over := `(.*a){200}$`    // 1003
	if n := regexProgramSize(atBound); n > MaxRegexProgram {
		t.Fatalf("%s compiles to %d instructions, want at most %d", atBound, n, MaxRegexProgram)
	}
	if n := regexProgramSize(over); n <= MaxRegexProgram {
		t.Fatalf("%s compiles to %d instructions, want more than %d", over, n, MaxRegexProgram)
	}
	set, ves := regexSet(t, huge, over, atBound, `^.*@example\.com$`)
	var got []string
	for _, ve := range ves {
		if ve.Fatal {
			t.Errorf("%v is fatal, want a warning", ve)
		}
		got = append(got, ve.Flag+" "+ve.Path+" "+ve.Code)
	}
	want := []string{
		"f0 filters.groups[0].properties[0].value regex_too_large", "f0 filters.groups[1].properties[0].value regex_too_large",
		"f1 filters.groups[0].properties[0].value regex_too_large", "f1 filters.groups[1].properties[0].value regex_too_large",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for key, want := range map[string]bool{"f0": true, "f1": true, "f2": false, "f3": false} {
		info, _ := set.Info(key)
		if info.UnparsableFilters != want || info.Invalid != "" {
			t.Errorf("%s: UnparsableFilters %v Invalid %q, want %v and none", key, info.UnparsableFilters, info.Invalid, want)
		}
	}
	// A long value of "a"s: the refused patterns match nothing, regex and
	// not_regex alike (so neither condition matches); the one at the bound
	// runs, and its regex condition matches.
	value := strings.Repeat("a", 4096)
	res := set.Evaluate(&Context{DistinctID: "u", PersonProperties: map[string]any{"v": value}})
	enabled := map[string]bool{}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Key, r.Err)
		}
		enabled[r.Key] = r.Enabled
		if r.Key == "f2" && r.Reason.ConditionIndex != 0 {
			t.Errorf("f2: reason %+v, want condition 0", r.Reason)
		}
	}
	if enabled["f0"] || enabled["f1"] || !enabled["f2"] || !enabled["f3"] {
		t.Errorf("enabled %v, want f2 and f3 only", enabled)
	}
	// With partial properties the SDKs would run the pattern: the filter
	// is left undecided, and so is the flag.
	res = set.Evaluate(&Context{DistinctID: "u", PersonProperties: map[string]any{"v": value}, Partial: true})
	for _, r := range res {
		var ee *EvalError
		undecided := errors.As(r.Err, &ee) && errors.Is(r.Err, ErrInconclusive) && ee.Code == CodeUnsupported
		if undecided != (r.Key == "f0" || r.Key == "f1") {
			t.Errorf("partial %s: err %v", r.Key, r.Err)
		}
	}
}

// stepClock is a clock that moves one second forward each time it is read.
type stepClock struct {
	now   time.Time
	reads int
}

func (c *stepClock) read() time.Time {
	c.reads++
	c.now = c.now.Add(time.Second)
	return c.now
}

// deadlineSet is n flags of one filter each, the last ones depending on
// the first.
func deadlineSet(t *testing.T, n int) *Set {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"flags":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"key":"f%02d","active":true,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","operator":"exact","value":"pro"}]}]}}`, i)
	}
	b.WriteString(`,{"key":"dep","active":true,"filters":{"groups":[{"properties":[{"key":"f00","type":"flag","operator":"flag_evaluates_to","value":true}]}]}}`)
	b.WriteString(`]}`)
	defs, err := ParseDefinitions([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestEvaluationDeadline(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	set := deadlineSet(t, 40)
	props := map[string]any{"plan": "pro"}
	failedCode := func(r Result) string {
		var ee *EvalError
		if !errors.As(r.Err, &ee) {
			return ""
		}
		if !errors.Is(r.Err, ErrInconclusive) || r.Enabled || r.Reason.Code != ReasonError {
			t.Errorf("%s: failed result %+v", r.Key, r)
		}
		return ee.Code
	}

	t.Run("far deadline", func(t *testing.T) {
		clock := &stepClock{now: start}
		res := set.Evaluate(&Context{DistinctID: "u", PersonProperties: props, Deadline: start.Add(time.Hour), Clock: clock.read})
		for _, r := range res {
			if r.Err != nil || !r.Enabled {
				t.Errorf("%s: %+v", r.Key, r)
			}
		}
		// 41 flags and 41 filters: the clock is read at steps 1, 17, 33,
		// 49, 65 and 81.
		if clock.reads != 6 {
			t.Errorf("clock read %d times, want 6", clock.reads)
		}
	})
	t.Run("past deadline", func(t *testing.T) {
		clock := &stepClock{now: start}
		res := set.Evaluate(&Context{DistinctID: "u", PersonProperties: props, Deadline: start, Clock: clock.read})
		for _, r := range res {
			if code := failedCode(r); code != CodeDeadlineExceeded {
				t.Errorf("%s: code %q, want %s", r.Key, code, CodeDeadlineExceeded)
			}
		}
		if clock.reads != 1 {
			t.Errorf("clock read %d times, want once", clock.reads)
		}
	})
	t.Run("deadline mid-way", func(t *testing.T) {
		// Steps alternate flag, filter: the first read (step 1, flag f00)
		// says start+1s, the second (step 17, flag f08) start+2s, past a
		// deadline of start+1s.
		clock := &stepClock{now: start}
		res := set.Evaluate(&Context{DistinctID: "u", PersonProperties: props, Deadline: start.Add(time.Second), Clock: clock.read})
		for i, r := range res {
			code := failedCode(r)
			switch {
			case i < 8 && (code != "" || !r.Enabled):
				t.Errorf("%s: %+v, want decided before the deadline", r.Key, r)
			case i >= 8 && code != CodeDeadlineExceeded:
				t.Errorf("%s: code %q, want %s", r.Key, code, CodeDeadlineExceeded)
			}
		}
	})
	t.Run("no deadline", func(t *testing.T) {
		clock := &stepClock{now: start}
		res := set.Evaluate(&Context{DistinctID: "u", PersonProperties: props, Clock: clock.read})
		if clock.reads != 0 || len(res) != 41 || res[40].Err != nil {
			t.Errorf("clock read %d times; results %d", clock.reads, len(res))
		}
	})
}

func TestDeadlineCheckAllocatesNothing(t *testing.T) {
	set := deadlineSet(t, 40)
	c := &Context{DistinctID: "u", PersonProperties: map[string]any{"plan": "pro"}, Deadline: time.Now().Add(time.Hour)}
	out := make([]Result, 0, set.Len())
	if n := testing.AllocsPerRun(100, func() { out = set.AppendEvaluate(out[:0], c, nil) }); n != 0 {
		t.Errorf("%v allocations per evaluation with a deadline, want 0", n)
	}
}
