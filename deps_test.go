package vexil

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/vexil-dev/vexil"

// A layer is an allow-list: the packages under Path may import, of Vexil,
// only their own subtree and what Allow names. A pattern ending in "/..."
// names a package and everything below it; any other pattern names exactly
// one package ("store" is the interfaces, not the backends below them).
// Paths are relative to the module; "" is the module's root package alone.
//
// A package belongs to the layer with the longest Path that contains it
// ("precompute/results" is not the precompute worker). A package in no
// layer fails the test: a new package must be placed.
//
// A test-support layer (TestSupport) holds helpers for tests (an
// in-process NATS server, polling): only other test support may import it,
// not even the wiring, and tests (whose imports this test does not check).
type layer struct {
	Path        string
	Allow       []string
	Any         bool // the wiring: may import anything but test support
	TestSupport bool
	Why         string
}

var layers = []layer{
	{Path: "", Why: "the root package holds only tree-wide tests"},
	{Path: "proto", Why: "generated wire types depend on nothing of Vexil"},
	{Path: "flags", Why: "the evaluation engine is pure: no I/O, no transport, no storage"},
	{Path: "schema", Why: "the CQL schema is data"},
	{Path: "namespace", Why: "a contract (the names of one environment on NATS) depends on nothing of Vexil"},
	{Path: "changes", Allow: []string{"namespace"}, Why: "a contract (change notices) depends on nothing of Vexil but the namespace its subjects are in"},
	{Path: "streams", Allow: []string{"namespace"}, Why: "the JetStream stream policy depends on nothing of Vexil but the namespace"},
	{Path: "store", Allow: []string{"schema/..."},
		Why: "the store knows nothing of its writers and readers (schema is its CQL)"},
	{Path: "catalog", Allow: []string{"flags/...", "schema/..."},
		Why: "the catalog stores definitions; it knows nothing of transports and readers"},
	{Path: "admission", Why: "admission control depends on nothing of Vexil"},
	{Path: "cors", Why: "answering browsers' cross-origin requests depends on nothing of Vexil"},
	{Path: "h1fast", Why: "serving HTTP/1.1 below net/http, with a handler it is given, depends on nothing of Vexil"},
	{Path: "capture", Allow: []string{"errcode", "cors", "store", "projector/ingest", "proto/vexil/ingest/...", "namespace"},
		Why: "the capture endpoints turn PostHog's events into ingest messages: they depend on the ingest contract, not on the projector or evaluation"},
	{Path: "errcode", Allow: []string{"flags/...", "store", "catalog", "admission"},
		Why: "the error table maps the domain sentinels of the lower layers"},
	{Path: "precompute/results", Allow: []string{"flags/..."},
		Why: "stored results are a data format shared by the precompute worker and evalsvc"},
	{Path: "projector", Allow: []string{"flags/...", "store", "changes/...", "streams/...", "proto/vexil/ingest/...", "namespace"},
		Why: "the projector writes through the store interface; the read side and the other workers are not below it"},
	{Path: "signals", Allow: []string{"namespace", "streams"},
		Why: "a contract (cohort membership signals) depends on nothing of Vexil but the namespace and the stream policy"},
	{Path: "webhooks", Allow: []string{"namespace", "streams", "signals"},
		Why: "webhook delivery reads the signals and keeps its own state on NATS; it is on no path of ingest or evaluation"},
	{Path: "precompute", Allow: []string{"flags/...", "store", "catalog", "changes/...", "streams/...", "namespace", "signals"},
		Why: "the precompute worker reads and writes through the store and catalog interfaces; hooks to the other roles are wired in cmd"},
	{Path: "usage", Allow: []string{"flags/...", "store", "catalog", "errcode/..."},
		Why: "usage statistics are counted for evalsvc and read for the APIs through the store and catalog interfaces; they depend on neither"},
	{Path: "evalsvc", Allow: []string{"flags/...", "store", "catalog", "errcode/...", "changes/...", "precompute/results/...", "proto/vexil/eval/...", "namespace", "admission", "cors", "usage"},
		Why: "evalsvc reads only through the store and catalog interfaces and never depends on a worker or the management API"},
	{Path: "admin", Allow: []string{"flags/...", "store", "catalog", "errcode/...", "changes/...", "proto/vexil/admin/...", "namespace", "admission", "webhooks", "cors", "h1fast"},
		Why: "the management API writes definitions and announces them; it does not depend on the workers or evalsvc"},
	{Path: "web", Allow: []string{"admin", "errcode/...", "proto/vexil/admin/..."},
		Why: "the web UI calls the management API's service: no second path to the catalog or the store"},
	{Path: "mcpsvc", Allow: []string{"admin", "errcode/...", "changes/...", "proto/vexil/admin/...", "namespace", "signals", "streams", "store"},
		Why: "the MCP server is a front end of the management API's service layer; its signal inbox reads the signals on NATS and keeps them through the store interface"},
	{Path: "loadtest", Allow: []string{"changes/...", "projector/ingest/...", "evalsvc/wire/...", "proto/...", "namespace"},
		Why: "the load generator is a client: it may use the wire contracts only"},
	{Path: "snapshot", Allow: []string{"flags/...", "store", "catalog", "errcode/...", "projector/...", "namespace"},
		Why: "snapshots read and write through the store and catalog interfaces and replay with the projector; the read side and the management API are not below them"},
	{Path: "slo", Allow: []string{"store"},
		Why: "the SLOs read the node's own metrics and keep rollups through the store interface; the status page's scripts are handed in by cmd"},
	{Path: "canary", Why: "the side canary is a client of two nodes' HTTP endpoints: it depends on nothing of Vexil"},
	{Path: "cmd", Any: true, Why: "cmd wires the roles"},
	{Path: "vexilclient", Allow: []string{"flags/...", "proto/vexil/eval/..."},
		Why: "the Go client is imported by other services on its own: the engine and the evaluation API's wire types only"},
	{Path: "vexilclient/internal/vexiltest", TestSupport: true, Allow: []string{"evalsvc", "catalog", "flags/...", "store/...", "natstest"},
		Why: "test support (a real evaluation service for the client's tests)"},
	{Path: "tlsconf", Why: "TLS from watched PEM files depends on nothing of Vexil"},
	{Path: "tlsconf/tlstest", TestSupport: true, Why: "test support (certificates made in the test) depends on nothing of Vexil"},
	{Path: "natstest", TestSupport: true, Why: "test support (an in-process NATS server) depends on nothing of Vexil"},
	{Path: "polltest", TestSupport: true, Why: "test support (polling) depends on nothing of Vexil"},
}

