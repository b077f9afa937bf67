package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// flagForm is the flag editor's state: what the page shows, and what a
// submitted page sends back whole, so that a refused save, an added row
// or a conflict loses nothing the person typed.
type flagForm struct {
	ID      int64
	Version int64
	// Base is the flag as it was read (JSON, base64), to show the other
	// person's change when a save conflicts.
	Base        string
	Key         string
	Name        string
	Description string
	Tags        string
	Active      bool
	Continuity  bool
	Conditions  []condForm
	Variants    []variantForm
	// PayloadTrue is a boolean flag's payload (JSON).
	PayloadTrue string
	Overrides   []overrideForm
	// Extra keeps the filters' keys the editor does not show
	// (super_groups, holdout ...), so that a save keeps them.
	Extra string
	// Errors maps a form field name to what is wrong with it.
	Errors map[string]string
	// Problems are errors that name no field of the form.
	Problems []string
}

type condForm struct {
	// Target is "persons" or "g<group type index>".
	Target      string
	Rollout     string
	Variant     string
	Description string
	Filters     []filterForm
}

type filterForm struct {
	// Kind is "property", "cohort" or "flag" (a dependency).
	Kind  string
	Key   string
	Op    string
	Value string
}

type variantForm struct {
	Key, Name, Rollout, Payload string
}

type overrideForm struct {
	// Target is "persons" or "g<index>"; IDs are comma separated.
	Target, IDs, Value string
}

// Operator is one property operator the engine knows, with the input the
// editor shows for its value.
type Operator struct {
	Op, Label string
	// Input is "text", "number", "date", "semver", "regex", "none" or
	// "list".
	Input string
}

// Operators are the engine's property operators (flags/compile.go).
var Operators = []Operator{
	{"exact", "equals one of", "list"},
	{"is_not", "is none of", "list"},
	{"icontains", "contains", "text"},
	{"not_icontains", "does not contain", "text"},
	{"regex", "matches regex", "regex"},
	{"not_regex", "does not match regex", "regex"},
	{"gt", "is greater than", "number"},
	{"gte", "is at least", "number"},
	{"lt", "is less than", "number"},
	{"lte", "is at most", "number"},
	{"is_set", "is set", "none"},
	{"is_not_set", "is not set", "none"},
	{"is_date_before", "is a date before", "date"},
	{"is_date_after", "is a date after", "date"},
	{"is_date_exact", "is the date", "date"},
	{"semver_eq", "is version", "semver"},
	{"semver_neq", "is not version", "semver"},
	{"semver_gt", "is a version above", "semver"},
	{"semver_gte", "is version or above", "semver"},
	{"semver_lt", "is a version below", "semver"},
	{"semver_lte", "is version or below", "semver"},
	{"semver_tilde", "is version ~", "semver"},
	{"semver_caret", "is version ^", "semver"},
	{"semver_wildcard", "matches version pattern", "semver"},
}

func operator(op string) (Operator, bool) {
	for _, o := range Operators {
		if o.Op == op {
			return o, true
		}
	}
	return Operator{}, false
}

var (
	relDate    = regexp.MustCompile(`^-?\d+[hdwmy]$`)
	semverText = regexp.MustCompile(`^v?\d+(\.(\d+|\*|x))?(\.(\d+|\*|x))?([-+][0-9A-Za-z.-]+)?$`)
	keyText    = regexp.MustCompile(`^[A-Za-z0-9_.$/-]{1,400}$`)
)

