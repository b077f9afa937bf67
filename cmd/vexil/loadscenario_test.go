package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/loadtest"
)

// TestLoadtestScenario: a mixed scenario against a real node: /flags,
// gRPC Evaluate, definitions polls with their ETag and person writes on
// NATS, Zipf-distributed distinct ids; every op answers without error and
// the written persons reach the store.
func TestLoadtestScenario(t *testing.T) {
	n := canaryNode(t) // no request shed: the test counts errors
	tm := defineTeam(t, n)
	var out, errb bytes.Buffer
	err := runLoadtest(context.Background(), []string{
		"-url", "http://" + n.adminSrv.HTTPAddr() + "/flags/?v=2", "-grpc", n.adminSrv.GRPCAddr(),
		"-nats-url", n.nc.ConnectedUrl(), "-team", fmt.Sprint(tm.id), "-token", tm.token, "-personal-key", tm.personal,
		"-scenario", "flags=5,grpc=2,poll=2,write=1", "-zipf", "1.2", "-persons", "50",
		"-connections", "2", "-warmup", "0", "-duration", "1s", "-json"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var res loadtest.ScenarioResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Ops) != 4 {
		t.Fatalf("ops %+v", res.Ops)
	}
	for _, o := range res.Ops {
		if o.Requests == 0 || o.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors (%s)", o.Name, o.Requests, o.Errors, o.FirstError)
		}
	}
	// Zipf over 50 persons: user-0 is the most asked for, and written.
	waitRow(t, n, tm.id, "user-0")

	out.Reset()
	if err := runLoadtest(context.Background(), []string{"-url", "http://" + n.adminSrv.HTTPAddr() + "/flags/?v=2", "-scenario", "flags=1,bogus=2"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `unknown op "bogus"`) {
		t.Errorf("bad scenario: %v", err)
	}
}
