package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestImportCommand: vexil import loads PostHog's local-evaluation payload
// (61 flags, cohorts, group types) through the management API: the dry run
// writes nothing, the import writes it all, and a refused file exits 1
// with the reasons.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	_, secret, _ := runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)
	base, grpcAddr, stop := startAdminAddrs(t, dir)
	defer stop()
	req, _ := http.NewRequest("POST", base+"/api/projects", strings.NewReader(`{"name":"imported"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("create team: %d", resp.StatusCode)
	}
	file := "../../admin/testdata/posthog_local_eval.json"
	args := []string{"import", "--file", file, "--team", "1", "--grpc-addr", grpcAddr, "--key", secret}

	code, out, stderr := runCmd(t, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "64 to create, 0 to change, 0 unchanged, 0 refused: dry run, nothing written") ||
		!strings.Contains(out, `group type 1 "project": create`) {
		t.Fatalf("dry run: %d %s %s", code, out, stderr)
	}
	code, out, stderr = runCmd(t, args...)
	if code != 0 || !strings.Contains(out, "64 to create, 0 to change, 0 unchanged, 0 refused: applied") ||
		!strings.Contains(out, "flag   chain-c") {
		t.Fatalf("import: %d %s %s", code, out, stderr)
	}
	code, out, _ = runCmd(t, args...)
	if code != 0 || !strings.Contains(out, "0 to create, 0 to change, 64 unchanged, 0 refused: applied") {
		t.Fatalf("second import: %d %s", code, out)
	}

	bad := t.TempDir() + "/bad.json"
	writeFile(t, bad, `{"flags":[{"key":"mv","active":true,"filters":{"groups":[],"multivariate":{"variants":[{"key":"a","rollout_percentage":10}]}}}]}`)
	code, out, stderr = runCmd(t, "import", "--file", bad, "--team", "1", "--grpc-addr", grpcAddr, "--key", secret, "--dry-run")
	if code != 1 || !strings.Contains(out, "refused: definitions.flags[0].filters.multivariate.variants") || !strings.Contains(stderr, "1 definitions are refused") {
		t.Errorf("refused dry run: %d %s %s", code, out, stderr)
	}
	code, _, stderr = runCmd(t, "import", "--file", bad, "--team", "1", "--grpc-addr", grpcAddr, "--key", secret)
	if code != 1 || !strings.Contains(stderr, "nothing was written") {
		t.Errorf("refused import: %d %s", code, stderr)
	}
	// PostHog cohorts with behavioural filters: each filter's mode.
	code, out, stderr = runCmd(t, "import", "--file", "../../admin/testdata/posthog_behavioral_cohorts.json", "--team", "1",
		"--grpc-addr", grpcAddr, "--key", secret, "--dry-run")
	for _, want := range []string{
		`realtime: definitions.cohorts[0].filters.properties.values[0].values[0]: performed (gte 2 times) "checkout" with 1 event property filter(s) within the last 5 minute(s)`,
		`property: definitions.cohorts[0].filters.properties.values[0].values[1]: person property "plan"`,
		"refused: definitions.cohorts[1].filters.properties.values[1].values[1]",
		"(invalid_window)",
		"(unsupported_behavioral_filter)",
		"2 to create, 0 to change, 0 unchanged, 1 refused: dry run, nothing written",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("behavioural cohorts dry run: %d, no %q in\n%s%s", code, want, out, stderr)
		}
	}
	if code, _, stderr := runCmd(t, "import", "--team", "1"); code != 2 || !strings.Contains(stderr, "--file and --team are required") {
		t.Errorf("usage: %d %s", code, stderr)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
