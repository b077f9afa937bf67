package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/polltest"
)

// TestServeAnonymousVisitorCohort: "an anonymous visitor did checkout in
// the last 5 minutes" through PostHog's capture endpoint. An event of a
// distinct id without a person makes capture create the person first
// (PostHog's semantics), so the visitor's checkout counts and /flags for
// its anonymous distinct id turns the flag on; a personless event
// ($process_person_profile false, posthog-js's identified_only before
// identify) has no person, in PostHog as here, and counts for no cohort.
func TestServeAnonymousVisitorCohort(t *testing.T) {
	n := testNode(t)
	tm := defineTeam(t, n)
	ctx := context.Background()
	base := "http://" + n.adminSrv.HTTPAddr()
	c := freshnessConfig{httpBase: base, ns: n.ns, token: tm.token, personalKey: tm.personal, team: tm.id}
	b, err := manage(ctx, c, fmt.Sprintf("/api/projects/%d/cohorts", tm.id), []byte(`{"name":"recent buyers","filters":{"properties":{"type":"AND","values":[
		{"key":"checkout","type":"behavioral","value":"performed_event","time_value":5,"time_interval":"minute"}]}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	var co struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &co); err != nil || co.ID <= 0 {
		t.Fatalf("cohort: %s", b)
	}
	const key = "recent-buyer"
	if err := ensureFlag(ctx, c, key, "recent buyer", fmt.Sprintf(`{"groups":[{"properties":[{"key":"id","type":"cohort","value":%d}],"rollout_percentage":100}]}`, co.ID)); err != nil {
		t.Fatal(err)
	}
	uuid := 0
	checkout := func(did string, personless bool) {
		t.Helper()
		uuid++
		props := map[string]any{"distinct_id": did, "token": tm.token}
		if personless {
			props["$process_person_profile"] = false
		}
		body, _ := json.Marshal([]map[string]any{{"event": "checkout", "uuid": fmt.Sprintf("0193a1b2-0000-7000-8000-%012d", uuid),
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "properties": props}})
		res, err := http.Post(base+"/i/v0/e/", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 {
			t.Fatalf("capture: %d %s", res.StatusCode, b)
		}
	}
	on := func(did string) bool {
		t.Helper()
		v, err := probeKey(ctx, http.DefaultClient, c, did, key)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if on("anon-1") {
		t.Fatal("an unknown visitor is a recent buyer before any event")
	}
	// A checkout from the anonymous visitor: capture creates its person
	// and the event counts. Retried with a new event until the projector
	// tracks the new cohort's pair (its change notice), which counts
	// events from then on.
	polltest.Eventually(t, time.Minute, func() error {
		checkout("anon-1", false)
		if !on("anon-1") {
			return fmt.Errorf("anon-1 not yet a recent buyer")
		}
		return nil
	})
	// A personless checkout, then a checkout of another visitor: once the
	// second counts, the first was applied before it, and counted nothing.
	checkout("anon-2", true)
	checkout("anon-3", false)
	polltest.Eventually(t, time.Minute, func() error {
		if !on("anon-3") {
			return fmt.Errorf("anon-3 not yet a recent buyer")
		}
		return nil
	})
	if on("anon-2") {
		t.Error("a personless visitor's checkout made it a recent buyer")
	}
	if _, err := n.store.GetRow(ctx, tm.id, "anon-2"); err == nil {
		t.Error("a personless event made a row")
	}
	row, err := n.store.GetRow(ctx, tm.id, "anon-3")
	if err != nil {
		t.Fatal(err)
	}
	if got := rowCount(t, row.Counters); got != 1 {
		t.Errorf("anon-3: %d checkouts counted, want 1", got)
	}
}
