package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/canary"
)

// readyWriter is a canary's stderr: ready closes once the canary says it
// reads the tap (its subscription is in place).
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), "canary: reading ") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(b), nil
}

type canaryOutcome struct {
	out string
	err error
}

// startTapCanary runs vexil canary -source nats in the background and
// returns once it reads the tap.
func startTapCanary(t *testing.T, args ...string) <-chan canaryOutcome {
	t.Helper()
	errw := &readyWriter{ready: make(chan struct{})}
	done := make(chan canaryOutcome, 1)
	go func() {
		var out bytes.Buffer
		err := runCanary(context.Background(), args, &out, errw)
		done <- canaryOutcome{out.String(), err}
	}()
	select {
	case <-errw.ready:
	case o := <-done:
		t.Fatalf("canary ended before reading the tap: %v\n%s", o.err, o.out)
	}
	return done
}

// tapDriver sends a primary node live traffic, nine /flags for one
// definitions poll, and checks every answer against a node with the same
// flags and no tap: the tap changes no answer, whatever the candidate
// does.
type tapDriver struct {
	t             *testing.T
	primary, same *node
	bt, st        e2eTeam
	sent          int
	// beta is the primary's beta-dashboard answer to the first /flags
	// request of each distinct id sent.
	beta map[string]any
}

func (d *tapDriver) step() {
	t := d.t
	t.Helper()
	i := d.sent
	d.sent++
	if i%10 == 9 {
		req, _ := http.NewRequest("GET", "http://"+d.primary.adminSrv.HTTPAddr()+"/api/feature_flag/local_evaluation/?token="+d.bt.token, nil)
		req.Header.Set("Authorization", "Bearer "+d.bt.personal)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Flags []map[string]any `json:"flags"`
		}
		raw, _ := io.ReadAll(res.Body)
		err = json.Unmarshal(raw, &body)
		res.Body.Close()
		if res.StatusCode != 200 || err != nil || len(body.Flags) != len(demoFlags) {
			t.Fatalf("definitions poll %d: %d, %v, %d flags %s %v", i, res.StatusCode, err, len(body.Flags), raw, res.Header)
		}
		return
	}
	id := fmt.Sprintf("user-%d", i%1000)
	var keys []string
	for _, f := range demoFlags {
		keys = append(keys, f.key)
	}
	got := flagValues(t, postFlags(t, d.primary.adminSrv.HTTPAddr(), fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, d.bt.token, id)), keys)
	want := flagValues(t, postFlags(t, d.same.adminSrv.HTTPAddr(), fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, d.st.token, id)), keys)
	if g, w := canonical(got), canonical(want); g != w {
		t.Fatalf("%s: the primary answered %s, want %s", id, g, w)
	}
	if _, seen := d.beta[id]; !seen {
		d.beta[id] = got["beta-dashboard"].([2]any)[0] // enabled: a boolean flag
	}
}

// until drives traffic until the canary ends, at most limit requests.
func (d *tapDriver) until(done <-chan canaryOutcome, limit int) canaryOutcome {
	d.t.Helper()
	for range limit {
		select {
		case o := <-done:
			return o
		default:
		}
		d.step()
	}
	d.t.Fatalf("the canary did not end within %d requests", limit)
	return canaryOutcome{}
}

