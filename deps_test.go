package vexil

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// A dependency rule: packages whose import path starts with From may not
// depend, directly or transitively, on any package whose path starts with one
// of Forbidden.
type depRule struct {
	From      string
	Forbidden []string
	Why       string
}

var depRules = []depRule{
	{
		From: "github.com/vexil-dev/vexil/flags",
		Forbidden: []string{
			"github.com/nats-io/", "github.com/gocql/", "github.com/scylladb/",
			"github.com/cockroachdb/pebble", "google.golang.org/grpc", "net/http",
			"github.com/vexil-dev/vexil/store", "github.com/vexil-dev/vexil/projector",
		},
		Why: "the evaluation engine is pure: no I/O, no transport, no storage",
	},
	{
		From: "github.com/vexil-dev/vexil/evalsvc",
		Forbidden: []string{
			"github.com/vexil-dev/vexil/store/memstore", "github.com/vexil-dev/vexil/store/pebblestore",
			"github.com/vexil-dev/vexil/store/scyllastore", "github.com/vexil-dev/vexil/projector",
		},
		Why: "evalsvc reads only through the store interfaces",
	},
	{
		From:      "github.com/vexil-dev/vexil/projector",
		Forbidden: []string{"github.com/vexil-dev/vexil/evalsvc"},
		Why:       "the write side never depends on the read side",
	},
	{
		From: "github.com/vexil-dev/vexil/evalsvc",
		Forbidden: []string{
			"github.com/vexil-dev/vexil/catalog/memcatalog", "github.com/vexil-dev/vexil/catalog/pebblecatalog",
			"github.com/vexil-dev/vexil/catalog/scyllacatalog", "github.com/vexil-dev/vexil/admin",
		},
		Why: "evalsvc reads definitions only through the catalog interface",
	},
	{
		From:      "github.com/vexil-dev/vexil/catalog",
		Forbidden: []string{"github.com/nats-io/", "github.com/vexil-dev/vexil/evalsvc", "github.com/vexil-dev/vexil/admin", "github.com/vexil-dev/vexil/projector"},
		Why:       "the catalog stores definitions; it knows nothing of transports and readers",
	},
	{
		From:      "github.com/vexil-dev/vexil/store",
		Forbidden: []string{"github.com/vexil-dev/vexil/projector", "github.com/vexil-dev/vexil/evalsvc", "github.com/nats-io/"},
		Why:       "the store knows nothing of its writers and readers",
	},
}

// TestDependencyDirection enforces depRules over the transitive dependencies
// of every non-test package (test-only dependencies are allowed: tests may
// use real NATS, for instance).
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		for _, r := range depRules {
			if pkg != r.From && !strings.HasPrefix(pkg, r.From+"/") {
				continue
			}
			checked++
			for _, d := range deps {
				for _, f := range r.Forbidden {
					if isUnder(d, f) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.Why)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule; the rules or the listing are broken")
	}
}

// isUnder reports whether import path dep is pkg or below it. A pkg ending
// in "/" names every path with that prefix.
func isUnder(dep, pkg string) bool {
	if strings.HasSuffix(pkg, "/") {
		return strings.HasPrefix(dep, pkg)
	}
	return dep == pkg || strings.HasPrefix(dep, pkg+"/")
}

func TestForbiddenMatching(t *testing.T) {
	// The prefix rule must not confuse siblings: "store/memstore" is not
	// "store/memstorex", and "net/http" forbids "net/http/httptest" too.
	cases := []struct {
		dep, forbidden string
		want           bool
	}{
		{"net/http", "net/http", true},
		{"net/http/httptest", "net/http", true},
		{"net/httpx", "net/http", false},
		{"github.com/nats-io/nats.go", "github.com/nats-io/", true},
		{"github.com/cockroachdb/pebble/v2", "github.com/cockroachdb/pebble", true},
	}
	for _, c := range cases {
		if got := isUnder(c.dep, c.forbidden); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.dep, c.forbidden, got, c.want)
		}
	}
}
