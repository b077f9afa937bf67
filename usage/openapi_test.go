package usage_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/usage"
)

// TestOpenAPI: the document with the usage routes keeps every path of
// the management API's, describes exactly the routes Routes serves
// (method and path, without the trailing-slash twins), each with its
// parameters and error responses, and every reference resolves.
func TestOpenAPI(t *testing.T) {
	doc, err := usage.AddOpenAPI(adminv1.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var base, got struct {
		Paths       map[string]map[string]map[string]any `json:"paths"`
		Definitions map[string]any                       `json:"definitions"`
	}
	if err := json.Unmarshal(adminv1.OpenAPI, &base); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	for p := range base.Paths {
		if got.Paths[p] == nil {
			t.Errorf("management path %s lost", p)
		}
	}
	var want []string
	for pattern := range (&usage.Service{}).Routes(usage.HTTPConfig{}) {
		if strings.HasSuffix(pattern, "/{$}") {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{team}", "{team_id}", "{id}", "{flag_id}").Replace(path)
		want = append(want, strings.ToLower(method)+" "+path)
	}
	var documented []string
	for p, ops := range got.Paths {
		if base.Paths[p] != nil {
			continue
		}
		for m, op := range ops {
			documented = append(documented, m+" "+p)
			params, _ := op["parameters"].([]any)
			if len(params) == 0 {
				t.Errorf("%s %s: no parameters", m, p)
			}
			resp, _ := op["responses"].(map[string]any)
			for _, code := range []string{"200", "400", "401", "403", "404", "default"} {
				if resp[code] == nil {
					t.Errorf("%s %s: no %s response", m, p, code)
				}
			}
		}
	}
	slices.Sort(want)
	slices.Sort(documented)
	if !slices.Equal(want, documented) {
		t.Errorf("documented %q, served %q", documented, want)
	}
	for _, ref := range strings.Split(string(doc), `"$ref": "#/definitions/`)[1:] {
		name, _, _ := strings.Cut(ref, `"`)
		if got.Definitions[name] == nil {
			t.Errorf("$ref %s does not resolve", name)
		}
	}
	if _, err := usage.AddOpenAPI(doc); err == nil {
		t.Error("adding the usage routes twice was not refused")
	}
}
