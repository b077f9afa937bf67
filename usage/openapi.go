package usage

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// openAPI holds the REST routes' paths, definitions and tag, in OpenAPI
// 2.0 like the management API's generated document, which it refers to
// for the error body (rpcStatus).
//
//go:embed openapi.json
var openAPI []byte

// AddOpenAPI returns doc, the management API's OpenAPI 2.0 document, with
// the usage routes (Routes) added to its paths, definitions and tags, so
// one document describes everything the management port serves. A path
// or definition doc already holds is an error.
func AddOpenAPI(doc []byte) ([]byte, error) {
	var base, add map[string]any
	if err := json.Unmarshal(doc, &base); err != nil {
		return nil, fmt.Errorf("usage: OpenAPI document: %w", err)
	}
	if err := json.Unmarshal(openAPI, &add); err != nil {
		return nil, fmt.Errorf("usage: embedded OpenAPI fragment: %w", err)
	}
	for _, section := range []string{"paths", "definitions"} {
		dst, _ := base[section].(map[string]any)
		if dst == nil {
			dst = map[string]any{}
			base[section] = dst
		}
		for k, v := range add[section].(map[string]any) {
			if _, dup := dst[k]; dup {
				return nil, fmt.Errorf("usage: OpenAPI document already has %s %q", section, k)
			}
			dst[k] = v
		}
	}
	tags, _ := base["tags"].([]any)
	base["tags"] = append(tags, add["tags"].([]any)...)
	return json.MarshalIndent(base, "", "  ")
}
