package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestEventFreshness runs vexil loadtest -freshness -events against a
// node at a low rate: the run's behavioural cohort and flag are created
// through the management API, the events go through NATS into the rows'
// counters, and every sampled person's flag turns on in /flags. The delays
// are measured, not asserted (a noisy machine); a sample not seen within
// 2 s is reported as not visible, and none may be.
func TestEventFreshness(t *testing.T) {
	n := testNode(t)
	tm := defineTeam(t, n)
	var out bytes.Buffer
	c := freshnessConfig{httpBase: "http://" + n.adminSrv.HTTPAddr(), natsURL: n.nc.ConnectedUrl(), ns: n.ns, token: tm.token,
		personalKey: tm.personal, team: tm.id, waitRun: true, rate: 200, duration: time.Second, persons: 20, sampleEvery: 10}
	if err := runEventFreshness(context.Background(), c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	m := regexp.MustCompile(`\(flag (\S+)\) .*\((\d+) events sent, .*\): (\d+) events followed, (\d+) not visible`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no result line in %q", out.String())
	}
	key := m[1]
	sent, _ := strconv.Atoi(m[2])
	followed, _ := strconv.Atoi(m[3])
	lost, _ := strconv.Atoi(m[4])
	if want := (sent + c.sampleEvery - 1) / c.sampleEvery; followed+lost != want || followed == 0 {
		t.Errorf("%d sent, %d followed, %d lost: want %d sampled events, at least one seen", sent, followed, lost, want)
	}
	if lost > 0 {
		t.Errorf("%d sampled events never turned the flag on", lost)
	}
	// Load events are counted too, and never make anyone a member.
	on, err := probeKey(context.Background(), http.DefaultClient, c, "fresh-ev-load-3", key)
	if err != nil || on {
		t.Errorf("a load person's flag: %v, %v", on, err)
	}
}
