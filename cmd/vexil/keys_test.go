package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeysCommand(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCmd(t, "keys", "create", "--data-dir", dir, "--scopes", "flag:read,team:admin", "--label", "ops")
	if code != 0 || !regexp.MustCompile(`^phx_[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("create: %d %q %q", code, out, stderr)
	}
	id := regexp.MustCompile(`key_[0-9a-f]+`).FindString(stderr)
	code, out, _ = runCmd(t, "keys", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, id+"\tpersonal\t") || !strings.Contains(out, "flag:read,team:admin\tactive\tops") {
		t.Fatalf("list: %d %q", code, out)
	}
	if code, _, stderr := runCmd(t, "keys", "revoke", "--data-dir", dir, "--id", id); code != 0 {
		t.Fatalf("revoke: %d %s", code, stderr)
	}
	if _, out, _ := runCmd(t, "keys", "list", "--data-dir", dir); !strings.Contains(out, "\trevoked\t") {
		t.Errorf("after revoke: %q", out)
	}
	for _, args := range [][]string{
		{"keys", "create", "--data-dir", dir, "--scopes", "flag:fly"},
		{"keys", "create", "--data-dir", dir, "--teams", "x"},
		{"keys", "frobnicate"},
		{"keys"},
	} {
		if code, _, _ := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := runCmd(t, "keys", "create", "--data-dir", dir, "--teams", "42"); code != 1 {
		t.Errorf("unknown team: exit %d, want 1", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAdminCommand(t *testing.T) {
	if code, _, stderr := runCmd(t, "admin", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0"); code != 2 || !strings.Contains(stderr, "loopback") {
		t.Fatalf("non-loopback address: %d %s", code, stderr)
	}
	dir := t.TempDir()
	_, secret, _ := runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)
	base, stop := startAdmin(t, dir)
	req, _ := http.NewRequest("POST", base+"/api/projects", strings.NewReader(`{"name":"acme"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"acme"`) {
		t.Errorf("create team: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `vexil_admin_requests_total{code="ok",method="/vexil.admin.v1.AdminService/CreateTeam"} 1`) {
		t.Errorf("metrics: %s", body)
	}
	stop()
}
