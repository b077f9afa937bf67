package adminv1

import (
	_ "embed"
	"encoding/json"
)

// swagger is the document protoc-gen-openapiv2 generates from admin.proto
// and admin_http.yaml.
//
//go:embed admin.swagger.json
var swagger []byte

// OpenAPI is the OpenAPI 2.0 document of the management API's HTTP
// surface: the generated one, with 64-bit integers typed as JSON integers
// (protoc-gen-openapiv2 types them as strings, protojson's form; the REST
// surface writes them as numbers, as PostHog does).
var OpenAPI = int64AsInteger(swagger)

// int64AsInteger retypes every {"type": "string", "format": "int64"} (or
// uint64) schema and parameter as an integer.
func int64AsInteger(doc []byte) []byte {
	var g any
	if err := json.Unmarshal(doc, &g); err != nil {
		panic("adminv1: the embedded OpenAPI document is not JSON: " + err.Error())
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if f, _ := x["format"].(string); (f == "int64" || f == "uint64") && x["type"] == "string" {
				x["type"] = "integer"
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(g)
	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		panic("adminv1: OpenAPI document: " + err.Error())
	}
	return out
}
