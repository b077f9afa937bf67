package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// A case file in testdata/cases: definitions in the local-evaluation shape,
// plus Vexil's cohort kinds, and contexts each with hand-written
// expectations from docs/posthog-compat.md. The full results of every
// context are also compared against testdata/golden/<file>.golden, which
// -update rewrites.
type caseFile struct {
	Description string          `json:"description"`
	Definitions json.RawMessage `json:"definitions"`
	// StaticCohorts are cohort ids answered by the context's members list.
	StaticCohorts []int64 `json:"static_cohorts"`
	// Timezone is the team's time zone.
	Timezone string        `json:"timezone"`
	Now      string        `json:"now"`
	Contexts []caseContext `json:"contexts"`
	// CompileErrors are the expected validation error codes, as
	// "flag-key path code" or "cohort:<id> path code".
	CompileErrors []string `json:"compile_errors"`
}

type caseContext struct {
	Name string `json:"name"`
	// Source says where the expectations come from (a server rule, an SDK
	// run); check_sdk.py skips a context whose SDK is false.
	Source           string                    `json:"source"`
	SDK              *bool                     `json:"sdk"`
	DistinctID       string                    `json:"distinct_id"`
	DeviceID         string                    `json:"device_id"`
	PersonProperties map[string]any            `json:"person_properties"`
	Groups           map[string]caseGroup      `json:"groups"`
	Partial          bool                      `json:"partial"`
	HashKeys         map[string]string         `json:"hash_key_overrides"`
	Members          map[string]caseMembership `json:"cohort_members"`
	Now              string                    `json:"now"`
	// Events are what the subject did, counted as the projector counts
	// them (Set.MatchEvent), to the second.
	Events []caseEvent                `json:"events"`
	Expect map[string]caseExpectation `json:"expect"`
}

type caseEvent struct {
	Event      string         `json:"event"`
	At         string         `json:"at"`
	Properties map[string]any `json:"properties"`
}

// caseHistory is an EventHistory of one-second buckets.
type caseHistory map[uint64][]EventBucket

func (h caseHistory) EventBuckets(pair uint64) []EventBucket { return h[pair] }

func (h caseHistory) FirstEvent(pair uint64) (int64, bool) {
	if b := h[pair]; len(b) > 0 {
		return b[0].Start, true
	}
	return 0, false
}

func (cc *caseContext) history(t *testing.T, set *Set) caseHistory {
	h := caseHistory{}
	for _, ev := range cc.Events {
		at := parseTime(t, ev.At)
		for _, id := range set.MatchEvent(ev.Event, ev.Properties, at, nil) {
			sec := at.Unix()
			b := h[id]
			i := sort.Search(len(b), func(i int) bool { return b[i].Start >= sec })
			if i < len(b) && b[i].Start == sec {
				b[i].Count++
			} else {
				b = append(b, EventBucket{})
				copy(b[i+1:], b[i:])
				b[i] = EventBucket{Start: sec, Width: 1, Count: 1}
			}
			h[id] = b
		}
	}
	return h
}

type caseGroup struct {
	Key        string         `json:"key"`
	Properties map[string]any `json:"properties"`
}

type caseMembership struct {
	Member     bool   `json:"member"`
	ValidUntil string `json:"valid_until"`
	Error      bool   `json:"error"`
}

type caseExpectation struct {
	// Value is true, false or a variant key.
	Value          any     `json:"value"`
	Reason         string  `json:"reason"`
	ConditionIndex *int    `json:"condition_index"`
	Payload        *string `json:"payload"`
	ValidUntil     string  `json:"valid_until"`
	// Error is the EvalError code when the flag cannot be decided.
	Error string `json:"error"`
}

type memberSource map[string]caseMembership

func (m memberSource) InCohort(id int64) (bool, time.Time, error) {
	ms, ok := m[strconv.FormatInt(id, 10)]
	if !ok {
		return false, time.Time{}, ErrCohortNotFound
	}
	if ms.Error {
		return false, time.Time{}, errors.New("cohort store unavailable")
	}
	var until time.Time
	if ms.ValidUntil != "" {
		until, _ = time.Parse(time.RFC3339Nano, ms.ValidUntil)
	}
	return ms.Member, until, nil
}

func loadCaseFile(t *testing.T, path string) (caseFile, *Set, error) {
	t.Helper()
	var cf caseFile
	readJSON(t, path, &cf)
	defs, err := ParseDefinitions(cf.Definitions)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, id := range cf.StaticCohorts {
		defs.Cohorts = append(defs.Cohorts, Cohort{ID: id, Kind: CohortStatic})
	}
	defs.Timezone = cf.Timezone
	set, cerr := Compile(defs)
	return cf, set, cerr
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return tm
}

