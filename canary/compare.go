package canary

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// flagAnswer is what a client sees of one flag in a /flags or /decide
// answer.
type flagAnswer struct {
	Value   any `json:"value"`
	Payload any `json:"payload"`
}

// flagsView is a /flags or /decide answer reduced to what a client sees:
// every flag's value (its variant, or whether it is on) and payload, and
// whether the server said it could not compute some.
type flagsView struct {
	Flags        map[string]flagAnswer
	Errors       bool
	QuotaLimited []string
}

func parseFlags(b []byte) (flagsView, error) {
	var raw struct {
		Flags        map[string]json.RawMessage `json:"flags"`
		FeatureFlags map[string]any             `json:"featureFlags"`
		Payloads     map[string]any             `json:"featureFlagPayloads"`
		Errors       bool                       `json:"errorsWhileComputingFlags"`
		QuotaLimited []string                   `json:"quotaLimited"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return flagsView{}, err
	}
	v := flagsView{Flags: map[string]flagAnswer{}, Errors: raw.Errors, QuotaLimited: raw.QuotaLimited}
	if raw.Flags != nil { // v2: one record per flag
		for k, rec := range raw.Flags {
			var f struct {
				Enabled  bool `json:"enabled"`
				Variant  any  `json:"variant"`
				Metadata struct {
					Payload any `json:"payload"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(rec, &f); err != nil {
				return v, err
			}
			a := flagAnswer{Value: f.Enabled, Payload: f.Metadata.Payload}
			if f.Variant != nil {
				a.Value = f.Variant
			}
			v.Flags[k] = a
		}
		return v, nil
	}
	for k, val := range raw.FeatureFlags { // v1 and /decide
		v.Flags[k] = flagAnswer{Value: val, Payload: raw.Payloads[k]}
	}
	return v, nil
}

// compareFlags lists the differences between two /flags answers, one a
// flag, in key order.
func compareFlags(a, b []byte) []string {
	va, err := parseFlags(a)
	if err != nil {
		return []string{"baseline answer: " + err.Error()}
	}
	vb, err := parseFlags(b)
	if err != nil {
		return []string{"candidate answer: " + err.Error()}
	}
	var diffs []string
	if va.Errors != vb.Errors {
		diffs = append(diffs, fmt.Sprintf("errorsWhileComputingFlags: %v != %v", va.Errors, vb.Errors))
	}
	if !slices.Equal(sorted(va.QuotaLimited), sorted(vb.QuotaLimited)) {
		diffs = append(diffs, fmt.Sprintf("quotaLimited: %v != %v", va.QuotaLimited, vb.QuotaLimited))
	}
	for _, k := range keys(va.Flags, vb.Flags) {
		fa, ina := va.Flags[k]
		fb, inb := vb.Flags[k]
		switch {
		case !ina:
			diffs = append(diffs, fmt.Sprintf("flag %s: only in the candidate (%s)", k, js(fb.Value)))
		case !inb:
			diffs = append(diffs, fmt.Sprintf("flag %s: only in the baseline (%s)", k, js(fa.Value)))
		default:
			if js(fa.Value) != js(fb.Value) {
				diffs = append(diffs, fmt.Sprintf("flag %s: value %s != %s", k, js(fa.Value), js(fb.Value)))
			}
			if js(fa.Payload) != js(fb.Payload) {
				diffs = append(diffs, fmt.Sprintf("flag %s: payload %s != %s", k, js(fa.Payload), js(fb.Payload)))
			}
		}
	}
	return diffs
}

// compareDefinitions lists the differences between two local-evaluation
// answers: each flag's definition without its id, team and version, the
// group type mapping, and the cohorts' definitions (their ids differ
// between catalogs: compared as a sorted list).
func compareDefinitions(a, b []byte) []string {
	da, err := parseDefinitions(a)
	if err != nil {
		return []string{"baseline answer: " + err.Error()}
	}
	db, err := parseDefinitions(b)
	if err != nil {
		return []string{"candidate answer: " + err.Error()}
	}
	var diffs []string
	for _, k := range keys(da.flags, db.flags) {
		fa, ina := da.flags[k]
		fb, inb := db.flags[k]
		switch {
		case !ina:
			diffs = append(diffs, fmt.Sprintf("definition %s: only in the candidate", k))
		case !inb:
			diffs = append(diffs, fmt.Sprintf("definition %s: only in the baseline", k))
		case fa != fb:
			diffs = append(diffs, fmt.Sprintf("definition %s: %s != %s", k, fa, fb))
		}
	}
	if da.groups != db.groups {
		diffs = append(diffs, fmt.Sprintf("group_type_mapping: %s != %s", da.groups, db.groups))
	}
	if !slices.Equal(da.cohorts, db.cohorts) {
		diffs = append(diffs, fmt.Sprintf("cohorts: %d != %d definitions, or they differ", len(da.cohorts), len(db.cohorts)))
	}
	return diffs
}

type defsView struct {
	flags   map[string]string
	groups  string
	cohorts []string
}

func parseDefinitions(b []byte) (defsView, error) {
	var raw struct {
		Flags   []map[string]any `json:"flags"`
		Groups  map[string]any   `json:"group_type_mapping"`
		Cohorts map[string]any   `json:"cohorts"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return defsView{}, err
	}
	v := defsView{flags: map[string]string{}, groups: js(raw.Groups)}
	for _, f := range raw.Flags {
		k, _ := f["key"].(string)
		for _, volatile := range []string{"id", "team_id", "version"} {
			delete(f, volatile)
		}
		v.flags[k] = js(f)
	}
	for _, c := range raw.Cohorts {
		v.cohorts = append(v.cohorts, js(c))
	}
	sort.Strings(v.cohorts)
	return v, nil
}

// js is v's canonical JSON (encoding/json sorts map keys).
func js(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(bytes.TrimSpace(buf.Bytes()))
}

func keys[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
