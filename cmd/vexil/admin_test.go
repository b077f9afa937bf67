package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
)

// TestAdminCommandPrecompute: with --nats-url, vexil admin reads the
// precompute run states from the JetStream bucket; without, it answers 503.
func TestAdminCommandPrecompute(t *testing.T) {
	ns := natstest.Start(t)
	url := ns.ClientURL()
	dir := t.TempDir()
	_, secret, _ := runCmd(t, "keys", "create", "--data-dir", dir)
	secret = strings.TrimSpace(secret)

	get := func(base, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return resp.StatusCode, out
	}

	base, stop := startAdmin(t, dir, "--nats-url", url)
	for _, name := range []string{"one", "two"} {
		req, _ := http.NewRequest("POST", base+"/api/projects", strings.NewReader(`{"name":"`+name+`"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("create team: %d", resp.StatusCode)
		}
	}
	// No bucket yet: no run.
	if code, run := get(base, "/api/projects/1/precompute"); code != 200 || run["state"] != "PRECOMPUTE_STATE_NONE" {
		t.Errorf("before any run: %d %v", code, run)
	}

	js := ns.JetStream
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: precompute.NamesOf("").RunBucket})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	data, _ := json.Marshal(precompute.RunState{ID: "r1", Team: 1, Reason: "first materialisation", StartedAt: start,
		FinishedAt: start.Add(10 * time.Second), ScanDone: true, Pages: 2, PagesDone: 2, RowsTotal: 1000, RowsDone: 1000})
	if _, err := kv.Put(ctx, "1", data); err != nil {
		t.Fatal(err)
	}
	code, run := get(base, "/api/projects/1/precompute")
	if code != 200 || run["id"] != "r1" || run["state"] != "PRECOMPUTE_STATE_FINISHED" || run["rows_done"] != 1000.0 ||
		run["rows_per_second"] != 100.0 || run["eta_seconds"] != 0.0 || run["finished_at"] != "2026-03-01T12:00:10Z" {
		t.Errorf("finished run: %d %v", code, run)
	}
	if code, run := get(base, "/api/projects/2/precompute"); code != 200 || run["state"] != "PRECOMPUTE_STATE_NONE" {
		t.Errorf("team without a run: %d %v", code, run)
	}
	stop()

	base, stop = startAdmin(t, dir)
	defer stop()
	if code, body := get(base, "/api/projects/1/precompute"); code != 503 || !strings.Contains(jsonString(body), "precompute_unavailable") {
		t.Errorf("without NATS: %d %v", code, body)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// startAdmin runs vexil admin on dir with more args and returns its HTTP
// base URL and a function that stops it.
func startAdmin(t *testing.T, dir string, args ...string) (string, func()) {
	t.Helper()
	base, _, stop := startAdminAddrs(t, dir, args...)
	return base, stop
}

// startAdminAddrs is startAdmin returning the gRPC address too.
func startAdminAddrs(t *testing.T, dir string, args ...string) (string, string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"admin", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...),
			io.Discard, &logs)
	}()
	re := regexp.MustCompile(`http=(http://127\.0\.0\.1:\d+) grpc=(127\.0\.0\.1:\d+)`)
	var base, grpcAddr string
	polltest.Eventually(t, time.Minute, func() error {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("admin exited %d: %s", code, logs.String())
		default:
		}
		m := re.FindStringSubmatch(logs.String())
		if m == nil {
			return fmt.Errorf("admin logged no HTTP address: %q", logs.String())
		}
		base, grpcAddr = m[1], m[2]
		return nil
	})
	stopped := false
	return base, grpcAddr, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("admin exit %d: %s", code, logs.String())
		}
	}
}
