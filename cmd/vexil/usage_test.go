package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	evalv1 "github.com/vexil-dev/vexil/proto/vexil/eval/v1"
	"github.com/vexil-dev/vexil/schema/schematest"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/usage"
)

// usageNode starts a serve node of c in c.DataDir (a restart reopens the
// same one: the usage and SLO tests restart nodes this way); stop stops
// it, once (the cleanup otherwise).
func usageNode(t *testing.T, c config.Config) (n *node, stop func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c.HTTPAddr, c.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Eval.StoreTimeout = 10 * time.Second // answers, not latency (see testNodeWith)
	c.Admission.SchedTarget = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := startNode(c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	n.start(g, gctx)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("node: %v", err)
			}
			if err := n.close(log); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// tally counts what the responses answered, per flag and value, and per
// flag and endpoint (under "@flags", "@decide", "@grpc").
type tally map[string]map[string]uint64

func (tl tally) add(ep string, resp map[string]any) {
	for key, v := range resp["flags"].(map[string]any) {
		f := v.(map[string]any)
		val := fmt.Sprint(f["enabled"])
		if s, ok := f["variant"].(string); ok && s != "" {
			val = s
		}
		if tl[key] == nil {
			tl[key] = map[string]uint64{}
		}
		tl[key][val]++
		tl[key]["@"+ep]++
	}
}

// sendTraffic posts n /flags (or /decide) requests for distinct ids
// prefix0..prefix(ids-1), round robin, and tallies the answers.
func sendTraffic(t *testing.T, n *node, tm e2eTeam, path, prefix string, count, ids int, tl tally) {
	t.Helper()
	for i := range count {
		body := fmt.Sprintf(`{"token":%q,"distinct_id":"%s%d","person_properties":{"plan":"pro","country":"US"}}`, tm.token, prefix, i%ids)
		res, err := http.Post("http://"+n.adminSrv.HTTPAddr()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		tl.add(map[bool]string{true: "decide", false: "flags"}[strings.HasPrefix(path, "/decide")], out)
	}
}

// grpcTraffic calls gRPC Evaluate count times, as sendTraffic posts.
func grpcTraffic(t *testing.T, n *node, tm e2eTeam, prefix string, count, ids int, tl tally) {
	t.Helper()
	conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := evalv1.NewEvalServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tm.token)
	for i := range count {
		resp, err := client.Evaluate(ctx, &evalv1.EvaluateRequest{DistinctId: proto.String(fmt.Sprintf("%s%d", prefix, i%ids)),
			PersonProperties: `{"plan":"pro","country":"US"}`})
		if err != nil {
			t.Fatal(err)
		}
		flags := map[string]any{}
		for _, f := range resp.GetFlags() {
			flags[f.GetKey()] = map[string]any{"enabled": f.GetEnabled(), "variant": f.GetVariant()}
		}
		tl.add("grpc", map[string]any{"flags": flags})
	}
}

// poll downloads the local-evaluation definitions count times.
func poll(t *testing.T, n *node, tm e2eTeam, count int) {
	t.Helper()
	for range count {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.adminSrv.HTTPAddr()+"/api/feature_flag/local_evaluation?token="+tm.token, nil)
		req.Header.Set("Authorization", "Bearer "+tm.personal)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("definitions: %d", res.StatusCode)
		}
	}
}

