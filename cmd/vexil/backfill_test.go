package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/flags/counters"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
)

// TestServeCohortBackfill: checkouts published before a behavioural
// cohort exists do not count for it until `vexil cohorts backfill` runs
// against the node; then the flag reading the cohort turns on for the
// persons whose history qualifies, with the events sent after the cohort
// was created (live) counted too and nothing twice, and the cohort
// reports its backfill done.
func TestServeCohortBackfill(t *testing.T) {
	n := testNode(t)
	tm := defineTeam(t, n)
	ctx := context.Background()
	base := "http://" + n.adminSrv.HTTPAddr()
	c := freshnessConfig{httpBase: base, ns: n.ns, token: tm.token, personalKey: tm.personal, team: tm.id}
	if err := ensureProbeFlag(ctx, c); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		t.Fatal(err)
	}
	did := func(i int) string { return fmt.Sprintf("bf-%d", i) }
	const persons = 8
	for i := range persons {
		body := fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"p-%d","distinct_ids":[%q],"version":1,"$set":{"probe":2}}`, tm.id, i, did(i))
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: ingest.Subject(n.ns, ingest.Persons, tm.id), Data: []byte(body), Header: jsonHeader()}); err != nil {
			t.Fatal(err)
		}
	}
	uuid := 0
	checkout := func(i int, age time.Duration) {
		uuid++
		body := fmt.Sprintf(`{"type":"event","team":%d,"distinct_id":%q,"event":"checkout","uuid":"bf-%d","timestamp":%q}`,
			tm.id, did(i), uuid, time.Now().Add(-age).UTC().Format(time.RFC3339Nano))
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: ingest.Subject(n.ns, ingest.Events, tm.id), Data: []byte(body), Header: jsonHeader()}); err != nil {
			t.Fatal(err)
		}
	}
	// History: persons 0-2 checked out twice, 3 once, 4 once long ago.
	for i := range 3 {
		checkout(i, 10*time.Minute)
		checkout(i, 20*time.Minute)
	}
	checkout(3, 5*time.Minute)
	checkout(4, 3*time.Hour)
	if err := waitAcks(js); err != nil {
		t.Fatal(err)
	}
	waitIngested(t, n, js)

	// The cohort (at least 2 checkouts in the last hour) and its flag.
	b, err := manage(ctx, c, fmt.Sprintf("/api/projects/%d/cohorts", tm.id), []byte(`{"name":"buyers","filters":{"properties":{"type":"AND","values":[
		{"key":"checkout","type":"behavioral","value":"performed_event_multiple","operator":"gte","operator_value":2,"time_value":1,"time_interval":"hour"}]}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	var co struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &co); err != nil || co.ID <= 0 {
		t.Fatalf("cohort: %s", b)
	}
	const key = "buyers-flag"
	if err := ensureFlag(ctx, c, key, "buyers", fmt.Sprintf(`{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}`, co.ID)); err != nil {
		t.Fatal(err)
	}
	// Live: person 3's second checkout, person 5's two.
	checkout(3, time.Minute)
	checkout(5, 2*time.Minute)
	checkout(5, time.Minute)
	if err := waitAcks(js); err != nil {
		t.Fatal(err)
	}
	waitIngested(t, n, js)
	for _, i := range []int{0, 1, 2, 3} {
		if on, err := probeKey(ctx, http.DefaultClient, c, did(i), key); err != nil || on {
			t.Fatalf("%s before the backfill: %v %v (history must not count yet)", did(i), on, err)
		}
	}

	// vexil cohorts backfill: retried until the projector's set has the
	// cohort (the change notice), then it waits until done.
	args := []string{"backfill", "-url", base, "-key", tm.personal, "-team", strconv.FormatInt(tm.id, 10),
		"-cohort", strconv.FormatInt(co.ID, 10), "-interval", "100ms"}
	var out, errOut bytes.Buffer
	polltest.Eventually(t, time.Minute, func() error {
		out.Reset()
		err := runCohorts(ctx, args, &out, &errOut)
		var ae *apiError
		if errors.As(err, &ae) && ae.Reason == "failed_precondition" {
			return err
		}
		if err != nil {
			t.Fatalf("vexil cohorts backfill: %v\n%s%s", err, out.String(), errOut.String())
		}
		return nil
	})
	t.Log(out.String())
	if !bytes.Contains(out.Bytes(), []byte("done 100.0%")) {
		t.Fatalf("backfill output %q: want done", out.String())
	}
	want := map[int]bool{0: true, 1: true, 2: true, 3: true, 5: true}
	polltest.Eventually(t, time.Minute, func() error {
		for i := range persons {
			on, err := probeKey(ctx, http.DefaultClient, c, did(i), key)
			if err != nil {
				return err
			}
			if on != want[i] {
				return fmt.Errorf("%s: flag %v, want %v", did(i), on, want[i])
			}
		}
		return nil
	})
	// The exact counts: no event twice.
	for i, n2 := range map[int]int64{0: 2, 3: 2, 4: 1, 5: 2} {
		row, err := n.store.GetRow(ctx, tm.id, did(i))
		if err != nil {
			t.Fatal(err)
		}
		if got := rowCount(t, row.Counters); got != n2 {
			t.Errorf("%s: %d checkouts counted, want %d", did(i), got, n2)
		}
	}
	// The cohort reports its backfill, and so does the status command.
	var cj struct {
		Backfill struct {
			State    string  `json:"state"`
			Progress float64 `json:"progress"`
		} `json:"backfill"`
	}
	if err := getJSON(ctx, base+fmt.Sprintf("/api/projects/%d/cohorts/%d", tm.id, co.ID), tm.personal, &cj); err != nil {
		t.Fatal(err)
	}
	if cj.Backfill.State != "done" || cj.Backfill.Progress != 1 {
		t.Errorf("cohort's backfill %+v", cj.Backfill)
	}
	out.Reset()
	if err := runCohorts(ctx, []string{"status", "-url", base, "-key", tm.personal, "-team", strconv.FormatInt(tm.id, 10),
		"-cohort", strconv.FormatInt(co.ID, 10)}, &out, &errOut); err != nil || !bytes.HasPrefix(out.Bytes(), []byte("done")) {
		t.Errorf("status: %v %q", err, out.String())
	}
}

