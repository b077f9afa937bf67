package posthogdiff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed of the cases (0: a new one, printed)")
	casesFlag = flag.Int("cases", 10000, "number of random cases (about 5 s)")
	longFlag  = flag.Bool("long", false, "run 50,000 cases")
)

// pythonPath is the python that has posthog installed, or the test skips
// (fails when CI=true).
func pythonPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("VEXIL_POSTHOG_PYTHON")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("VEXIL_POSTHOG_PYTHON is not set: CI must run the differential test against posthog-python (scripts/sdk-python.sh --venv)")
		}
		t.Skip("VEXIL_POSTHOG_PYTHON is not set (scripts/sdk-python.sh --venv prints one)")
	}
	return p
}

// testCase is one definition set and one context.
type testCase struct {
	ID         int
	Seed       uint64
	Defs       flags.Definitions
	DistinctID string
	Person     map[string]any            // JSON-ready
	Groups     map[string]string         // type name → key
	GroupProps map[string]map[string]any // type name → properties
}

type oracleAnswer struct {
	Value   any     `json:"value"`
	Payload *string `json:"payload"`
	// InconclusiveConditions are the conditions (0-based, in the payload)
	// the SDK could not decide before the one that gave Value.
	InconclusiveConditions []int `json:"inconclusive_conditions"`
	// GuessedDependencies are the flags, depended on directly or not, that
	// the SDK decided after an inconclusive condition on the way to Value.
	GuessedDependencies []string `json:"guessed_dependencies"`
	Inconclusive        string   `json:"inconclusive"`
	Error               string   `json:"error"`
}

// guessed reports whether the SDK's answer came after an inconclusive
// condition, its own or a dependency's (see compare).
func (a oracleAnswer) guessed() bool {
	return len(a.InconclusiveConditions) > 0 || len(a.GuessedDependencies) > 0
}

func (a oracleAnswer) decided() bool { return a.Inconclusive == "" && a.Error == "" }

type oracleLine struct {
	ID    int                     `json:"id"`
	Flags map[string]oracleAnswer `json:"flags"`
}

func TestDifferential(t *testing.T) {
	python := pythonPath(t)
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	n := *casesFlag
	if *longFlag {
		n = 50000
	}
	t.Logf("seed %d, %d cases (rerun: go test ./flags/posthogdiff -run TestDifferential -seed %d)", seed, n, seed)

	cases := make([]testCase, n)
	payloads := make([][]byte, n)
	for i := range cases {
		// One seed per case, so that a failing case is rebuilt alone.
		cs := seed*1_000_003 + uint64(i)
		cases[i] = generate(i, cs)
		set, _ := flags.Compile(cases[i].Defs)
		d, err := wire.BuildDefinitions(cases[i].Defs, set, true)
		if err != nil {
			t.Fatalf("case %d (seed %d): %v", i, cs, err)
		}
		payloads[i] = d.Body
	}
	answers := runOracle(t, python, cases, payloads)

	stats := map[string]int{}
	var failures []string
	first := -1
	for i, c := range cases {
		for _, m := range compare(c, payloads[i], answers[i], stats) {
			if first < 0 {
				first = i
			}
			failures = append(failures, fmt.Sprintf("case %d (VEXIL_POSTHOGDIFF_CASE=%d): %s", i, c.Seed, m))
		}
	}
	t.Logf("flags compared: %d decided by the SDK; %d decided there after an inconclusive condition (%d of those left undecided by Vexil, %d decided by Vexil from a condition the SDK could not decide); %d inconclusive there (%d of those decided by Vexil)",
		stats["decided"], stats["after-inconclusive"], stats["after-inconclusive-vexil-undecided"], stats["after-inconclusive-vexil-knew"], stats["inconclusive"], stats["vexil-only"])
	if len(failures) > 0 {
		t.Fatalf("seed %d: posthog-python and Vexil disagree %d times; the first %d:\n  %s\nthe first case, minimized:\n%s",
			seed, len(failures), min(20, len(failures)), strings.Join(failures[:min(20, len(failures))], "\n  "), indent(minimize(t, python, cases[first]), "    "))
	}
	if stats["decided"] < n/2 {
		t.Errorf("only %d answers decided by the SDK in %d cases: the generator makes too few decidable cases", stats["decided"], n)
	}
}

