package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// The decoding that the fast decoder replaced, kept as the reference the
// differential tests and fuzzers compare against: encoding/json with
// UseNumber into a map[string]any, then the fields read from the map.

// decodePropertiesStd is evalsvc's decodeProps: what DecodeProperties
// must match.
func decodePropertiesStd(b []byte, m map[string]any) error {
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(&m)
}

func parseFlagsBodyStd(raw []byte) (*FlagsRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(sanitizeJSON5(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, badRequest(CodeBadBody, "body", "the body must be a JSON object")
	}
	first := func(keys ...string) (any, bool) {
		for _, k := range keys {
			if v, ok := m[k]; ok && v != nil {
				return v, true
			}
		}
		return nil, false
	}
	r := &FlagsRequest{}
	if v, ok := first("token", "api_key", "$token"); ok {
		s, isStr := v.(string)
		if !isStr {
			return nil, badRequest(CodeBadBody, "token", "the token must be a string")
		}
		r.Token = s
	}
	v, ok := first("distinct_id", "$distinct_id")
	if !ok {
		return nil, badRequest(CodeMissingDistinctID, "distinct_id", "distinct_id is required")
	}
	switch x := v.(type) {
	case string:
		r.DistinctID = x
	case json.Number:
		r.DistinctID = string(x)
	default:
		return nil, badRequest(CodeBadBody, "distinct_id", "distinct_id must be a string or a number")
	}
	if utf8.RuneCountInString(r.DistinctID) > MaxDistinctIDLength {
		r.DistinctID = string([]rune(r.DistinctID)[:MaxDistinctIDLength])
	}
	if v, ok := first("groups", "$groups"); ok {
		gm, isMap := v.(map[string]any)
		if !isMap {
			return nil, badRequest(CodeBadBody, "groups", "groups must be an object of group type to key")
		}
		r.Groups = make(map[string]string, len(gm))
		for typ, key := range gm {
			switch k := key.(type) {
			case string:
				r.Groups[typ] = k
			case json.Number:
				r.Groups[typ] = string(k)
			case nil:
			default:
				return nil, badRequest(CodeBadBody, "groups."+typ, "a group key must be a string or a number")
			}
		}
	}
	if v, ok := first("person_properties", "$properties"); ok {
		pm, isMap := v.(map[string]any)
		if !isMap {
			return nil, badRequest(CodeBadBody, "person_properties", "person_properties must be an object")
		}
		r.PersonProperties = pm
	}
	if v, ok := first("group_properties", "$group_properties"); ok {
		gm, isMap := v.(map[string]any)
		if !isMap {
			return nil, badRequest(CodeBadBody, "group_properties", "group_properties must be an object")
		}
		r.GroupProperties = make(map[string]map[string]any, len(gm))
		for typ, props := range gm {
			pm, isMap := props.(map[string]any)
			if !isMap {
				if props == nil {
					continue
				}
				return nil, badRequest(CodeBadBody, "group_properties."+typ, "group properties must be an object")
			}
			r.GroupProperties[typ] = pm
		}
	}
	if v, ok := first("flag_keys_to_evaluate", "flag_keys"); ok {
		keys, err := stringListStd(v, "flag_keys_to_evaluate")
		if err != nil {
			return nil, err
		}
		r.FlagKeys = keys
	}
	if v, ok := first("evaluation_contexts", "evaluation_environments"); ok {
		keys, err := stringListStd(v, "evaluation_contexts")
		if err != nil {
			return nil, err
		}
		r.EvaluationContexts = keys
	}
	r.GeoIPDisable = boolFieldStd(m["geoip_disable"])
	r.DisableFlags = boolFieldStd(m["disable_flags"])
	if v, ok := first("device_id", "$device_id"); ok {
		r.DeviceID = stringish(v)
	} else if d, ok := r.PersonProperties["$device_id"]; ok {
		r.DeviceID = stringish(d)
	}
	r.AnonDistinctID = stringish(m["$anon_distinct_id"])
	r.EvaluationRuntime = stringish(m["evaluation_runtime"])
	r.Timezone = stringish(m["timezone"])
	return r, nil
}

func stringListStd(v any, field string) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, badRequest(CodeBadBody, field, "%s must be a list of strings", field)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, badRequest(CodeBadBody, field, "%s must be a list of strings", field)
		}
		out = append(out, s)
	}
	return out, nil
}

func boolFieldStd(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}