// checkValue checks a filter value for its operator as the editor does
// while one types, and returns the JSON value to send.
func checkValue(op, v string) (any, string) {
	o, ok := operator(op)
	if !ok {
		return nil, fmt.Sprintf("unknown operator %q", op)
	}
	v = strings.TrimSpace(v)
	switch o.Input {
	case "none":
		return op, ""
	case "list":
		if v == "" {
			return nil, "enter a value (several: separate them with commas)"
		}
		var out []any
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, ""
	case "number":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a number", v)
		}
		return n, ""
	case "date":
		if relDate.MatchString(v) {
			return v, ""
		}
		for _, layout := range []string{"2006-01-02", time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04:05"} {
			if _, err := time.Parse(layout, v); err == nil {
				return v, ""
			}
		}
		return nil, "enter a date (2026-01-31, 2026-01-31T12:00:00Z) or a relative one (-7d, -2w, -1m, -1y, -6h)"
	case "semver":
		if !semverText.MatchString(v) {
			return nil, fmt.Sprintf("%q is not a version (1.2.3, 1.2, 1.*)", v)
		}
		return v, ""
	case "regex":
		if msg := regexProblem(v); msg != "" {
			return nil, msg
		}
		return v, ""
	}
	if v == "" {
		return nil, "enter a value"
	}
	return v, ""
}

func regexProblem(v string) string {
	if v == "" {
		return "enter a regular expression"
	}
	if _, err := regexp.Compile(v); err != nil {
		return "not a valid regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
	}
	return ""
}

// groupIndex reads a target ("persons" or "g<index>").
func groupIndex(target string) (int, bool) {
	if s, ok := strings.CutPrefix(target, "g"); ok {
		n, err := strconv.Atoi(s)
		if err == nil && n >= 0 && n < 5 {
			return n, true
		}
	}
	return 0, false
}

// parseFlagForm reads a submitted editor; counts and sizes are bounded.
func parseFlagForm(f url.Values) (*flagForm, string) {
	get := func(k string) string {
		v := f.Get(k)
		if len(v) > maxFieldBytes {
			v = v[:maxFieldBytes]
		}
		return v
	}
	count := func(k string, limit int) int {
		n, _ := strconv.Atoi(f.Get(k))
		return min(max(n, 0), limit)
	}
	ff := &flagForm{Errors: map[string]string{}}
	ff.ID, _ = strconv.ParseInt(get("id"), 10, 64)
	ff.Version, _ = strconv.ParseInt(get("version"), 10, 64)
	ff.Base = get("base")
	ff.Extra = get("extra")
	ff.Key = strings.TrimSpace(get("key"))
	ff.Name = get("name")
	ff.Description = get("description")
	ff.Tags = get("tags")
	ff.Active = get("active") == "on"
	ff.Continuity = get("continuity") == "on"
	ff.PayloadTrue = get("payload_true")
	for i := range count("conds", maxConditions) {
		p := fmt.Sprintf("c%d.", i)
		c := condForm{Target: get(p + "target"), Rollout: get(p + "rollout"), Variant: get(p + "variant"), Description: get(p + "description")}
		for j := range count(p+"filters", maxFilters) {
			q := fmt.Sprintf("%sf%d.", p, j)
			c.Filters = append(c.Filters, filterForm{Kind: get(q + "kind"), Key: get(q + "key"), Op: get(q + "op"), Value: get(q + "value")})
		}
		ff.Conditions = append(ff.Conditions, c)
	}
	for i := range count("variants", maxVariants) {
		p := fmt.Sprintf("v%d.", i)
		ff.Variants = append(ff.Variants, variantForm{Key: get(p + "key"), Name: get(p + "name"), Rollout: get(p + "rollout"), Payload: get(p + "payload")})
	}
	for i := range count("overrides", maxOverrides) {
		p := fmt.Sprintf("o%d.", i)
		ff.Overrides = append(ff.Overrides, overrideForm{Target: get(p + "target"), IDs: get(p + "ids"), Value: get(p + "value")})
	}
	return ff, get("action")
}