func canonical(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestCanaryTapTwoNodes: a primary node with the tap on (share 1) serves
// live traffic; vexil canary -source nats reads it from the primary's
// NATS and replays it to a candidate. A candidate whose beta-dashboard
// rolls out to 60% instead of 20% is reported on exactly that flag, with
// each request that showed it, and fails the gate; an identical candidate
// passes. With the candidate down, or stuck, the primary's answers are
// the same (every one is checked against a node without a tap), and a
// stuck canary loses tapped requests (counted) instead of slowing the
// node.
func TestCanaryTapTwoNodes(t *testing.T) {
	pc := canaryConfig()
	pc.Canary.TapShare = 1
	primary := testNodeWith(t, pc)
	cand, same := canaryNode(t), canaryNode(t)
	bt := defineTeamWith(t, primary, func(_, f string) string { return f })
	ct := defineTeamWith(t, cand, func(key, f string) string {
		if key == "beta-dashboard" {
			return strings.Replace(f, `"rollout_percentage":20`, `"rollout_percentage":60`, 1)
		}
		return f
	})
	st := defineTeamWith(t, same, func(_, f string) string { return f })
	nodeURL := func(n *node) string { return "http://" + n.adminSrv.HTTPAddr() }
	natsURL := primary.nc.ConnectedUrl()
	tapArgs := func(candURL string, tm e2eTeam, extra ...string) []string {
		return append([]string{"-source", "nats", "-nats", natsURL, "-token", bt.token,
			"-candidate", candURL, "-candidate-token", tm.token, "-candidate-personal-key", tm.personal}, extra...)
	}
	newDriver := func() *tapDriver {
		return &tapDriver{t: t, primary: primary, same: same, bt: bt, st: st, beta: map[string]any{}}
	}

	// A diverging candidate: the first 200 requests after the canary
	// subscribed are the ones compared (one publisher, in order).
	done := startTapCanary(t, tapArgs(nodeURL(cand), ct, "-requests", "200", "-json", "-examples", "1000", "-gate", "-p99-slack", "1m")...)
	d := newDriver()
	for range 200 {
		d.step()
	}
	o := d.until(done, 2000)
	if o.err == nil || !strings.Contains(o.err.Error(), "diverged") {
		t.Fatalf("gate: %v, want a divergence failure\n%s", o.err, o.out)
	}
	var res canary.Result
	if err := json.Unmarshal([]byte(o.out), &res); err != nil {
		t.Fatalf("%v\n%s", err, o.out)
	}
	// Every distinct id whose beta-dashboard the primary answered off and
	// the candidate answers on diverges, every definitions poll too.
	// The first 200 requests: user-i for i < 200 but every tenth, a poll.
	wantFlags := 0
	for i := range 200 {
		id := fmt.Sprintf("user-%d", i)
		if i%10 != 9 && d.beta[id] == false && flagsAnswer(t, cand.adminSrv.HTTPAddr(), ct, id, "beta-dashboard") == true {
			wantFlags++
		}
	}
	if res.Diverged != wantFlags+20 {
		for _, dv := range res.Divergences {
			t.Logf("%s %s %s: %q", dv.Request.Method, dv.Request.Path, dv.Request.Body, dv.Diffs)
		}
	}
	if res.Read != 200 || res.Compared != 200 || res.Failed != 0 || res.Lost != 0 || wantFlags == 0 || res.Diverged != wantFlags+20 {
		t.Fatalf("read %d, compared %d, diverged %d, failed %d, lost %d; want 200 compared, %d diverged (%d /flags, 20 polls)",
			res.Read, res.Compared, res.Diverged, res.Failed, res.Lost, wantFlags+20, wantFlags)
	}
	defs := 0
	for _, dv := range res.Divergences {
		for _, diff := range dv.Diffs {
			if !strings.HasPrefix(diff, "flag beta-dashboard: ") && !strings.HasPrefix(diff, "definition beta-dashboard: ") {
				t.Errorf("unexpected difference %q for %s %s", diff, dv.Request.Path, dv.Request.Body)
			}
		}
		if dv.Request.Kind() == "definitions" {
			defs++
			if _, ok := dv.Request.Headers["Authorization"]; ok || !strings.Contains(dv.Request.Path, bt.token) {
				t.Errorf("definitions poll reported as %+v: want the primary's path, no key", dv.Request)
			}
			continue
		}
		var body struct {
			Token      string `json:"token"`
			DistinctID string `json:"distinct_id"`
		}
		if err := json.Unmarshal(dv.Request.Body, &body); err != nil || body.Token != bt.token || d.beta[body.DistinctID] != false {
			t.Errorf("divergence without its request: %s", dv.Request.Body)
		}
		if dv.Diffs[0] != "flag beta-dashboard: value false != true" { // then its payload, which goes with on
			t.Errorf("%s: diffs %q", body.DistinctID, dv.Diffs)
		}
	}
	if defs != 20 {
		t.Errorf("%d definitions polls reported, want 20", defs)
	}
	if res.Baseline.Max <= 0 || res.Candidate.Max <= 0 {
		t.Errorf("latencies %+v / %+v, want both measured", res.Baseline, res.Candidate)
	}

	// An identical candidate passes the gate.
	done = startTapCanary(t, tapArgs(nodeURL(same), st, "-requests", "100", "-gate", "-p99-slack", "1m")...)
	o = newDriver().until(done, 2000)
	if o.err != nil || !strings.Contains(o.out, "read 100, compared 100, diverged 0") {
		t.Errorf("same flags: %v\n%s", o.err, o.out)
	}

	// A candidate that is down: every comparison fails, the gate too; the
	// primary answers as before (the driver checks each answer).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String()
	ln.Close()
	done = startTapCanary(t, tapArgs(downURL, st, "-requests", "20", "-json", "-gate")...)
	o = newDriver().until(done, 2000)
	res = canary.Result{}
	if err := json.Unmarshal([]byte(o.out), &res); err != nil || o.err == nil || res.Compared != 20 || res.Failed != 20 {
		t.Errorf("candidate down: %v, %+v; want 20 transport failures and the gate failed", o.err, res)
	}

	// A stuck candidate (its first answer waits for the test) with a
	// canary comparing one at a time and holding 4 tapped requests: while
	// it is stuck the primary answers 300 requests, each right, and the
	// canary loses tapped requests instead of slowing the node.
	release := make(chan struct{})
	var arrived atomic.Int64
	target, _ := url.Parse(nodeURL(same))
	rp := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 1 {
			<-release
		}
		rp.ServeHTTP(w, r)
	}))
	defer slow.Close()
	var once sync.Once
	defer once.Do(func() { close(release) })
	published := func() int64 { return primary.tap.Counts()["published"] }
	done = startTapCanary(t, tapArgs(slow.URL, st, "-requests", "50", "-json", "-concurrency", "1", "-buffer", "4")...)
	d = newDriver()
	for arrived.Load() == 0 {
		d.step()
		if d.sent > 2000 {
			t.Fatal("the candidate was never asked")
		}
	}
	before := published()
	for range 300 {
		d.step()
	}
	// The tap publishes on its own goroutine: wait (bounded) for it.
	for try := 0; published()-before < 300 && try < 1000; try++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := published() - before; got < 300 {
		t.Errorf("the tap published %d of 300 requests while the canary was stuck (counts %v)", got, primary.tap.Counts())
	}
	once.Do(func() { close(release) })
	o = d.until(done, 5000)
	res = canary.Result{}
	if err := json.Unmarshal([]byte(o.out), &res); err != nil || o.err != nil || res.Read != 50 || res.Lost < 200 {
		t.Errorf("stuck candidate: %v, read %d, lost %d; want 50 read and most of the 300 lost\n%s", o.err, res.Read, res.Lost, o.out)
	}
	c := primary.tap.Counts()
	if c["publish_failed"] != 0 || c["skipped_not_json"] != 0 {
		t.Errorf("tap counts %v", c)
	}
	// The counts are on the node's /metrics (the last few may still be
	// being published: between the counts before and after).
	lo := published()
	res2, err := http.Get(nodeURL(primary) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	hi := published()
	m := regexp.MustCompile(`vexil_canary_tap_requests_total\{outcome="published"\} (\d+)`).FindSubmatch(metrics)
	if m == nil {
		t.Fatal("/metrics has no vexil_canary_tap_requests_total")
	}
	if got, _ := strconv.ParseInt(string(m[1]), 10, 64); got < lo || got > hi || lo < 600 {
		t.Errorf("/metrics: %d published, the tap counted %d..%d", got, lo, hi)
	}
}

