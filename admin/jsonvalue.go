package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// JSON definitions travel as google.protobuf.Struct, ListValue and Value.
// Going in, a message is written out as JSON text and decoded into the
// engine's types (numbers keep their text); going out, the engine's JSON
// is read back into a Value, and a number a double would change (an id
// past 2^53, 5.0) becomes a string of the same text, which the engine
// compares exactly like the number. Only property values can hold such
// numbers: everything else the engine stores as float64 or int.

// messageJSON writes a Struct, ListValue or Value as JSON text; a nil
// message is "" (absent).
func messageJSON(m proto.Message) (string, error) {
	if m == nil {
		return "", nil
	}
	switch v := m.(type) {
	case *structpb.Struct:
		if v == nil {
			return "", nil
		}
	case *structpb.ListValue:
		if v == nil {
			return "", nil
		}
	case *structpb.Value:
		if v == nil {
			return "", nil
		}
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// exactNumber reports whether a double holds the number's text exactly (it
// writes back the same way).
func exactNumber(n json.Number) (float64, bool) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, strconv.FormatFloat(f, 'f', -1, 64) == string(n)
}

// jsonValue turns JSON decoded with UseNumber into a Value; numbers a
// double would change become strings of their text.
func jsonValue(v any) *structpb.Value {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue()
	case bool:
		return structpb.NewBoolValue(x)
	case string:
		return structpb.NewStringValue(x)
	case json.Number:
		if f, ok := exactNumber(x); ok {
			return structpb.NewNumberValue(f)
		}
		return structpb.NewStringValue(string(x))
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			l.Values[i] = jsonValue(e)
		}
		return structpb.NewListValue(l)
	case map[string]any:
		return structpb.NewStructValue(jsonStruct(x))
	}
	return structpb.NewStringValue(fmt.Sprint(v))
}

func jsonStruct(m map[string]any) *structpb.Struct {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, e := range m {
		s.Fields[k] = jsonValue(e)
	}
	return s
}

// decodeGeneric decodes JSON into nil, bool, string, json.Number, []any and
// map[string]any.
func decodeGeneric(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// toValue writes v (an engine type) as a Value; nil when v is not JSON.
func toValue(v any) *structpb.Value {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	g, err := decodeGeneric(data)
	if err != nil {
		return nil
	}
	return jsonValue(g)
}

// toStruct writes v (an engine type that encodes as an object) as a Struct.
func toStruct(v any) *structpb.Struct {
	val := toValue(v)
	if s := val.GetStructValue(); s != nil {
		return s
	}
	return nil
}

// rawValue turns raw JSON into a Value (nil for empty or invalid text).
func rawValue(raw json.RawMessage) *structpb.Value {
	if len(raw) == 0 {
		return nil
	}
	g, err := decodeGeneric(raw)
	if err != nil {
		return nil
	}
	return jsonValue(g)
}

// textKeys name the request fields whose numbers are compared by their
// text: property filter and override values, and properties given to an
// explanation.
var textKeys = map[string]bool{"value": true, "person_properties": true, "group_properties": true}

// exactNumbers rewrites, in JSON decoded with UseNumber, the numbers under
// a textKeys field that a double would change into strings of their text
// (request bodies, before protojson reads them). Elsewhere (a rollout of
// 50.0, an id) a double, or protojson's exact integers, keep the meaning.
func exactNumbers(v any) any { return exactUnder(v, false) }

func exactUnder(v any, text bool) any {
	switch x := v.(type) {
	case json.Number:
		if _, ok := exactNumber(x); text && !ok {
			return string(x)
		}
	case []any:
		for i, e := range x {
			x[i] = exactUnder(e, text)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = exactUnder(e, text || textKeys[k])
		}
	}
	return v
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefinitionsStruct reads JSON text (a definitions file for
// ImportDefinitions, a flag's filters) into a Struct the way the REST
// surface does: a number a double would change becomes a string of its
// text.
func DefinitionsStruct(data []byte) (*structpb.Struct, error) {
	g, err := decodeGeneric(data)
	if err != nil {
		return nil, err
	}
	obj, ok := exactNumbers(g).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("admin: the definitions are not a JSON object")
	}
	return jsonStruct(obj), nil
}