// apply performs an editor action that only changes the form (add or
// remove a row); it reports whether action was one.
func (ff *flagForm) apply(action string) bool {
	parts := strings.Split(action, ":")
	idx := func(k int) int {
		if len(parts) <= k {
			return -1
		}
		n, err := strconv.Atoi(parts[k])
		if err != nil {
			return -1
		}
		return n
	}
	switch parts[0] {
	case "refresh":
		// A select that changes the inputs (kind, operator, target)
		// was changed: show the form again.
	case "add-condition":
		if len(ff.Conditions) < maxConditions {
			ff.Conditions = append(ff.Conditions, condForm{Target: "persons", Rollout: "100"})
		}
	case "remove-condition":
		if i := idx(1); i >= 0 && i < len(ff.Conditions) {
			ff.Conditions = slices.Delete(ff.Conditions, i, i+1)
		}
	case "add-filter":
		if i := idx(1); i >= 0 && i < len(ff.Conditions) && len(ff.Conditions[i].Filters) < maxFilters {
			ff.Conditions[i].Filters = append(ff.Conditions[i].Filters, filterForm{Kind: "property", Op: "exact"})
		}
	case "remove-filter":
		if i, j := idx(1), idx(2); i >= 0 && i < len(ff.Conditions) && j >= 0 && j < len(ff.Conditions[i].Filters) {
			ff.Conditions[i].Filters = slices.Delete(ff.Conditions[i].Filters, j, j+1)
		}
	case "add-variant":
		if len(ff.Variants) < maxVariants {
			ff.Variants = append(ff.Variants, variantForm{})
		}
	case "remove-variant":
		if i := idx(1); i >= 0 && i < len(ff.Variants) {
			ff.Variants = slices.Delete(ff.Variants, i, i+1)
		}
	case "add-override":
		if len(ff.Overrides) < maxOverrides {
			ff.Overrides = append(ff.Overrides, overrideForm{Target: "persons", Value: "true"})
		}
	case "remove-override":
		if i := idx(1); i >= 0 && i < len(ff.Overrides) {
			ff.Overrides = slices.Delete(ff.Overrides, i, i+1)
		}
	default:
		return false
	}
	return true
}

func (ff *flagForm) fail(field, format string, args ...any) {
	if _, ok := ff.Errors[field]; !ok {
		ff.Errors[field] = fmt.Sprintf(format, args...)
	}
}