// layerOf returns the layer of package rel (a module-relative path).
func layerOf(rel string) (layer, bool) {
	best, found := layer{}, false
	for _, l := range layers {
		in := rel == l.Path || l.Path != "" && covers(l.Path+"/...", rel)
		if in && (!found || len(l.Path) > len(best.Path)) {
			best, found = l, true
		}
	}
	return best, found
}

// covers reports whether pattern names package rel (see layer).
func covers(pattern, rel string) bool {
	base, sub := strings.CutSuffix(pattern, "/...")
	if !sub {
		return rel == pattern
	}
	return rel == base || strings.HasPrefix(rel, base+"/")
}

// checkImport returns why package from may not import package to (full
// import paths), or nil. Imports from outside Vexil are not its concern.
func checkImport(from, to string) error {
	rel, ok := relative(to)
	if !ok {
		return nil
	}
	fromRel, ok := relative(from)
	if !ok {
		return fmt.Errorf("%s is not a Vexil package", from)
	}
	l, ok := layerOf(fromRel)
	if !ok {
		return fmt.Errorf("%s belongs to no layer: add it to layers in deps_test.go", from)
	}
	if tl, ok := layerOf(rel); ok && tl.TestSupport && !l.TestSupport {
		return fmt.Errorf("%s imports %s: %s is test support, for tests only", from, to, tl.Path)
	}
	if l.Any || (l.Path != "" && covers(l.Path+"/...", rel)) {
		return nil
	}
	for _, a := range l.Allow {
		if covers(a, rel) {
			return nil
		}
	}
	return fmt.Errorf("%s imports %s: %s", from, to, l.Why)
}