// apiGet calls the REST API with key and decodes the answer into out;
// it returns the status.
func apiGet(t *testing.T, n *node, method, path, key, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.adminSrv.HTTPAddr()+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

type restSummary struct {
	Evaluations          uint64            `json:"evaluations"`
	ByEndpoint           map[string]uint64 `json:"by_endpoint"`
	Values               map[string]uint64 `json:"values"`
	UniqueUsers          uint64            `json:"unique_users"`
	PrecomputedShare     float64           `json:"precomputed_share"`
	Errors               uint64            `json:"errors"`
	LocalEvaluationPolls uint64            `json:"local_evaluation_polls"`
}

type restSeries struct {
	FlagID          int64       `json:"flag_id"`
	FlagKey         string      `json:"flag_key"`
	Status          string      `json:"status"`
	Resolution      string      `json:"resolution"`
	Total           restSummary `json:"total"`
	Results         []struct{ Bucket time.Time }
	LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
}

// checkUsage reads every flag's usage over REST and compares it with the
// tallies: exact counts by endpoint and value, uniques within 3%. Every
// flag must have been in at least min requests of each endpoint (a node
// that read the team while its flags were being created answers fewer
// flags at first: the tallies count what was answered).
func checkUsage(t *testing.T, n *node, tm e2eTeam, tl tally, flagsN, decideN, grpcN uint64, uniques uint64, polls uint64) {
	t.Helper()
	if len(tl) != len(demoFlags) {
		t.Fatalf("%d flags answered, want %d", len(tl), len(demoFlags))
	}
	for key, vals := range tl {
		if vals["@flags"] > flagsN || vals["@flags"] < flagsN*9/10 || vals["@decide"] != decideN || vals["@grpc"] != grpcN {
			t.Errorf("%s answered %d/%d/%d times (flags/decide/grpc), want %d/%d/%d", key, vals["@flags"], vals["@decide"], vals["@grpc"], flagsN, decideN, grpcN)
		}
		flagsN, decideN, grpcN := vals["@flags"], vals["@decide"], vals["@grpc"]
		var s restSeries
		path := fmt.Sprintf("/api/projects/%d/feature_flags/%s/usage/?resolution=minute&date_from=-1h", tm.id, key)
		if code := apiGet(t, n, "GET", path, tm.personal, "", &s); code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		got := s.Total
		if got.Evaluations != flagsN+decideN+grpcN || got.ByEndpoint["flags"] != flagsN || got.ByEndpoint["decide"] != decideN ||
			got.ByEndpoint["grpc"] != grpcN || got.Errors != 0 {
			t.Errorf("%s: %d evaluations %v, want %d flags + %d decide + %d grpc; stored minute rows: %s", key, got.Evaluations, got.ByEndpoint, flagsN, decideN, grpcN, usageRows(t, n, tm.id, key))
		}
		for v, want := range vals {
			if strings.HasPrefix(v, "@") {
				continue
			}
			if got.Values[v] != want {
				t.Errorf("%s: value %s counted %d, answered %d", key, v, got.Values[v], want)
			}
		}
		if math.Abs(float64(got.UniqueUsers)-float64(uniques)) > 0.03*float64(uniques) {
			t.Errorf("%s: %d unique users, want %d ± 3%%", key, got.UniqueUsers, uniques)
		}
		if got.LocalEvaluationPolls != polls {
			t.Errorf("%s: %d polls, want %d", key, got.LocalEvaluationPolls, polls)
		}
		if s.Status != "ACTIVE" || s.LastEvaluatedAt == nil || s.FlagKey != key || s.Resolution != "minute" || len(s.Results) == 0 {
			t.Errorf("%s: status %s, last evaluated %v, key %s, %d points", key, s.Status, s.LastEvaluatedAt, s.FlagKey, len(s.Results))
		}
	}
}

func flushUsage(t *testing.T, n *node) {
	t.Helper()
	if err := n.usage.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestServeUsage: real /flags, /decide and definitions traffic on a serve
// node is counted exactly over REST, survives a restart on Pebble, and the
// REST routes keep the management API's keys and scopes.
func TestServeUsage(t *testing.T) {
	c := config.Default()
	c.DataDir, c.NATS.Listen = t.TempDir(), "127.0.0.1:-1"
	n, stop := usageNode(t, c)
	tm := defineTeam(t, n)
	tl := tally{}
	sendTraffic(t, n, tm, "/flags/?v=2", "user-", 300, 100, tl)
	sendTraffic(t, n, tm, "/decide/?v=4", "user-", 30, 100, tl)
	grpcTraffic(t, n, tm, "user-", 20, 100, tl)
	poll(t, n, tm, 5)
	flushUsage(t, n)
	checkUsage(t, n, tm, tl, 300, 30, 20, 100, 5)

	// The team summary, the settings, the findings.
	var sum struct {
		Days           int `json:"days"`
		StaleAfterDays int `json:"stale_after_days"`
		Count          int `json:"count"`
		Results        []struct {
			ID              int64      `json:"id"`
			Key             string     `json:"key"`
			Status          string     `json:"status"`
			LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
			Evaluations     uint64     `json:"evaluations"`
		} `json:"results"`
	}
	if code := apiGet(t, n, "GET", fmt.Sprintf("/api/projects/%d/feature_flag_usage/?days=7", tm.id), tm.personal, "", &sum); code != 200 {
		t.Fatalf("summary: %d", code)
	}
	if sum.Days != 7 || sum.StaleAfterDays != 30 || sum.Count != len(demoFlags) || len(sum.Results) != len(demoFlags) {
		t.Fatalf("summary: %+v", sum)
	}
	for _, r := range sum.Results {
		if want := tl[r.Key]["@flags"] + tl[r.Key]["@decide"] + tl[r.Key]["@grpc"]; r.Status != "ACTIVE" || r.LastEvaluatedAt == nil || r.Evaluations != want || r.ID == 0 {
			t.Errorf("summary row %+v", r)
		}
	}
	var set struct {
		StaleAfterDays int `json:"stale_after_days"`
	}
	settings := fmt.Sprintf("/api/projects/%d/feature_flag_usage/settings", tm.id)
	if code := apiGet(t, n, "PATCH", settings, tm.personal, `{"stale_after_days":14}`, &set); code != 200 || set.StaleAfterDays != 14 {
		t.Errorf("PATCH settings: %d %+v", code, set)
	}
	if code := apiGet(t, n, "PATCH", settings, tm.personal, `{"stale_after_days":0}`, nil); code != 400 {
		t.Errorf("PATCH stale_after_days 0: %d, want 400", code)
	}
	var fs struct {
		Count   int               `json:"count"`
		Results []json.RawMessage `json:"results"`
	}
	if code := apiGet(t, n, "GET", fmt.Sprintf("/api/projects/%d/feature_flag_usage/findings", tm.id), tm.personal, "", &fs); code != 200 || fs.Count != 0 || fs.Results == nil {
		t.Errorf("findings: %d %+v", code, fs)
	}

	// The flag list and get show status and last_evaluated_at.
	var list struct {
		Results []struct {
			ID              int64      `json:"id"`
			Key             string     `json:"key"`
			Status          string     `json:"status"`
			LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
		} `json:"results"`
	}
	if code := apiGet(t, n, "GET", fmt.Sprintf("/api/projects/%d/feature_flags/", tm.id), tm.personal, "", &list); code != 200 || len(list.Results) != len(demoFlags) {
		t.Fatalf("flag list: %d, %d flags", code, len(list.Results))
	}
	for _, f := range list.Results {
		if f.Status != "ACTIVE" || f.LastEvaluatedAt == nil || time.Since(*f.LastEvaluatedAt) > time.Hour {
			t.Errorf("flag list: %s status %q last evaluated %v", f.Key, f.Status, f.LastEvaluatedAt)
		}
	}
	var one struct {
		Status          string     `json:"status"`
		LastEvaluatedAt *time.Time `json:"last_evaluated_at"`
	}
	if code := apiGet(t, n, "GET", fmt.Sprintf("/api/projects/%d/feature_flags/%d", tm.id, list.Results[0].ID), tm.personal, "", &one); code != 200 || one.Status != "ACTIVE" || one.LastEvaluatedAt == nil {
		t.Errorf("flag get: %d %+v", code, one)
	}

	// Keys and scopes: none (401), another team's (404), no flag:read (403).
	ctx := context.Background()
	_, other, err := admin.CreatePersonalKey(ctx, n.catalog, []int64{tm.id + 1000}, []string{admin.ScopeAll}, "other", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, narrow, err := admin.CreatePersonalKey(ctx, n.catalog, []int64{tm.id}, []string{admin.ScopeCohortRead}, "narrow", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, reader, err := admin.CreatePersonalKey(ctx, n.catalog, []int64{tm.id}, []string{admin.ScopeFlagRead}, "reader", "test")
	if err != nil {
		t.Fatal(err)
	}
	usagePath := fmt.Sprintf("/api/projects/%d/feature_flags/%s/usage", tm.id, demoFlags[0].key)
	for _, tc := range []struct {
		method, path, key, body string
		want                    int
	}{
		{"GET", usagePath, "", "", 401},
		{"GET", usagePath, other, "", 404},
		{"GET", usagePath, narrow, "", 403},
		{"GET", usagePath, reader, "", 200},
		{"GET", fmt.Sprintf("/api/projects/%d/feature_flags/no-such-flag/usage", tm.id), reader, "", 404},
		{"GET", usagePath + "?resolution=week", reader, "", 400},
		{"GET", usagePath + "?resolution=minute&date_from=-30d", reader, "", 400},
		{"PATCH", settings, reader, `{"stale_after_days":3}`, 403},
		{"GET", fmt.Sprintf("/api/projects/%d/feature_flag_usage", tm.id+1000), reader, "", 404},
	} {
		if code := apiGet(t, n, tc.method, tc.path, tc.key, tc.body, nil); code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}

	// A restart keeps the counts; the restarted node's add to them.
	stop()
	n2, _ := usageNode(t, c)
	sendTraffic(t, n2, tm, "/flags/?v=2", "user-", 100, 100, tl)
	flushUsage(t, n2)
	checkUsage(t, n2, tm, tl, 400, 30, 20, 100, 5)

	// The local evaluations PostHog's SDKs report through the capture
	// endpoints ($feature_flag_called, locally_evaluated) count under
	// local; a remote one's event adds nothing.
	key := demoFlags[0].key
	called := func(did string, local bool) string {
		return fmt.Sprintf(`{"event":"$feature_flag_called","distinct_id":%q,"properties":{"$feature_flag":%q,"$feature_flag_response":true,"locally_evaluated":%v}}`, did, key, local)
	}
	batch := fmt.Sprintf(`{"api_key":%q,"batch":[%s,%s,%s]}`, tm.token, called("local-1", true), called("local-2", true), called("remote-1", false))
	if code := apiGet(t, n2, "POST", "/batch/", "", batch, nil); code != 200 {
		t.Fatalf("capture: %d", code)
	}
	flushUsage(t, n2)
	var rep struct {
		Total restSummary `json:"total"`
	}
	if code := apiGet(t, n2, "GET", usagePath, tm.personal, "", &rep); code != 200 || rep.Total.ByEndpoint["local"] != 2 {
		t.Errorf("after capture: %d, by endpoint %v, want local 2", code, rep.Total.ByEndpoint)
	}

	// The served OpenAPI document describes the usage routes.
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if code := apiGet(t, n2, "GET", "/api/openapi.json", "", "", &doc); code != 200 ||
		doc.Paths["/api/projects/{team_id}/feature_flag_usage/settings"]["patch"] == nil || doc.Paths["/api/projects/{team_id}/feature_flags"] == nil {
		t.Errorf("OpenAPI document: %d, %d paths, usage settings %v", code, len(doc.Paths), doc.Paths["/api/projects/{team_id}/feature_flag_usage/settings"])
	}
}

// TestUsageTwoNodesOnScylla: two serve nodes on one NATS and one keyspace
// of the test Cassandra each count their own traffic; either node's REST
// answers the sum.
func TestUsageTwoNodesOnScylla(t *testing.T) {
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
	tl := tally{}
	sendTraffic(t, a, tm, "/flags/?v=2", "user-", 120, 60, tl)
	// b learns of the team from the catalog they share.
	sendTraffic(t, b, tm, "/flags/?v=2", "user-", 80, 80, tl) // user-0..59 seen by a too
	poll(t, b, tm, 2)
	flushUsage(t, a)
	flushUsage(t, b)
	checkUsage(t, a, tm, tl, 200, 0, 0, 80, 2)
	checkUsage(t, b, tm, tl, 200, 0, 0, 80, 2)
}

// usageRows lists the stored minute rows of a flag (bucket, node,
// evaluations), for failure messages.
func usageRows(t *testing.T, n *node, team int64, flag string) string {
	var b strings.Builder
	now := time.Now().Unix()
	err := n.store.(store.UsageStore).ScanUsage(context.Background(), team, flag, store.UsageMinute, now-3600, now+60, func(r store.UsageRow) error {
		var c usage.Counts
		if err := c.UnmarshalBinary(r.Value); err != nil {
			return err
		}
		fmt.Fprintf(&b, "[%d %s %d] ", r.Bucket, r.Node, c.Evaluations)
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return b.String()
}
