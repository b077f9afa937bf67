package admin

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// FuzzDecodeFilters: request filters never panic the decoder, the
// conversion or the validation, and what decodes re-encodes to JSON that
// decodes to the same thing (numbers keep their text).
func FuzzDecodeFilters(f *testing.F) {
	for _, s := range []string{
		``,
		`{"groups":[{"properties":[{"key":"plan","type":"person","value":5.0}],"rollout_percentage":50}]}`,
		`{"groups":[{"properties":[],"aggregation_group_type_index":null}],"aggregation_group_type_index":0}`,
		`{"groups":[],"multivariate":{"variants":[{"key":"a","rollout_percentage":100}]},"payloads":{"a":"{\"x\":1}"}}`,
		`{"groups":[{"properties":[{"key":"f","type":"flag","operator":"flag_evaluates_to","value":true}]}],"super_groups":[]}`,
		`{"groups": [`, `null`, `[]`, `{"groups":[{"rollout_percentage":"x"}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		filters, err := DecodeFilters(text)
		if err != nil {
			return
		}
		again, err := DecodeFilters(encodeJSON(filters))
		if err != nil {
			t.Fatalf("re-decoding %q: %v", encodeJSON(filters), err)
		}
		if encodeJSON(again) != encodeJSON(filters) {
			t.Fatalf("not stable: %s vs %s", encodeJSON(filters), encodeJSON(again))
		}
		// The whole request path: limits and conversion never panic.
		s := &Service{}
		s.cfg.Limits.setDefaults()
		st := &structpb.Struct{}
		if protojson.Unmarshal([]byte(text), st) == nil {
			_, _ = s.flagFromInput(&adminv1.FlagInput{Key: "k", Filters: st}, "flag.")
		}
	})
}

// FuzzConditionProperties: a condition's properties text never panics.
func FuzzConditionProperties(f *testing.F) {
	f.Add(`[{"key":"email","type":"person","operator":"icontains","value":"@corp.com"}]`)
	f.Add(`[{"key":"n","type":"person","operator":"gt","value":1e400}]`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, text string) {
		l := &structpb.ListValue{}
		if protojson.Unmarshal([]byte(text), l) != nil {
			return
		}
		c, err := conditionFromProto(&adminv1.Condition{Properties: l}, "condition")
		if err != nil {
			return
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatalf("decoded condition does not encode: %v", err)
		}
	})
}
