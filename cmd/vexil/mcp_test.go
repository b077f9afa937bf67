package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/natstest"
)

type bearerRT struct{ key string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// TestAdminServesMCP: vexil admin serves /mcp in both protocol eras, with
// the signal inbox when it has NATS.
func TestAdminServesMCP(t *testing.T) {
	ns := natstest.Start(t)
	dir := t.TempDir()
	_, secret, _ := runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)
	base, stop := startAdmin(t, dir, "--nats-url", ns.ClientURL())
	defer stop()
	req, _ := http.NewRequest("POST", base+"/api/projects", strings.NewReader(`{"name":"agents"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create team: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, era := range []string{"2025-11-25", "2026-07-28"} {
		tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp?team_id=1", HTTPClient: &http.Client{Transport: bearerRT{secret}}}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(context.Background(), tr,
			&mcp.ClientSessionOptions{ProtocolVersion: era})
		if err != nil {
			t.Fatalf("%s: %v", era, err)
		}
		for _, call := range []struct {
			tool string
			args map[string]any
		}{{"flag_create", map[string]any{"key": "f" + strings.ReplaceAll(era, "-", "")}}, {"flags_list", nil}, {"signals_list", nil}} {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: call.tool, Arguments: call.args})
			if err != nil || res.IsError {
				t.Fatalf("%s %s: %v %v", era, call.tool, res, err)
			}
		}
		_ = cs.Close()
	}
}