// relative returns an import path relative to the module; false outside it.
func relative(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// TestCheckImport: the rules catch a wrong arrow, and allow the right ones.
func TestCheckImport(t *testing.T) {
	v := func(rel string) string { return module + "/" + rel }
	cases := []struct {
		from, to string
		ok       bool
	}{
		// Allowed.
		{v("flags"), "encoding/json", true},
		{v("store/memstore"), v("store/internal/keyenc"), true},
		{v("store/scyllastore"), v("schema"), true},
		{v("catalog/memcatalog"), v("catalog/internal/kvcatalog"), true},
		{v("evalsvc"), v("precompute/results"), true},
		{v("evalsvc"), v("store"), true},
		{v("evalsvc/wire"), v("flags"), true},
		{v("precompute"), v("precompute/results"), true},
		{v("precompute"), v("changes"), true},
		{v("projector"), v("streams"), true},
		{v("projector/ingest"), v("proto/vexil/ingest/v1"), true},
		{v("admin"), v("changes"), true},
		{v("admin"), v("proto/vexil/admin/v1"), true},
		{v("cmd/vexil"), v("store/pebblestore"), true},
		{v("natstest"), "github.com/nats-io/nats-server/v2/server", true},
		{v("polltest"), "testing", true},
		// Wrong arrows.
		{v("flags"), v("store"), false},
		{v("store"), v("flags"), false},
		{v("store/pebblestore"), v("catalog"), false},
		{v("changes"), v("flags"), false},
		{v("evalsvc"), v("store/pebblestore"), false},
		{v("evalsvc"), v("catalog/memcatalog"), false},
		{v("evalsvc"), v("precompute"), false},
		{v("evalsvc"), v("projector"), false},
		{v("evalsvc"), v("admin"), false},
		{v("projector"), v("evalsvc"), false},
		{v("projector"), v("precompute"), false},
		{v("precompute"), v("projector"), false},
		{v("precompute"), v("evalsvc"), false},
		{v("precompute/results"), v("precompute"), false},
		{v("admin"), v("precompute"), false},
		{v("admin"), v("evalsvc"), false},
		{v("admin"), v("projector/ingest"), false},
		{v("admin"), v("store/memstore"), false},
		{v("errcode"), v("admin"), false},
		{v("loadtest"), v("store"), false},
		{v("proto/vexil/eval/v1"), v("flags"), false},
		{module, v("flags"), false},
		// Test support is for tests only, even in the wiring.
		{v("cmd/vexil"), v("natstest"), false},
		{v("cmd/vexil"), v("polltest"), false},
		{v("projector"), v("natstest"), false},
		{v("evalsvc"), v("polltest"), false},
		{v("store/storetest"), v("natstest"), false},
		// Test support depends on nothing of Vexil either.
		{v("natstest"), v("polltest"), false},
		{v("natstest"), v("streams"), false},
		// Prefixes are path elements: "storex" is not "store/...".
		{v("storex"), v("store"), false},
		{v("admin"), v("changesx"), false},
		// A package in no layer.
		{v("newpkg"), v("flags"), false},
	}
	for _, c := range cases {
		err := checkImport(c.from, c.to)
		if (err == nil) != c.ok {
			t.Errorf("checkImport(%s, %s) = %v, want ok=%v", c.from, c.to, err, c.ok)
		}
	}
}

// forbidden lists what packages may not depend on even transitively,
// outside Vexil: drivers and transports.
var forbidden = []struct {
	From      string // a pattern, as in layer
	Forbidden []string
	Why       string
}{
	{"flags/...", []string{"github.com/nats-io/", "github.com/gocql/", "github.com/scylladb/",
		"github.com/cockroachdb/pebble", "google.golang.org/grpc", "net/http"},
		"the evaluation engine is pure: no I/O, no transport, no storage"},
	{"changes/...", []string{"github.com/nats-io/", "google.golang.org/grpc", "net/http"},
		"a contract package encodes and parses; it does not transport"},
	{"store", []string{"github.com/nats-io/", "github.com/gocql/", "github.com/cockroachdb/pebble"},
		"the store interfaces know nothing of their backends' drivers"},
	{"store/...", []string{"github.com/nats-io/"}, "the store knows nothing of its writers and readers"},
	{"catalog/...", []string{"github.com/nats-io/"}, "the catalog knows nothing of transports"},
	{"evalsvc/...", []string{"github.com/gocql/", "github.com/cockroachdb/pebble"},
		"evalsvc reads only through the store interfaces"},
	{"usage/...", []string{"github.com/nats-io/", "github.com/gocql/", "github.com/cockroachdb/pebble"},
		"usage statistics go through the store interfaces"},
}

// TestDependencyDirection checks every non-test package's direct imports
// against its layer, and its transitive dependencies against forbidden
// (test-only dependencies are allowed: tests may use real NATS, or another
// role to compare with).
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "./...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	imports, deps := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "|")
		if len(parts) != 3 {
			t.Fatalf("go list line %q", sc.Text())
		}
		pkg := parts[0]
		for _, imp := range strings.Fields(parts[1]) {
			if err := checkImport(pkg, imp); err != nil {
				t.Error(err)
			}
			if strings.HasPrefix(imp, module) {
				imports++
			}
		}
		rel, ok := relative(pkg)
		if !ok {
			t.Errorf("%s is outside the module", pkg)
			continue
		}
		if _, ok := layerOf(rel); !ok {
			t.Errorf("%s belongs to no layer: add it to layers in deps_test.go", pkg)
		}
		for _, r := range forbidden {
			if !covers(r.From, rel) {
				continue
			}
			for _, d := range strings.Fields(parts[2]) {
				deps++
				for _, f := range r.Forbidden {
					if isUnder(d, f) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.Why)
					}
				}
			}
		}
	}
	if imports == 0 || deps == 0 {
		t.Fatalf("checked %d imports of Vexil and %d dependencies; the listing is broken", imports, deps)
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
