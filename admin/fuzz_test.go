package admin

import (
	"context"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
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

// FuzzImportDefinitions: any JSON object given to the import is planned
// (parsed, remapped, compiled, judged) without a panic, and every item ends
// with an action.
func FuzzImportDefinitions(f *testing.F) {
	f.Add(`{"flags":[{"id":1,"key":"a","filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":5}]}]}}],"cohorts":{"5":{"type":"AND","values":[{"key":"id","type":"cohort","value":5}]}}}`)
	f.Add(`{"flags":[{"key":"b","filters":{"groups":[{"properties":[{"key":"1","type":"flag","value":true}]}]}}],"cohorts":[{"id":3,"is_static":true},{"id":3,"filters":{"values":[]}}],"group_type_mapping":[{"group_type":"x","group_type_index":0}]}`)
	f.Add(`{"results":[{"key":"c","deleted":false,"filters":{"groups":[],"multivariate":{"variants":[]}}}],"group_type_mapping":{"0":"company","x":"y"}}`)
	f.Add(`{"flags":"x","cohorts":7}`)
	cat := memcatalog.New(memcatalog.Config{})
	defer cat.Close()
	team, err := cat.CreateTeam(context.Background(), catalog.Team{Name: "t"}, catalog.Change{Actor: "test"})
	if err != nil {
		f.Fatal(err)
	}
	s := &Service{cat: cat}
	s.cfg.Limits.setDefaults()
	f.Fuzz(func(t *testing.T, text string) {
		st, err := DefinitionsStruct([]byte(text))
		if err != nil {
			return
		}
		data, err := messageJSON(st)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := decodeGeneric([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := cat.Snapshot(context.Background(), team.ID)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := s.planImport(context.Background(), snap, raw.(map[string]any))
		if err != nil {
			return
		}
		for _, it := range plan.report(true).GetItems() {
			if it.GetAction() == "" {
				t.Fatalf("item without an action: %v", it)
			}
		}
	})
}

// FuzzRESTDecoder: any request body decodes into a request or fails,
// without a panic.
func FuzzRESTDecoder(f *testing.F) {
	f.Add(`{"key":"k","filters":{"groups":[{"properties":[{"value":12345678901234567890}]}]},"id":5,"created_by":{}}`)
	f.Add(`{"team_id":"1","version":1e3}`)
	f.Add(`[`)
	m := newRESTMarshaler()
	f.Fuzz(func(t *testing.T, text string) {
		var in adminv1.FlagInput
		if err := m.Unmarshal([]byte(text), &in); err != nil {
			return
		}
		if _, err := m.Marshal(&in); err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
	})
}