// TestCanaryTapFlags: every -source nats input out of bounds is refused
// with its name, before anything is connected to.
func TestCanaryTapFlags(t *testing.T) {
	base := []string{"-source", "nats", "-nats", "nats://127.0.0.1:1", "-candidate", "http://127.0.0.1:1", "-candidate-personal-key", "phx_c"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-source", "nats", "-candidate", "http://127.0.0.1:1", "-candidate-personal-key", "phx_c"}, "-source nats needs -nats"},
		{[]string{"-source", "nats", "-nats", "nats://127.0.0.1:1", "-candidate", "http://127.0.0.1:1"}, "-candidate-personal-key"},
		{[]string{"-source", "nats", "-nats", "nats://127.0.0.1:1", "-candidate-personal-key", "phx_c"}, "-candidate are required"},
		{append(base, "-share", "0"), "-share 0 out of range"},
		{append(base, "-share", "1.5"), "-share 1.5 out of range"},
		{append(base, "-share", "NaN"), "-share NaN out of range"},
		{append(base, "-requests", "0"), "-requests 0 out of range"},
		{append(base, "-requests", "10000001"), "-requests 10000001 out of range"},
		{append(base, "-duration", "-1s"), "-duration -1s out of range"},
		{append(base, "-duration", "25h"), "-duration 25h0m0s out of range"},
		{append(base, "-buffer", "0"), "-buffer 0 out of range"},
		{append(base, "-buffer", "65537"), "-buffer 65537 out of range"},
		{append(base, "-namespace", "a.b"), "-namespace"},
		{[]string{"-source", "kafka", "-baseline", "http://127.0.0.1:1", "-candidate", "http://127.0.0.1:1"}, `-source "kafka"`},
	} {
		_, err := runCanaryCmd(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}
