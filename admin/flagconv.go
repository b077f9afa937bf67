package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// versionOf returns the expected version: the request's field, else the
// HTTP If-Match header (forwarded by the gateway as "if-match"), else 0.
func versionOf(ctx context.Context, v int64) int64 {
	if v != 0 {
		return v
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, h := range md.Get("if-match") {
		h = strings.TrimPrefix(strings.TrimSpace(h), "W/")
		h = strings.Trim(h, `"`)
		if n, err := strconv.ParseInt(h, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// decodeJSON decodes JSON text into v, refusing trailing data; numbers in
// raw fields keep their text.
func decodeJSON(text string, v any) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// DecodeFilters decodes a flag's filters from JSON text in PostHog's shape
// (empty text: no conditions). The values of property filters keep their
// text, so "5" and "5.0" stay different.
func DecodeFilters(text string) (flags.Filters, error) {
	var f flags.Filters
	if strings.TrimSpace(text) == "" {
		return flags.Filters{Groups: []flags.Condition{}}, nil
	}
	if err := decodeJSON(text, &f); err != nil {
		return flags.Filters{}, err
	}
	if f.Groups == nil {
		f.Groups = []flags.Condition{}
	}
	return f, nil
}

func encodeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// filtersFromStruct decodes a flag's filters (nil: no conditions).
func filtersFromStruct(s *structpb.Struct) (flags.Filters, error) {
	text, err := messageJSON(s)
	if err != nil {
		return flags.Filters{}, err
	}
	return DecodeFilters(text)
}

func overridesFromProto(in []*adminv1.Override, field string) ([]flags.Override, error) {
	out := make([]flags.Override, 0, len(in))
	for i, o := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		v, err := messageJSON(o.GetValue())
		if err != nil || v == "" || v == "null" {
			return nil, errcode.Field(errcode.InvalidArgument, f+".value", "value is true, false or a variant key")
		}
		ov := flags.Override{DistinctIDs: o.GetDistinctIds(), GroupKeys: o.GetGroupKeys(), Value: json.RawMessage(v)}
		if o.GroupTypeIndex != nil {
			g := int(o.GetGroupTypeIndex())
			ov.GroupTypeIndex = &g
		}
		out = append(out, ov)
	}
	return out, nil
}

func overridesToProto(in []flags.Override) []*adminv1.Override {
	out := make([]*adminv1.Override, 0, len(in))
	for _, o := range in {
		po := &adminv1.Override{DistinctIds: o.DistinctIDs, GroupKeys: o.GroupKeys, Value: rawValue(o.Value)}
		if o.GroupTypeIndex != nil {
			g := int32(*o.GroupTypeIndex)
			po.GroupTypeIndex = &g
		}
		out = append(out, po)
	}
	return out
}

// checkNewFlagKey checks a flag key that is being created or changed to
// (unchanged when it equals old): PostHog's rule, letters, digits, '-' and
// '_'. Keys stored before the rule keep working until they change.
func checkNewFlagKey(key, old, field string) error {
	if key == old {
		return nil
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errcode.Field(errcode.InvalidArgument, field,
				"key %q: only letters, digits, hyphens (-) and underscores (_) are allowed", key)
		}
	}
	return nil
}

// flagFromInput builds a flag from the editable fields, checking the
// request limits; field paths start with prefix ("flag.").
func (s *Service) flagFromInput(in *adminv1.FlagInput, prefix string) (flags.Flag, error) {
	if in == nil {
		return flags.Flag{}, errcode.Field(errcode.InvalidArgument, strings.TrimSuffix(prefix, "."), "the flag is required")
	}
	if in.GetKey() == "" || len(in.GetKey()) > 400 {
		return flags.Flag{}, errcode.Field(errcode.InvalidArgument, prefix+"key", "key is required, at most 400 bytes")
	}
	// PostHog's flag name is its description (a text of any length).
	if len(in.GetName()) > 10000 || len(in.GetDescription()) > 10000 {
		return flags.Flag{}, errcode.Field(errcode.InvalidArgument, prefix+"name", "name and description are at most 10000 bytes each")
	}
	if len(in.GetTags()) > 100 {
		return flags.Flag{}, errcode.Field(errcode.LimitExceeded, prefix+"tags", "at most 100 tags")
	}
	filters, err := filtersFromStruct(in.GetFilters())
	if err != nil {
		return flags.Flag{}, errcode.Field(errcode.InvalidArgument, prefix+"filters", "filters is not a valid filters object: %v", err)
	}
	ovs, err := overridesFromProto(in.GetOverrides(), prefix+"overrides")
	if err != nil {
		return flags.Flag{}, err
	}
	f := flags.Flag{
		Key: in.GetKey(), Name: in.GetName(), Description: in.GetDescription(), Active: in.GetActive(),
		Tags: in.GetTags(), EnsureExperienceContinuity: in.GetEnsureExperienceContinuity(),
		EvaluationRuntime: in.GetEvaluationRuntime(), BucketingIdentifier: in.GetBucketingIdentifier(),
		Filters: filters, Overrides: ovs,
	}
	if err := s.checkFlagLimits(f, prefix); err != nil {
		return flags.Flag{}, err
	}
	return f, nil
}

// checkFlagLimits refuses a flag with too many conditions or overrides.
func (s *Service) checkFlagLimits(f flags.Flag, prefix string) error {
	l := s.cfg.Limits
	if n := len(f.Filters.Groups); n > l.MaxConditions {
		return errcode.Field(errcode.LimitExceeded, prefix+"filters.groups",
			"%d conditions: at most %d", n, l.MaxConditions).With("limit", strconv.Itoa(l.MaxConditions))
	}
	n := 0
	for _, o := range f.Overrides {
		n += len(o.DistinctIDs) + len(o.GroupKeys)
	}
	if n > l.MaxOverrides || len(f.Overrides) > l.MaxOverrides {
		return errcode.Field(errcode.LimitExceeded, prefix+"overrides",
			"%d override entries: at most %d", n, l.MaxOverrides).With("limit", strconv.Itoa(l.MaxOverrides))
	}
	return nil
}

func flagProto(r catalog.FlagRecord) *adminv1.FeatureFlag {
	f := r.Flag
	return &adminv1.FeatureFlag{
		Id: f.ID, TeamId: f.TeamID, Key: f.Key, Name: f.Name, Description: f.Description, Active: f.Active,
		Deleted: f.Deleted, Archived: r.Archived, Version: f.Version, Tags: f.Tags,
		EnsureExperienceContinuity: f.EnsureExperienceContinuity, EvaluationRuntime: f.EvaluationRuntime,
		BucketingIdentifier: f.BucketingIdentifier, Filters: toStruct(f.Filters),
		Overrides: overridesToProto(f.Overrides), CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt),
		CreatedBy: r.CreatedBy, UpdatedBy: r.UpdatedBy,
	}
}

// conditionFromProto converts a condition; field paths start with field.
func conditionFromProto(c *adminv1.Condition, field string) (flags.Condition, error) {
	if c == nil {
		return flags.Condition{}, errcode.Field(errcode.InvalidArgument, field, "the condition is required")
	}
	var out flags.Condition
	out.Properties = []flags.PropertyFilter{}
	props, err := messageJSON(c.GetProperties())
	if err != nil {
		return flags.Condition{}, errcode.Field(errcode.InvalidArgument, field+".properties", "properties: %v", err)
	}
	if props != "" {
		if err := decodeJSON(props, &out.Properties); err != nil {
			return flags.Condition{}, errcode.Field(errcode.InvalidArgument, field+".properties",
				"properties is a JSON list of property filters: %v", err)
		}
		if out.Properties == nil {
			out.Properties = []flags.PropertyFilter{}
		}
	}
	if c.RolloutPercentage != nil {
		r := c.GetRolloutPercentage()
		out.RolloutPercentage = &r
	}
	if c.Variant != nil {
		v := c.GetVariant()
		out.Variant = &v
	}
	out.Description = c.GetDescription()
	switch t := c.GetTarget().(type) {
	case *adminv1.Condition_Persons:
		if !t.Persons {
			return flags.Condition{}, errcode.Field(errcode.InvalidArgument, field+".persons", "persons is true when set; leave it out otherwise")
		}
		out.Aggregation = flags.Aggregation{Set: true}
	case *adminv1.Condition_GroupTypeIndex:
		g := int(t.GroupTypeIndex)
		out.Aggregation = flags.Aggregation{Set: true, Index: &g}
	}
	return out, nil
}

// cloneFlag deep-copies a flag through its JSON form.
func cloneFlag(f flags.Flag) flags.Flag {
	b, err := json.Marshal(f)
	if err != nil {
		panic(fmt.Sprintf("admin: clone flag: %v", err))
	}
	var out flags.Flag
	if err := decodeJSON(string(b), &out); err != nil {
		panic(fmt.Sprintf("admin: clone flag: %v", err))
	}
	return out
}

// jsonDiff describes what differs between two values' JSON forms:
// {"path": {"before": x, "after": y}}, paths like "filters.groups[0]
// .rollout_percentage". A nil before means creation.
func jsonDiff(before, after any) json.RawMessage {
	var a, b any
	if before != nil {
		a = genericJSON(before)
	}
	if after != nil {
		b = genericJSON(after)
	}
	out := map[string]map[string]any{}
	diffInto(out, "", a, b)
	data, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return data
}

func genericJSON(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var g any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&g); err != nil {
		return nil
	}
	return g
}

func diffInto(out map[string]map[string]any, path string, a, b any) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diffInto(out, p, am[k], bm[k])
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		for i := range al {
			diffInto(out, fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])
		}
		return
	}
	if encodeJSON(a) == encodeJSON(b) {
		return
	}
	if path == "" {
		path = "."
	}
	out[path] = map[string]any{"before": a, "after": b}
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