// input builds the API's FlagInput from the form, naming every field it
// refuses in ff.Errors; nil when something was refused.
func (ff *flagForm) input() *adminv1.FlagInput {
	in := &adminv1.FlagInput{Key: ff.Key, Name: ff.Name, Description: ff.Description, Active: ff.Active,
		EnsureExperienceContinuity: ff.Continuity}
	if !keyText.MatchString(ff.Key) {
		ff.fail("key", "a key is 1 to 400 letters, digits and _ . - $ /")
	}
	for t := range strings.SplitSeq(ff.Tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			in.Tags = append(in.Tags, t)
		}
	}
	filters := map[string]any{}
	if ff.Extra != "" {
		if err := json.Unmarshal([]byte(ff.Extra), &filters); err != nil {
			ff.Problems = append(ff.Problems, "the flag's other filter settings could not be read back: reload the page")
		}
	}
	variantKeys := map[string]bool{}
	groups := []any{}
	for i, c := range ff.Conditions {
		p := fmt.Sprintf("c%d.", i)
		g := map[string]any{}
		gi, isGroup := groupIndex(c.Target)
		if isGroup {
			g["aggregation_group_type_index"] = gi
		} else if c.Target == "persons" || c.Target == "" {
			g["aggregation_group_type_index"] = nil
		} else {
			ff.fail(p+"target", "choose persons or a group type")
		}
		if r := strings.TrimSpace(c.Rollout); r != "" {
			n, err := strconv.ParseFloat(r, 64)
			if err != nil || n < 0 || n > 100 {
				ff.fail(p+"rollout", "the rollout is a percentage from 0 to 100")
			} else {
				g["rollout_percentage"] = n
			}
		}
		if v := strings.TrimSpace(c.Variant); v != "" {
			g["variant"] = v
		}
		if c.Description != "" {
			g["description"] = c.Description
		}
		props := []any{}
		for j, fl := range c.Filters {
			q := fmt.Sprintf("%sf%d.", p, j)
			key := strings.TrimSpace(fl.Key)
			switch fl.Kind {
			case "cohort":
				id, err := strconv.ParseInt(key, 10, 64)
				if err != nil || id <= 0 {
					ff.fail(q+"key", "choose a cohort")
					continue
				}
				op := "in"
				if fl.Op == "not_in" {
					op = "not_in"
				}
				props = append(props, map[string]any{"key": "id", "type": "cohort", "operator": op, "value": id})
			case "flag":
				if key == "" {
					ff.fail(q+"key", "choose the flag this one depends on")
					continue
				}
				var v any = true
				switch val := strings.TrimSpace(fl.Value); val {
				case "", "true":
				case "false":
					v = false
				default:
					v = val
				}
				props = append(props, map[string]any{"key": key, "type": "flag", "operator": "flag_evaluates_to", "value": v})
			default:
				if key == "" {
					ff.fail(q+"key", "enter the property's name")
					continue
				}
				v, msg := checkValue(fl.Op, fl.Value)
				if msg != "" {
					ff.fail(q+"value", "%s", msg)
					continue
				}
				m := map[string]any{"key": key, "type": "person", "operator": fl.Op, "value": v}
				if isGroup {
					m["type"], m["group_type_index"] = "group", gi
				}
				props = append(props, m)
			}
		}
		g["properties"] = props
		groups = append(groups, g)
	}
	filters["groups"] = groups
	payloads := map[string]any{}
	if len(ff.Variants) > 0 {
		vs := []any{}
		sum := 0.0
		for i, v := range ff.Variants {
			p := fmt.Sprintf("v%d.", i)
			k := strings.TrimSpace(v.Key)
			if !keyText.MatchString(k) {
				ff.fail(p+"key", "a variant key is letters, digits and _ . -")
			} else if variantKeys[k] {
				ff.fail(p+"key", "variant %q is listed twice", k)
			}
			variantKeys[k] = true
			n, err := strconv.ParseFloat(strings.TrimSpace(v.Rollout), 64)
			if err != nil || n < 0 || n > 100 {
				ff.fail(p+"rollout", "a percentage from 0 to 100")
			}
			sum += n
			m := map[string]any{"key": k, "rollout_percentage": n}
			if v.Name != "" {
				m["name"] = v.Name
			}
			vs = append(vs, m)
			if s := strings.TrimSpace(v.Payload); s != "" {
				if !json.Valid([]byte(s)) {
					ff.fail(p+"payload", "the payload is not valid JSON")
				} else {
					payloads[k] = s
				}
			}
		}
		if sum != 100 && len(ff.Errors) == 0 {
			ff.fail("v0.rollout", "the variants' percentages add up to %g, not 100", sum)
		}
		filters["multivariate"] = map[string]any{"variants": vs}
	} else {
		delete(filters, "multivariate")
	}
	if s := strings.TrimSpace(ff.PayloadTrue); s != "" {
		if !json.Valid([]byte(s)) {
			ff.fail("payload_true", "the payload is not valid JSON")
		} else {
			payloads["true"] = s
		}
	}
	for i, c := range ff.Conditions {
		if v := strings.TrimSpace(c.Variant); v != "" && !variantKeys[v] {
			ff.fail(fmt.Sprintf("c%d.variant", i), "variant %q is not one of the flag's variants", v)
		}
	}
	filters["payloads"] = payloads
	st, err := structpb.NewStruct(filters)
	if err != nil {
		ff.Problems = append(ff.Problems, "the filters could not be encoded: "+err.Error())
	}
	in.Filters = st
	for i, o := range ff.Overrides {
		p := fmt.Sprintf("o%d.", i)
		var ids []string
		for id := range strings.SplitSeq(o.IDs, ",") {
			if id = strings.TrimSpace(id); id != "" {
				if len(id) > maxIDBytes {
					ff.fail(p+"ids", "an id is at most %d bytes", maxIDBytes)
				}
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			ff.fail(p+"ids", "list the ids to force, separated by commas")
			continue
		}
		var val *structpb.Value
		switch v := strings.TrimSpace(o.Value); v {
		case "true":
			val = structpb.NewBoolValue(true)
		case "false":
			val = structpb.NewBoolValue(false)
		default:
			if !variantKeys[v] {
				ff.fail(p+"value", "true, false or one of the flag's variants")
			}
			val = structpb.NewStringValue(v)
		}
		ov := &adminv1.Override{Value: val}
		if gi, ok := groupIndex(o.Target); ok {
			g := int32(gi)
			ov.GroupTypeIndex, ov.GroupKeys = &g, ids
		} else {
			ov.DistinctIds = ids
		}
		in.Overrides = append(in.Overrides, ov)
	}
	if len(ff.Errors) > 0 || len(ff.Problems) > 0 {
		return nil
	}
	return in
}