// TestOneCase reruns one case by its case seed (printed by a failure).
func TestOneCase(t *testing.T) {
	cs := os.Getenv("VEXIL_POSTHOGDIFF_CASE")
	if cs == "" {
		t.Skip("VEXIL_POSTHOGDIFF_CASE is not set")
	}
	python := pythonPath(t)
	var seed uint64
	if _, err := fmt.Sscan(cs, &seed); err != nil {
		t.Fatal(err)
	}
	c := generate(0, seed)
	t.Log(describe(c))
	set, _ := flags.Compile(c.Defs)
	d, err := wire.BuildDefinitions(c.Defs, set, true)
	if err != nil {
		t.Fatal(err)
	}
	ans := runOracle(t, python, []testCase{c}, [][]byte{d.Body})
	if msgs := compare(c, d.Body, ans[0], map[string]int{}); len(msgs) > 0 {
		t.Fatalf("%s\nminimized:\n%s", strings.Join(msgs, "\n"), minimize(t, python, c))
	}
}

// compare checks every flag the SDK decided against Vexil in partial mode;
// payload is the definitions the SDK evaluated.
//
// An answer the SDK gives after an inconclusive condition is a guess: the
// SDK goes on to the next condition and returns the first that matches,
// where PostHog's server, which knows the whole person, may match the
// earlier one. So is an answer that reads a dependency the SDK guessed. For
// a guess the rule is: Vexil may be inconclusive (it stops on a failed
// dependency or a static cohort, for instance); if it decides, it must
// agree, unless it decided from a condition the SDK could not (a regex the
// SDK defers to the server, a version with leading zeros: Vexil's match, or
// its out-of-rollout stop under early_exit, comes from a condition the SDK
// skipped) or gave a guessed dependency another value than the SDK's.
// Those two are not compared: the SDK's answer is the one that may differ
// from the server's.
func compare(c testCase, payload []byte, ans oracleLine, stats map[string]int) []string {
	set, _ := flags.Compile(c.Defs)
	results := set.Evaluate(vexilContext(c, set))
	byKey := make(map[string]flags.Result, len(results))
	for _, r := range results {
		byKey[r.Key] = r
	}
	earlyExit := map[string]bool{}
	for _, f := range c.Defs.Flags {
		earlyExit[f.Key] = f.Filters.EarlyExit
	}
	lead := leadingConditions(c.Defs, payload)
	var msgs []string
	for _, r := range results {
		a, ok := ans.Flags[r.Key]
		if !ok {
			continue // deleted flags are not in the payload
		}
		if a.Error != "" {
			msgs = append(msgs, fmt.Sprintf("%s: posthog-python failed on Vexil's definitions: %s", r.Key, a.Error))
			continue
		}
		if !a.decided() {
			stats["inconclusive"]++
			if r.Err == nil {
				stats["vexil-only"]++
			}
			continue
		}
		guess := a.guessed()
		if guess {
			stats["after-inconclusive"]++
		} else {
			stats["decided"]++
		}
		if r.Err != nil {
			if guess {
				stats["after-inconclusive-vexil-undecided"]++
				continue
			}
			msgs = append(msgs, fmt.Sprintf("%s: posthog-python says %v, Vexil cannot decide: %v", r.Key, a.Value, r.Err))
			continue
		}
		if guess && (decidedWhereSDKCouldNot(r, a, lead[r.Key], earlyExit[r.Key]) || guessedOtherwise(a, ans, byKey)) {
			stats["after-inconclusive-vexil-knew"]++
			continue
		}
		got := value(r)
		after := ""
		if guess {
			after = fmt.Sprintf(" after inconclusive conditions %v (guessed dependencies %v)", a.InconclusiveConditions, a.GuessedDependencies)
		}
		if got != a.Value {
			msgs = append(msgs, fmt.Sprintf("%s: posthog-python says %v%s, Vexil %v (reason %s, condition %d)", r.Key, a.Value, after, got, r.Reason.Code, r.Reason.ConditionIndex))
			continue
		}
		var want, have string
		if a.Payload != nil {
			want = *a.Payload
		}
		if r.Payload != nil {
			if err := json.Unmarshal(r.Payload, &have); err != nil {
				have = string(r.Payload)
			}
		}
		if want != have {
			msgs = append(msgs, fmt.Sprintf("%s = %v: payload %q from posthog-python, %q from Vexil", r.Key, got, want, have))
		}
	}
	return msgs
}