// waitIngested waits until the node's projector acknowledged every
// message of the ingest stream.
func waitIngested(t *testing.T, n *node, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	polltest.Eventually(t, time.Minute, func() error {
		s, err := js.Stream(ctx, projector.StreamName(n.ns))
		if err != nil {
			return err
		}
		si, err := s.Info(ctx)
		if err != nil {
			return err
		}
		cons, err := s.Consumer(ctx, projector.DurableName(n.ns))
		if err != nil {
			return err
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream < si.State.LastSeq {
			return fmt.Errorf("projector at %d of %d", ci.AckFloor.Stream, si.State.LastSeq)
		}
		return nil
	})
}

func getJSON(ctx context.Context, url, key string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, res.StatusCode)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// rowCount is the number of events counted in a row's counters, all
// pairs (the test's team tracks one).
func rowCount(t *testing.T, enc []byte) (n int64) {
	t.Helper()
	r, err := counters.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Pairs {
		for _, b := range p.Buckets {
			n += int64(b.Count)
		}
	}
	return n
}

// TestServeGroupCohortBackfill is TestServeCohortBackfill for a cohort a
// flag reads aggregating on companies: the checkouts of a company's
// members published before the cohort exists count on the company's row
// once `vexil cohorts backfill` runs, with a checkout sent after it
// (live) counted too and nothing twice, and the company's flag turns on.
// It failed before serve's projector compiled the teams' flags: without
// them no pair counted on group rows at all.
func TestServeGroupCohortBackfill(t *testing.T) {
	n := testNode(t)
	tm := defineTeam(t, n)
	ctx := context.Background()
	base := "http://" + n.adminSrv.HTTPAddr()
	c := freshnessConfig{httpBase: base, ns: n.ns, token: tm.token, personalKey: tm.personal, team: tm.id}
	js, err := jetstream.New(n.nc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(kind ingest.Family, body string) {
		t.Helper()
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: ingest.Subject(n.ns, kind, tm.id), Data: []byte(body), Header: jsonHeader()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, co := range []string{"acme", "globex"} {
		publish(ingest.Groups, fmt.Sprintf(`{"type":"group_update","team":%d,"group_type_index":0,"group_key":%q,"version":1,"$set":{"name":%q}}`, tm.id, co, co))
	}
	for i := range 4 {
		publish(ingest.Persons, fmt.Sprintf(`{"type":"person_update","team":%d,"person_id":"gp-%d","distinct_ids":["gb-%d"],"version":1}`, tm.id, i, i))
	}
	uuid := 0
	checkout := func(member int, company string, age time.Duration) {
		uuid++
		publish(ingest.Events, fmt.Sprintf(`{"type":"event","team":%d,"distinct_id":"gb-%d","event":"checkout","uuid":"gb-%d","timestamp":%q,"properties":{"$groups":{"company":%q}}}`,
			tm.id, member, uuid, time.Now().Add(-age).UTC().Format(time.RFC3339Nano), company))
	}
	// History: acme's two members checked out once each, globex's once.
	checkout(0, "acme", 20*time.Minute)
	checkout(1, "acme", 10*time.Minute)
	checkout(2, "globex", 15*time.Minute)
	if err := waitAcks(js); err != nil {
		t.Fatal(err)
	}
	waitIngested(t, n, js)

	b, err := manage(ctx, c, fmt.Sprintf("/api/projects/%d/cohorts", tm.id), []byte(`{"name":"busy","filters":{"properties":{"type":"AND","values":[
		{"key":"checkout","type":"behavioral","value":"performed_event_multiple","operator":"gte","operator_value":2,"time_value":1,"time_interval":"hour"}]}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	var co struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &co); err != nil || co.ID <= 0 {
		t.Fatalf("cohort: %s", b)
	}
	const key = "busy-company"
	if err := ensureFlag(ctx, c, key, "busy company", fmt.Sprintf(`{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}`, co.ID)); err != nil {
		t.Fatal(err)
	}
	companyOn := func(company string) bool {
		t.Helper()
		body := fmt.Sprintf(`{"token":%q,"distinct_id":"gb-0","groups":{"company":%q},"flag_keys_to_evaluate":[%q]}`, tm.token, company, key)
		res, err := http.Post(base+"/flags/?v=2", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Flags map[string]struct {
				Enabled bool `json:"enabled"`
			} `json:"flags"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out.Flags[key].Enabled
	}
	// Live: globex's second checkout.
	checkout(3, "globex", time.Minute)
	if err := waitAcks(js); err != nil {
		t.Fatal(err)
	}
	waitIngested(t, n, js)
	if companyOn("acme") {
		t.Fatal("acme is busy before the backfill: its history must not count yet")
	}

	args := []string{"backfill", "-url", base, "-key", tm.personal, "-team", strconv.FormatInt(tm.id, 10),
		"-cohort", strconv.FormatInt(co.ID, 10), "-interval", "100ms"}
	var out, errOut bytes.Buffer
	polltest.Eventually(t, time.Minute, func() error {
		out.Reset()
		err := runCohorts(ctx, args, &out, &errOut)
		var ae *apiError
		if errors.As(err, &ae) && ae.Reason == "failed_precondition" {
			return err
		}
		if err != nil {
			t.Fatalf("vexil cohorts backfill: %v\n%s%s", err, out.String(), errOut.String())
		}
		return nil
	})
	if !bytes.Contains(out.Bytes(), []byte("done 100.0%")) {
		t.Fatalf("backfill output %q: want done", out.String())
	}
	polltest.Eventually(t, time.Minute, func() error {
		for _, co := range []string{"acme", "globex"} {
			if !companyOn(co) {
				return fmt.Errorf("%s not busy after the backfill", co)
			}
		}
		return nil
	})
	for _, co := range []string{"acme", "globex"} {
		g, err := n.store.GetGroup(ctx, tm.id, 0, co)
		if err != nil {
			t.Fatal(err)
		}
		if got := rowCount(t, g.Counters); got != 2 {
			t.Errorf("%s: %d checkouts counted, want 2", co, got)
		}
	}
}