// formOf fills the editor from a stored flag.
func formOf(f *adminv1.FeatureFlag) *flagForm {
	ff := &flagForm{ID: f.GetId(), Version: f.GetVersion(), Key: f.GetKey(), Name: f.GetName(), Description: f.GetDescription(),
		Tags: strings.Join(f.GetTags(), ", "), Active: f.GetActive(), Continuity: f.GetEnsureExperienceContinuity(), Errors: map[string]string{}}
	if b, err := json.Marshal(comparable(f)); err == nil {
		ff.Base = base64.StdEncoding.EncodeToString(b)
	}
	filters := f.GetFilters().AsMap()
	flagAgg, hasFlagAgg := filters["aggregation_group_type_index"].(float64)
	groups, _ := filters["groups"].([]any)
	for _, gv := range groups {
		g, _ := gv.(map[string]any)
		c := condForm{Target: "persons"}
		if a, ok := g["aggregation_group_type_index"].(float64); ok {
			c.Target = fmt.Sprintf("g%d", int(a))
		} else if _, present := g["aggregation_group_type_index"]; !present && hasFlagAgg {
			c.Target = fmt.Sprintf("g%d", int(flagAgg))
		}
		if r, ok := g["rollout_percentage"].(float64); ok {
			c.Rollout = strconv.FormatFloat(r, 'f', -1, 64)
		}
		c.Variant, _ = g["variant"].(string)
		c.Description, _ = g["description"].(string)
		props, _ := g["properties"].([]any)
		for _, pv := range props {
			p, _ := pv.(map[string]any)
			fl := filterForm{Kind: "property"}
			fl.Key, _ = p["key"].(string)
			fl.Op, _ = p["operator"].(string)
			switch p["type"] {
			case "cohort":
				fl.Kind, fl.Key = "cohort", valueText(p["value"])
				if fl.Op != "not_in" {
					fl.Op = "in"
				}
			case "flag":
				fl.Kind, fl.Value = "flag", valueText(p["value"])
			default:
				if fl.Op == "" {
					fl.Op = "exact"
				}
				fl.Value = valueText(p["value"])
			}
			c.Filters = append(c.Filters, fl)
		}
		ff.Conditions = append(ff.Conditions, c)
	}
	payloads, _ := filters["payloads"].(map[string]any)
	if mv, ok := filters["multivariate"].(map[string]any); ok {
		vs, _ := mv["variants"].([]any)
		for _, vv := range vs {
			v, _ := vv.(map[string]any)
			x := variantForm{}
			x.Key, _ = v["key"].(string)
			x.Name, _ = v["name"].(string)
			if r, ok := v["rollout_percentage"].(float64); ok {
				x.Rollout = strconv.FormatFloat(r, 'f', -1, 64)
			}
			x.Payload = payloadText(payloads[x.Key])
			ff.Variants = append(ff.Variants, x)
		}
	}
	ff.PayloadTrue = payloadText(payloads["true"])
	for _, o := range f.GetOverrides() {
		x := overrideForm{Target: "persons", IDs: strings.Join(o.GetDistinctIds(), ", "), Value: valueText(o.GetValue().AsInterface())}
		if o.GroupTypeIndex != nil {
			x.Target = fmt.Sprintf("g%d", o.GetGroupTypeIndex())
			x.IDs = strings.Join(o.GetGroupKeys(), ", ")
		}
		ff.Overrides = append(ff.Overrides, x)
	}
	extra := maps.Clone(filters)
	for _, k := range []string{"groups", "multivariate", "payloads"} {
		delete(extra, k)
	}
	// Conditions carry their own aggregation in the editor.
	delete(extra, "aggregation_group_type_index")
	if len(extra) > 0 {
		b, _ := json.Marshal(extra)
		ff.Extra = string(b)
	}
	return ff
}