func (cc *caseContext) context(t *testing.T, set *Set, fileNow string) *Context {
	now := cc.Now
	if now == "" {
		now = fileNow
	}
	if now == "" {
		now = "2026-11-25T12:00:00Z"
	}
	c := &Context{DistinctID: cc.DistinctID, DeviceID: cc.DeviceID, PersonProperties: cc.PersonProperties,
		Partial: cc.Partial, HashKeyOverrides: cc.HashKeys, Now: parseTime(t, now)}
	if c.PersonProperties == nil {
		c.PersonProperties = map[string]any{}
	}
	if cc.Members != nil {
		c.Cohorts = memberSource(cc.Members)
	}
	if cc.Events != nil {
		c.Events = cc.history(t, set)
	}
	for name, g := range cc.Groups {
		i, ok := set.GroupTypeIndex(name)
		if !ok {
			continue // as a server does with a group type it does not know
		}
		for len(c.Groups) <= i {
			c.Groups = append(c.Groups, Group{})
		}
		c.Groups[i] = Group{Key: g.Key, Properties: g.Properties}
	}
	return c
}

// resultLine renders a result for the golden file.
func resultLine(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s enabled=%v", r.Key, r.Enabled)
	if r.Variant != "" {
		fmt.Fprintf(&b, " variant=%s", r.Variant)
	}
	if r.Payload != nil {
		fmt.Fprintf(&b, " payload=%s", r.Payload)
	}
	fmt.Fprintf(&b, " reason=%s index=%d %q", r.Reason.Code, r.Reason.ConditionIndex, r.Reason.Description)
	if !r.ValidUntil.IsZero() {
		fmt.Fprintf(&b, " valid_until=%s", r.ValidUntil.UTC().Format(time.RFC3339Nano))
	}
	if r.Err != nil {
		var ee *EvalError
		if errors.As(r.Err, &ee) {
			fmt.Fprintf(&b, " error=%s", ee.Code)
		}
	}
	return b.String()
}

func TestCases(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			cf, set, cerr := loadCaseFile(t, path)
			checkCompileErrors(t, cf.CompileErrors, cerr)
			var golden bytes.Buffer
			for _, cc := range cf.Contexts {
				results := set.Evaluate(cc.context(t, set, cf.Now))
				fmt.Fprintf(&golden, "# %s\n", cc.Name)
				byKey := map[string]Result{}
				for _, r := range results {
					byKey[r.Key] = r
					fmt.Fprintln(&golden, resultLine(r))
				}
				keys := make([]string, 0, len(cc.Expect))
				for k := range cc.Expect {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					r, ok := byKey[k]
					if !ok {
						t.Errorf("%s: no result for %q", cc.Name, k)
						continue
					}
					checkExpectation(t, cc.Name, r, cc.Expect[k])
				}
			}
			goldenPath := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(goldenPath, golden.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(want, golden.Bytes()) {
				t.Errorf("results differ from %s (rerun with -update after checking the change):\n--- want\n%s\n--- got\n%s", goldenPath, want, golden.Bytes())
			}
		})
	}
}

func checkCompileErrors(t *testing.T, want []string, err error) {
	t.Helper()
	var got []string
	var ves ValidationErrors
	if errors.As(err, &ves) {
		for _, ve := range ves {
			who := ve.Flag
			if who == "" {
				who = fmt.Sprintf("cohort:%d", ve.Cohort)
			}
			got = append(got, fmt.Sprintf("%s %s %s", who, ve.Path, ve.Code))
		}
	} else if err != nil {
		t.Fatalf("compile error %v is not ValidationErrors", err)
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("compile errors:\n got  %q\n want %q", got, w)
	}
}

func checkExpectation(t *testing.T, ctxName string, r Result, want caseExpectation) {
	t.Helper()
	where := ctxName + "/" + r.Key
	if want.Error != "" {
		var ee *EvalError
		if !errors.As(r.Err, &ee) || ee.Code != want.Error {
			t.Errorf("%s: error %v, want code %s", where, r.Err, want.Error)
		}
		if r.Enabled {
			t.Errorf("%s: a failed flag must not be enabled", where)
		}
		return
	}
	if r.Err != nil {
		t.Errorf("%s: unexpected error %v", where, r.Err)
		return
	}
	var got any = r.Enabled
	if r.Variant != "" {
		got = r.Variant
	}
	if want.Value != nil && got != want.Value {
		t.Errorf("%s: value %v, want %v", where, got, want.Value)
	}
	if want.Reason != "" && string(r.Reason.Code) != want.Reason {
		t.Errorf("%s: reason %s, want %s", where, r.Reason.Code, want.Reason)
	}
	if want.ConditionIndex != nil && r.Reason.ConditionIndex != *want.ConditionIndex {
		t.Errorf("%s: condition index %d, want %d", where, r.Reason.ConditionIndex, *want.ConditionIndex)
	}
	if want.Payload != nil && string(r.Payload) != *want.Payload {
		t.Errorf("%s: payload %s, want %s", where, r.Payload, *want.Payload)
	}
	if want.ValidUntil != "" {
		exp, err := time.Parse(time.RFC3339Nano, want.ValidUntil)
		if err != nil {
			t.Fatalf("%s: bad valid_until %q", where, want.ValidUntil)
		}
		if !r.ValidUntil.Equal(exp) {
			t.Errorf("%s: valid_until %v, want %v", where, r.ValidUntil.UTC(), exp)
		}
	}
}
