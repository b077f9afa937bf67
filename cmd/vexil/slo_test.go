package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/schema/schematest"
	"github.com/vexil-dev/vexil/slo"
)

// evalTraffic sends flags /flags, decide /decide and polls definitions
// requests (the first answered 200, the rest 304 to its ETag) to n.
func evalTraffic(t *testing.T, n *node, tm e2eTeam, flagsN, decideN, polls int) {
	t.Helper()
	addr := n.adminSrv.HTTPAddr()
	for i := range flagsN {
		postFlags(t, addr, fmt.Sprintf(`{"token":%q,"distinct_id":"slo-%d"}`, tm.token, i))
	}
	for i := range decideN {
		res, err := http.Post("http://"+addr+"/decide/?v=3", "application/json",
			strings.NewReader(fmt.Sprintf(`{"token":%q,"distinct_id":"slo-%d"}`, tm.token, i)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("/decide: %d", res.StatusCode)
		}
	}
	etag := ""
	for i := range polls {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/feature_flag/local_evaluation/?token="+tm.token, nil)
		req.Header.Set("Authorization", "Bearer "+tm.personal)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if want := map[bool]int{true: 200, false: 304}[i == 0]; res.StatusCode != want {
			t.Fatalf("definitions poll %d: %d, want %d", i, res.StatusCode, want)
		}
		etag = res.Header.Get("ETag")
	}
}

func statusJSON(t *testing.T, n *node) *slo.Report {
	t.Helper()
	res, err := http.Get("http://" + n.adminSrv.HTTPAddr() + "/status.json") // no key: the page is public
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("/status.json: %d %s", res.StatusCode, b)
	}
	var rep slo.Report
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

func sloSeries(t *testing.T, rep *slo.Report, name string) slo.SeriesReport {
	t.Helper()
	for _, s := range rep.Series {
		if s.Series == name {
			return s
		}
	}
	t.Fatalf("status: no series %q", name)
	return slo.SeriesReport{}
}

// checkStatusMatchesMetrics: the status page's current figures are the
// node's own /metrics: request counts by series and histogram_quantile
// over its latency buckets.
func checkStatusMatchesMetrics(t *testing.T, n *node, rep *slo.Report) {
	t.Helper()
	live, err := slo.Gather(n.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slo.AllSeries {
		got, want := sloSeries(t, rep, name).Current, live[name]
		if got.Requests != want.Count || got.Errors != want.Errors {
			t.Errorf("%s: status %d requests (%d errors), /metrics %d (%d)", name, got.Requests, got.Errors, want.Count, want.Errors)
		}
		for q, v := range map[float64]slo.Num{.5: got.P50, .9: got.P90, .99: got.P99} {
			if w := want.Quantile(q) * 1000; math.Abs(float64(v)-w) > 1e-9 {
				t.Errorf("%s: status p%v %v ms, /metrics %v ms", name, q*100, v, w)
			}
		}
	}
	// The sampler reads evalsvc's metrics, not the whole registry.
	mfs, err := n.evalRegistry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "vexil_evalsvc_") {
			t.Errorf("the SLO sampler gathers %s", mf.GetName())
		}
	}
	remote := counterValue(t, n, "vexil_evalsvc_requests_total", "endpoint", "flags") +
		counterValue(t, n, "vexil_evalsvc_requests_total", "endpoint", "decide") +
		counterValue(t, n, "vexil_evalsvc_requests_total", "endpoint", "evaluate")
	if got := sloSeries(t, rep, slo.Remote).Current.Requests; float64(got) != remote {
		t.Errorf("remote requests: status %d, vexil_evalsvc_requests_total %v", got, remote)
	}
}

// TestSLORollupsOnServe: a node's evaluation traffic is on its public
// status page (no key) exactly as /metrics counts it, remote and local
// (304s are successes); after a restart on the same data dir the earlier
// minutes are still there and the new run's are added.
func TestSLORollupsOnServe(t *testing.T) {
	c := config.Default()
	c.DataDir, c.NATS.Listen = t.TempDir(), "127.0.0.1:-1"
	n, stop := usageNode(t, c)
	tm := defineTeam(t, n)
	evalTraffic(t, n, tm, 20, 5, 4)
	rep := statusJSON(t, n)
	checkStatusMatchesMetrics(t, n, rep)
	r, l := sloSeries(t, rep, slo.Remote), sloSeries(t, rep, slo.Local)
	if r.Current.Requests != 25 || l.Current.Requests != 4 || float64(l.Current.Availability) != 1 {
		t.Fatalf("status: remote %d, local %d requests (availability %v); want 25 and 4, all available",
			r.Current.Requests, l.Current.Requests, l.Current.Availability)
	}
	if rep.Objective.Target != 0.9999 || rep.Objective.LatencyMS != 50 || rep.Objective.Window != "30d" {
		t.Errorf("objective = %+v, want the default 99.99%% within 50 ms over 30d", rep.Objective)
	}
	res, err := http.Get("http://" + n.adminSrv.HTTPAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), `<td class="requests">25</td>`) {
		t.Errorf("/status: %d\n%s", res.StatusCode, page)
	}
	stop()

	n2, _ := usageNode(t, c) // the same data dir: a restart
	evalTraffic(t, n2, tm, 3, 0, 0)
	rep = statusJSON(t, n2)
	if got := sloSeries(t, rep, slo.Remote).Month.Requests; got != 28 || rep.Nodes != 2 {
		t.Errorf("after a restart: %d remote requests from %d node runs, want 28 from 2", got, rep.Nodes)
	}
}

// TestSLORollupsSummedOnScylla: two nodes on one Cassandra keyspace and
// one NATS; either node's status page sums both nodes' rollups.
func TestSLORollupsSummedOnScylla(t *testing.T) {
	addr := schematest.Addr(t) // skips locally without Cassandra; fails under CI=true
	ks := schematest.Keyspace(t, schematest.Session(t))
	ac := config.Default()
	ac.Scylla.Hosts, ac.Scylla.Keyspace = strings.Split(addr, ","), ks
	ac.NATS.Listen = "127.0.0.1:-1"
	ac.DataDir = t.TempDir()
	a, _ := usageNode(t, ac)
	bc := ac
	bc.NATS.URL, bc.DataDir = a.nc.ConnectedUrl(), t.TempDir()
	b, _ := usageNode(t, bc)
	tm := defineTeam(t, a)
	evalTraffic(t, a, tm, 7, 0, 2)
	evalTraffic(t, b, tm, 11, 2, 3)
	if err := b.slo.sampler.Flush(context.Background()); err != nil { // b's last seconds; a's status flushes a
		t.Fatal(err)
	}
	rep := statusJSON(t, a)
	if r, l := sloSeries(t, rep, slo.Remote), sloSeries(t, rep, slo.Local); r.Current.Requests != 20 || l.Current.Requests != 5 || rep.Nodes != 2 {
		t.Errorf("summed: remote %d, local %d from %d nodes; want 20 and 5 from 2", r.Current.Requests, l.Current.Requests, rep.Nodes)
	}
}