// value is a result as the SDK gives it: the variant, or the boolean.
func value(r flags.Result) any {
	if r.Variant != "" {
		return r.Variant
	}
	return r.Enabled
}

// decidedWhereSDKCouldNot reports whether Vexil's answer comes from a
// condition the SDK found inconclusive: a match there, or an early_exit
// stop on its rollout. lead maps Vexil's condition index to the payload's.
func decidedWhereSDKCouldNot(r flags.Result, a oracleAnswer, lead int, earlyExit bool) bool {
	decisive := r.Reason.Code == flags.ReasonConditionMatch || earlyExit && r.Reason.Code == flags.ReasonOutOfRolloutBound
	return decisive && r.Reason.ConditionIndex >= 0 && slices.Contains(a.InconclusiveConditions, r.Reason.ConditionIndex+lead)
}

// guessedOtherwise reports whether Vexil gave a dependency the SDK guessed
// another value than the SDK's (or none).
func guessedOtherwise(a oracleAnswer, ans oracleLine, byKey map[string]flags.Result) bool {
	for _, k := range a.GuessedDependencies {
		d, ok := ans.Flags[k]
		r, found := byKey[k]
		if !ok || !found || !d.decided() || r.Err != nil || value(r) != d.Value {
			return true
		}
	}
	return false
}

// leadingConditions counts, per flag, the conditions the payload puts
// before the flag's own (overrides rewritten as conditions), so that a
// payload condition index maps to Vexil's.
func leadingConditions(defs flags.Definitions, payload []byte) map[string]int {
	var doc struct {
		Flags []struct {
			Key     string `json:"key"`
			Filters struct {
				Groups []json.RawMessage `json:"groups"`
			} `json:"filters"`
		} `json:"flags"`
	}
	if err := json.Unmarshal(payload, &doc); err != nil {
		panic(fmt.Sprintf("definitions payload: %v", err))
	}
	own := make(map[string]int, len(defs.Flags))
	for _, f := range defs.Flags {
		own[f.Key] = len(f.Filters.Groups)
	}
	out := make(map[string]int, len(doc.Flags))
	for _, f := range doc.Flags {
		out[f.Key] = max(0, len(f.Filters.Groups)-own[f.Key])
	}
	return out
}

func vexilContext(c testCase, set *flags.Set) *flags.Context {
	ctx := &flags.Context{DistinctID: c.DistinctID, PersonProperties: roundTrip(c.Person), Partial: true, Now: time.Now()}
	for name, key := range c.Groups {
		idx, ok := set.GroupTypeIndex(name)
		if !ok {
			continue
		}
		for len(ctx.Groups) <= idx {
			ctx.Groups = append(ctx.Groups, flags.Group{})
		}
		ctx.Groups[idx] = flags.Group{Key: key, Properties: roundTrip(c.GroupProps[name])}
	}
	return ctx
}

// roundTrip gives properties as the server decodes a request: JSON with
// numbers kept as json.Number.
func roundTrip(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		panic(err)
	}
	return out
}

// runOracle evaluates every case with posthog-python in one process.
func runOracle(t *testing.T, python string, cases []testCase, payloads [][]byte) []oracleLine {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("..", "testdata", "posthog", "oracle.py"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", python, err)
	}
	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(stdin)
		var err error
		for i, c := range cases {
			line := map[string]any{"id": c.ID, "definitions": json.RawMessage(payloads[i]), "distinct_id": c.DistinctID,
				"person_properties": c.Person, "groups": c.Groups, "group_properties": c.GroupProps}
			b, e := json.Marshal(line)
			if e != nil {
				err = e
				break
			}
			if _, err = w.Write(append(b, '\n')); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Flush()
		}
		stdin.Close()
		writeErr <- err
	}()
	out := make([]oracleLine, 0, len(cases))
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var l oracleLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("oracle output %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := <-writeErr
	if err := cmd.Wait(); err != nil || werr != nil {
		t.Fatalf("oracle: %v, %v\n%s", err, werr, stderr.String())
	}
	if len(out) != len(cases) {
		t.Fatalf("oracle answered %d of %d cases\n%s", len(out), len(cases), stderr.String())
	}
	for i := range out {
		if out[i].ID != cases[i].ID {
			t.Fatalf("oracle answer %d is for case %d", i, out[i].ID)
		}
	}
	return out
}