func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, valueText(e))
		}
		return strings.Join(parts, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// payloadText shows a payload as its JSON text (PostHog stores payloads as
// JSON-encoded strings).
func payloadText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// comparable is the part of a flag a person edits, as JSON, for diffs.
func comparable(f interface {
	GetKey() string
	GetName() string
	GetDescription() string
	GetActive() bool
	GetTags() []string
	GetEnsureExperienceContinuity() bool
	GetFilters() *structpb.Struct
	GetOverrides() []*adminv1.Override
}) map[string]any {
	ovs := []any{}
	for _, o := range f.GetOverrides() {
		m := map[string]any{"value": o.GetValue().AsInterface()}
		if o.GroupTypeIndex != nil {
			m["group_type_index"], m["group_keys"] = o.GetGroupTypeIndex(), o.GetGroupKeys()
		} else {
			m["distinct_ids"] = o.GetDistinctIds()
		}
		ovs = append(ovs, m)
	}
	tags := f.GetTags()
	if tags == nil {
		tags = []string{}
	}
	return normalize(map[string]any{"key": f.GetKey(), "name": f.GetName(), "description": f.GetDescription(), "active": f.GetActive(),
		"tags": tags, "ensure_experience_continuity": f.GetEnsureExperienceContinuity(),
		"filters": f.GetFilters().AsMap(), "overrides": ovs}).(map[string]any)
}

// normalize round-trips a value through JSON so that both sides of a diff
// have the same Go types.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// Change is one changed field of a diff.
type Change struct {
	Path, Before, After string
}

// diff lists the leaves that differ between two JSON values, by path.
func diff(before, after any) []Change {
	a, b := map[string]string{}, map[string]string{}
	flatten("", normalize(before), a)
	flatten("", normalize(after), b)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []Change
	for k := range keys {
		if a[k] != b[k] {
			out = append(out, Change{Path: k, Before: a[k], After: b[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && prefix != "" {
			out[prefix] = "{}"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 && prefix != "" {
			out[prefix] = "[]"
		}
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}

// fieldPath maps an API field path (flag.filters.groups[0].properties[1]
// .value) to the editor's field name (c0.f1.value), so that a refusal shows
// next to its input.
var (
	reProp    = regexp.MustCompile(`groups\[(\d+)\]\.properties\[(\d+)\](?:\.(\w+))?`)
	reGroup   = regexp.MustCompile(`groups\[(\d+)\](?:\.(\w+))?`)
	reVariant = regexp.MustCompile(`multivariate\.variants\[(\d+)\](?:\.(\w+))?`)
	reOver    = regexp.MustCompile(`overrides\[(\d+)\](?:\.(\w+))?`)
)

func fieldPath(api string) string {
	if m := reProp.FindStringSubmatch(api); m != nil {
		leaf := map[string]string{"operator": "op", "key": "key"}[m[3]]
		if leaf == "" {
			leaf = "value"
		}
		return fmt.Sprintf("c%s.f%s.%s", m[1], m[2], leaf)
	}
	if m := reGroup.FindStringSubmatch(api); m != nil {
		leaf := map[string]string{"rollout_percentage": "rollout", "variant": "variant", "aggregation_group_type_index": "target"}[m[2]]
		if leaf == "" {
			leaf = "rollout"
		}
		return fmt.Sprintf("c%s.%s", m[1], leaf)
	}
	if m := reVariant.FindStringSubmatch(api); m != nil {
		leaf := map[string]string{"rollout_percentage": "rollout", "key": "key", "name": "name"}[m[2]]
		if leaf == "" {
			leaf = "key"
		}
		return fmt.Sprintf("v%s.%s", m[1], leaf)
	}
	if m := reOver.FindStringSubmatch(api); m != nil {
		return fmt.Sprintf("o%s.ids", m[1])
	}
	switch {
	case strings.HasSuffix(api, ".key") || api == "key":
		return "key"
	case strings.Contains(api, "payloads"):
		return "payload_true"
	case strings.HasSuffix(api, "name"):
		return "name"
	}
	return ""
}
