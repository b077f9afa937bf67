package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
)

type bearerRT struct{ key string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// adminWithProject starts NATS and vexil admin on a new data dir holding
// a personal key and one project (team 1): the data dir, the key's
// secret, the admin's base URL and its stop.
func adminWithProject(t *testing.T) (dir, secret, base string, stop func()) {
	t.Helper()
	ns := natstest.Start(t)
	dir = t.TempDir()
	_, secret, _ = runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)
	base, stop = startAdmin(t, dir, "--nats-url", ns.ClientURL())
	req, _ := http.NewRequest("POST", base+"/api/projects", strings.NewReader(`{"name":"agents"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		stop()
		t.Fatalf("create team: %v %v", resp, err)
	}
	resp.Body.Close()
	return dir, secret, base, stop
}

// TestAdminServesMCP: vexil admin serves /mcp in both protocol eras, with
// the signal inbox when it has NATS.
func TestAdminServesMCP(t *testing.T) {
	_, secret, base, stop := adminWithProject(t)
	defer stop()
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

// stdioMCP connects to vexil mcp with args, run as a subprocess over
// stdin/stdout (as an agent starts it).
func stdioMCP(t *testing.T, args ...string) *mcp.ClientSession {
	t.Helper()
	enc, err := json.Marshal(append([]string{"mcp"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVexilSubprocess$")
	cmd.Env = append(os.Environ(), subprocessArgs+"="+string(enc))
	cmd.Stderr = os.Stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(context.Background(),
		&mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("vexil mcp %v: %v", args, err)
	}
	return cs
}

// callJSON calls a tool and decodes its answer; notes are the answer's
// other lines (the pending-signals note).
func callJSON(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (map[string]any, []string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("%s: %v %v", tool, res, err)
	}
	var out map[string]any
	var notes []string
	for i, c := range res.Content {
		text := c.(*mcp.TextContent).Text
		if i == 0 {
			if err := json.Unmarshal([]byte(text), &out); err != nil {
				t.Fatalf("%s: %q: %v", tool, text, err)
			}
			continue
		}
		notes = append(notes, text)
	}
	return out, notes
}

// TestMCPDataDirSignals: the signals a running admin copied from NATS into
// its store are answered by vexil mcp --data-dir once it stopped, without
// NATS, with the same cursors; an acknowledgement made there holds on the
// next start.
func TestMCPDataDirSignals(t *testing.T) {
	dir, secret, base, stop := adminWithProject(t)
	defer stop()
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp?team_id=1", HTTPClient: &http.Client{Transport: bearerRT{secret}}}
	live, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "v0"}, nil).Connect(context.Background(), tr,
		&mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"one", "two"} {
		callJSON(t, live, "flag_create", map[string]any{"key": key})
	}
	var before []any
	polltest.Eventually(t, time.Minute, func() error {
		out, _ := callJSON(t, live, "signals_list", nil)
		if before = out["signals"].([]any); len(before) != 2 {
			return fmt.Errorf("signals: %v", out)
		}
		return nil
	})
	_ = live.Close()
	stop()

	cs := stdioMCP(t, "--data-dir", dir, "--key", secret, "--team", "1")
	out, notes := callJSON(t, cs, "signals_list", nil)
	after := out["signals"].([]any)
	if len(after) != 2 || fmt.Sprint(after) != fmt.Sprint(before) || out["more"] != false {
		t.Fatalf("signals from the stopped server's store: %v, want %v", after, before)
	}
	if s := after[0].(map[string]any); s["kind"] != "rollout" || !strings.Contains(s["summary"].(string), "created flag one") {
		t.Fatalf("first signal: %v", s)
	}
	if _, notes = callJSON(t, cs, "flags_list", nil); len(notes) != 1 || !strings.HasPrefix(notes[0], "2 pending signals") {
		t.Fatalf("pending note: %q", notes)
	}
	first := after[0].(map[string]any)["cursor"]
	if ack, _ := callJSON(t, cs, "signals_ack", map[string]any{"cursor": first}); ack["acknowledged_up_to"] != first {
		t.Fatalf("ack: %v", ack)
	}
	// A bad cursor is refused here as over HTTP.
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "signals_ack", Arguments: map[string]any{"cursor": 0}}); err != nil || !res.IsError {
		t.Fatalf("a zero cursor: %v %v", res, err)
	}
	_ = cs.Close()

	cs = stdioMCP(t, "--data-dir", dir, "--key", secret, "--team", "1")
	defer cs.Close()
	out, _ = callJSON(t, cs, "signals_list", nil)
	if left := out["signals"].([]any); len(left) != 1 || fmt.Sprint(left[0]) != fmt.Sprint(after[1]) {
		t.Fatalf("after acknowledging the first and restarting: %v", left)
	}
	if _, notes = callJSON(t, cs, "flags_list", nil); len(notes) != 1 || !strings.HasPrefix(notes[0], "1 pending signals") {
		t.Fatalf("pending note after the acknowledgement: %q", notes)
	}
}