// minimize removes flags, conditions, filters, cohort entries and
// properties while the disagreement stays, and describes what is left.
func minimize(t *testing.T, python string, c testCase) string {
	t.Helper()
	fails := func(c testCase) bool {
		set, _ := flags.Compile(c.Defs)
		d, err := wire.BuildDefinitions(c.Defs, set, true)
		if err != nil {
			return false
		}
		ans := runOracle(t, python, []testCase{c}, [][]byte{d.Body})
		return len(compare(c, d.Body, ans[0], map[string]int{})) > 0
	}
	for changed := true; changed; {
		changed = false
		for _, cand := range shrink(c) {
			if fails(cand) {
				c, changed = cand, true
				break
			}
		}
	}
	return describe(c)
}

// shrink lists the cases one step smaller than c.
func shrink(c testCase) []testCase {
	var out []testCase
	clone := func() testCase {
		b, _ := json.Marshal(c.Defs.Flags)
		var fl []flags.Flag
		_ = json.Unmarshal(b, &fl)
		cb, _ := json.Marshal(c.Defs.Cohorts)
		var co []flags.Cohort
		_ = json.Unmarshal(cb, &co)
		d := c.Defs
		d.Flags, d.Cohorts = fl, co
		n := c
		n.Defs = d
		n.Person = maps(c.Person)
		return n
	}
	for i := range c.Defs.Flags {
		n := clone()
		n.Defs.Flags = slices.Delete(n.Defs.Flags, i, i+1)
		out = append(out, n)
	}
	for i, f := range c.Defs.Flags {
		for j, g := range f.Filters.Groups {
			n := clone()
			n.Defs.Flags[i].Filters.Groups = slices.Delete(n.Defs.Flags[i].Filters.Groups, j, j+1)
			out = append(out, n)
			for k := range g.Properties {
				n := clone()
				p := n.Defs.Flags[i].Filters.Groups[j].Properties
				n.Defs.Flags[i].Filters.Groups[j].Properties = slices.Delete(p, k, k+1)
				out = append(out, n)
			}
		}
		if len(f.Overrides) > 0 {
			n := clone()
			n.Defs.Flags[i].Overrides = nil
			out = append(out, n)
		}
		if f.Filters.Holdout != nil {
			n := clone()
			n.Defs.Flags[i].Filters.Holdout = nil
			out = append(out, n)
		}
	}
	for i, co := range c.Defs.Cohorts {
		for j := range co.Filters.Values {
			n := clone()
			n.Defs.Cohorts[i].Filters.Values = slices.Delete(n.Defs.Cohorts[i].Filters.Values, j, j+1)
			out = append(out, n)
		}
	}
	for k := range c.Person {
		n := clone()
		delete(n.Person, k)
		out = append(out, n)
	}
	return out
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func describe(c testCase) string {
	defs, _ := json.Marshal(struct {
		Flags   []flags.Flag    `json:"flags"`
		Cohorts []flags.Cohort  `json:"cohorts"`
		Groups  map[int]string  `json:"group_types"`
		PMV     int             `json:"property_matching_version"`
		Extra   json.RawMessage `json:"-"`
	}{c.Defs.Flags, c.Defs.Cohorts, c.Defs.GroupTypes, c.Defs.PropertyMatchingVersion, nil})
	ctx, _ := json.Marshal(map[string]any{"distinct_id": c.DistinctID, "person_properties": c.Person, "groups": c.Groups, "group_properties": c.GroupProps})
	return fmt.Sprintf("definitions %s\ncontext %s", defs, ctx)
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}
