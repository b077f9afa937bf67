package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/flags/counters"
	"github.com/vexil-dev/vexil/loadtest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector/ingest"
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

// TestLoadtestScenarioEvents: the event op publishes one event a request
// on NATS, each with its own uuid, for distinct ids drawn like the other
// ops' (Zipf over 20 persons here); with a behavioural cohort tracking
// the event, the projector counts every one: each person's counter is
// the number of the run's requests that named it, and the counters add
// up to the requests the run reports. The rate stays under what a row
// counts: a person's counters keep the ids of its last counters.MaxSeen
// (512) events to drop duplicates, and more events than that in one
// second are not counted (closed loop on two cores sends ~8000 a second,
// ~2500 of them user-0's).
func TestLoadtestScenarioEvents(t *testing.T) {
	n := canaryNode(t)
	tm := defineTeam(t, n)
	ctx := context.Background()
	const event = "loadtest_checkout"
	fc := freshnessConfig{httpBase: "http://" + n.adminSrv.HTTPAddr(), personalKey: tm.personal, team: tm.id}
	cohort := fmt.Sprintf(`{"name":"loadtest events","filters":{"properties":{"type":"OR","values":[
		{"key":%q,"type":"behavioral","value":"performed_event_multiple","operator":"gte","operator_value":1000000,"time_value":1,"time_interval":"day"}]}}}`, event)
	if _, err := manage(ctx, fc, fmt.Sprintf("/api/projects/%d/cohorts", tm.id), []byte(cohort), false); err != nil {
		t.Fatal(err)
	}
	// An event is counted for a distinct id with a person: user-0 ...
	// user-19 and a spare one for the warm-up.
	const persons = 20
	dids := []string{"warm"}
	for i := range persons {
		dids = append(dids, fmt.Sprintf("user-%d", i))
	}
	publish := func(subject ingest.Family, body string) {
		t.Helper()
		if _, err := n.js.PublishMsg(ctx, &nats.Msg{Subject: ingest.Subject(n.ns, subject, tm.id), Data: []byte(body), Header: jsonHeader()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, did := range dids {
		publish(ingest.Persons, fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"p-%s","distinct_ids":[%q],"version":1,"$set":{"x":1}}`, tm.id, did, did))
	}
	for _, did := range dids {
		waitRow(t, n, tm.id, did)
	}
	pair := flags.PairID(event, nil)
	counted := func(did string) int64 {
		row, err := n.store.GetRow(ctx, tm.id, did)
		if err != nil {
			t.Fatalf("row %s: %v", did, err)
		}
		c, err := counters.Decode(row.Counters)
		if err != nil {
			t.Fatalf("counters of %s: %v", did, err)
		}
		var sum int64
		for _, b := range c.EventBuckets(pair) {
			sum += int64(b.Count)
		}
		return sum
	}
	// The projector tracks the event once the cohort's change notice
	// reached it: a warm-up event (a new uuid each time) until one counts.
	warm := 0
	polltest.Eventually(t, time.Minute, func() error {
		warm++
		publish(ingest.Events, fmt.Sprintf(`{"type":"event","team":%d,"distinct_id":"warm","event":%q,"uuid":"warm-%d","timestamp":%q}`,
			tm.id, event, warm, time.Now().UTC().Format(time.RFC3339Nano)))
		if counted("warm") == 0 {
			return errors.New("the warm-up event is not counted yet")
		}
		return nil
	})

	var out, errb bytes.Buffer
	err := runLoadtest(ctx, []string{"-url", "http://" + n.adminSrv.HTTPAddr() + "/flags/?v=2", "-nats-url", n.nc.ConnectedUrl(),
		"-team", fmt.Sprint(tm.id), "-token", tm.token, "-scenario", "event=1", "-event-name", event, "-zipf", "1.2", "-persons", fmt.Sprint(persons),
		"-rate", "300", "-connections", "4", "-warmup", "0", "-duration", "1s", "-json"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var res loadtest.ScenarioResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Ops) != 1 || res.Ops[0].Name != "event" || res.Ops[0].Requests == 0 || res.Ops[0].Errors != 0 {
		t.Fatalf("ops %+v", res.Ops)
	}
	t.Logf("%d events sent, p99 %v", res.Ops[0].Requests, res.Ops[0].P99)
	// Request i named ids[i mod len]: the run's requests are 0 ... N-1.
	ids := distinctIDs(persons, 1.2)
	want := map[string]int64{}
	for i := range res.Ops[0].Requests {
		want[ids[i%int64(len(ids))]]++
	}
	if want["user-0"] <= want[fmt.Sprintf("user-%d", persons-1)] {
		t.Errorf("not Zipf-distributed: %v", want)
	}
	polltest.Eventually(t, time.Minute, func() error {
		var total int64
		for i := range persons {
			did := fmt.Sprintf("user-%d", i)
			got := counted(did)
			total += got
			if got != want[did] {
				return fmt.Errorf("%s: %d events counted, want %d", did, got, want[did])
			}
		}
		if total != res.Ops[0].Requests {
			return fmt.Errorf("%d events counted, the run sent %d", total, res.Ops[0].Requests)
		}
		return nil
	})

	for _, bad := range []string{"", strings.Repeat("e", maxEventName+1), "a\x00b"} {
		if err := runLoadtest(ctx, []string{"-url", "http://" + n.adminSrv.HTTPAddr() + "/flags/?v=2", "-scenario", "event=1", "-event-name", bad}, &out, &errb); err == nil || !strings.Contains(err.Error(), "-event-name") {
			t.Errorf("event name %q: %v", bad, err)
		}
	}
}
