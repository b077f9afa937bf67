package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
)

// TestServeCapture: vexil serve's capture endpoints write through the
// ingest stream to the store; with NATS down a client gets 503 with
// Retry-After (SDKs retry), and /flags keeps answering; once NATS is back
// capture works again.
//
//	go test -count=1 -run TestServeCapture ./cmd/vexil/
func TestServeCapture(t *testing.T) {
	ns := natstest.Start(t)
	c := config.Default()
	c.NATS.URL = ns.ClientURL()
	n := testNodeWith(t, c)
	addr := "http://" + n.adminSrv.HTTPAddr()
	tm := defineTeam(t, n)
	capture := func(body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, addr+"/i/v0/e/", strings.NewReader(body))
		req.Header.Set("Origin", "http://shop.example")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "http://shop.example" {
			t.Errorf("capture answered %d without CORS (%q): a browser could not read it", res.StatusCode, got)
		}
		return res.StatusCode, string(b), res.Header
	}
	event := func(did, plan string) string {
		b, _ := json.Marshal([]map[string]any{{"event": "$identify", "properties": map[string]any{
			"distinct_id": did, "token": tm.token, "$anon_distinct_id": "anon-" + did, "$set": map[string]any{"plan": plan}}}})
		return string(b)
	}
	if code, body, _ := capture(event("cap-1", "pro")); code != 200 {
		t.Fatalf("capture: %d %s", code, body)
	}
	waitRow(t, n, tm.id, "cap-1")
	waitRow(t, n, tm.id, "anon-cap-1")

	ns.Stop()
	polltest.Eventually(t, time.Minute, func() error {
		if n.nc.IsConnected() {
			return errors.New("the node has not noticed the outage")
		}
		return nil
	})
	code, body, h := capture(event("cap-2", "pro"))
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "5" || !strings.Contains(body, `"code":"unavailable"`) {
		t.Errorf("capture with NATS down: %d %s, Retry-After %q", code, body, h.Get("Retry-After"))
	}
	if got := postFlags(t, n.adminSrv.HTTPAddr(), `{"token":"`+tm.token+`","distinct_id":"cap-1"}`); got["errorsWhileComputingFlags"] != false {
		t.Errorf("/flags with NATS down: %v", got)
	}

	ns.Restart(t)
	polltest.Eventually(t, time.Minute, func() error {
		if code, body, _ := capture(event("cap-2", "pro")); code != 200 {
			return errors.New(body)
		}
		return nil
	})
	waitRow(t, n, tm.id, "cap-2")
}
