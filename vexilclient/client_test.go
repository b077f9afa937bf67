package vexilclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/vexilclient"
	"github.com/vexil-dev/vexil/vexilclient/internal/vexiltest"
)

// events records the client's events.
type events struct {
	mu  sync.Mutex
	all []vexilclient.Event
}

func (e *events) add(ev vexilclient.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) kinds() []vexilclient.EventKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []vexilclient.EventKind
	for _, ev := range e.all {
		out = append(out, ev.Kind)
	}
	return out
}

func (e *events) last(kind vexilclient.EventKind) (vexilclient.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.all) - 1; i >= 0; i-- {
		if e.all[i].Kind == kind {
			return e.all[i], true
		}
	}
	return vexilclient.Event{}, false
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClient(t *testing.T, srv *vexiltest.Server, secret string, ev *events, clk *clock) *vexilclient.Client {
	t.Helper()
	cfg := vexilclient.Config{Target: srv.Addr, ProjectToken: "phc_team1", SecretKey: secret, Timeout: time.Minute,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, ReportInterval: time.Hour}
	if ev != nil {
		cfg.OnEvent = ev.add
	}
	if clk != nil {
		cfg.Now = clk.now
	}
	c, err := vexilclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// view is the part of a result the tests compare.
type view struct {
	Enabled bool
	Variant string
	Payload string
	Reason  string
	Path    vexilclient.Path
	Failed  bool
}

func views(a *vexilclient.Answer) map[string]view {
	out := map[string]view{}
	for _, r := range a.Flags {
		out[r.Key] = view{Enabled: r.Enabled, Variant: r.Variant, Payload: string(r.Payload), Reason: r.Reason, Path: r.Path, Failed: r.Failed}
	}
	return out
}

func TestRemoteEvaluate(t *testing.T) {
	srv := vexiltest.New(t)
	c := newClient(t, srv, "", nil, nil)
	a, err := c.Evaluate(context.Background(), &vexilclient.Request{DistinctID: "u1", Groups: map[string]string{"company": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	got := views(a)
	want := map[string]view{
		"beta":          {Enabled: true, Payload: `"\"on\""`, Reason: "condition_match", Path: vexilclient.PathRemote},
		"company-flag":  {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
		"mv":            {Enabled: true, Variant: "test", Payload: `"{\"price\": 9}"`, Reason: "condition_match", Path: vexilclient.PathRemote},
		"everyone":      {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
		"static-cohort": {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
		"continuity":    {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if st := c.Status(); st.Local {
		t.Fatalf("no secret key, yet local: %+v", st)
	}
}

func TestLocalEvaluateFallsBackToRemote(t *testing.T) {
	srv := vexiltest.New(t)
	c := newClient(t, srv, "phs_team1", nil, nil)
	ctx := context.Background()

	// Everything the request decides is local; the static cohort, the
	// server-only flag and the flags that need stored properties are not.
	a, err := c.Evaluate(ctx, &vexilclient.Request{DistinctID: "u1", Groups: map[string]string{"company": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]view{
		"beta":          {Enabled: true, Payload: `"\"on\""`, Reason: "condition_match", Path: vexilclient.PathRemote},
		"company-flag":  {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
		"mv":            {Enabled: true, Variant: "test", Payload: `"{\"price\": 9}"`, Reason: "condition_match", Path: vexilclient.PathLocal},
		"everyone":      {Enabled: true, Reason: "condition_match", Path: vexilclient.PathLocal},
		"static-cohort": {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
		"continuity":    {Enabled: true, Reason: "condition_match", Path: vexilclient.PathRemote},
	}
	if got := views(a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}

	// Passing the properties makes beta and company-flag local; u2 is on
	// the free plan in the store, but request properties win.
	a, err = c.Evaluate(ctx, &vexilclient.Request{DistinctID: "u2", Groups: map[string]string{"company": "acme"},
		PersonProperties: map[string]any{"plan": "pro"}, GroupProperties: map[string]map[string]any{"company": {"plan": "startup"}},
		FlagKeys: []string{"beta", "company-flag", "static-cohort"}})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]view{
		"beta":          {Enabled: true, Payload: `"\"on\""`, Reason: "condition_match", Path: vexilclient.PathLocal},
		"company-flag":  {Reason: "no_condition_match", Path: vexilclient.PathLocal},
		"static-cohort": {Reason: "no_condition_match", Path: vexilclient.PathRemote},
	}
	if got := views(a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if a.DefinitionsAge != 0 {
		t.Fatalf("connected, yet the definitions are %v old", a.DefinitionsAge)
	}

	// A key the definitions do not hold goes to the server, which may know
	// it (newer definitions) or not.
	a, err = c.Evaluate(ctx, &vexilclient.Request{DistinctID: "u1", FlagKeys: []string{"everyone", "not-a-flag"}})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]view{"everyone": {Enabled: true, Reason: "condition_match", Path: vexilclient.PathLocal}}
	if got := views(a); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestDefinitionChangesAndDisconnects(t *testing.T) {
	srv := vexiltest.New(t)
	ev := &events{}
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	c := newClient(t, srv, "phs_team1", ev, clk)
	ctx := context.Background()
	pro := &vexilclient.Request{DistinctID: "u9", PersonProperties: map[string]any{"plan": "pro"}, FlagKeys: []string{"beta"}}
	free := &vexilclient.Request{DistinctID: "u9", PersonProperties: map[string]any{"plan": "free"}, FlagKeys: []string{"beta"}}
	enabled := func(req *vexilclient.Request) vexilclient.Result {
		t.Helper()
		a, err := c.Evaluate(ctx, req)
		if err != nil || len(a.Flags) != 1 {
			t.Fatalf("evaluate: %v %+v", err, a)
		}
		return a.Flags[0]
	}
	if r := enabled(pro); !r.Enabled || r.Path != vexilclient.PathLocal || r.Version != 3 {
		t.Fatalf("before the change: %+v", r)
	}
	if k := ev.kinds(); !slices.Equal(k, []vexilclient.EventKind{vexilclient.EventReady}) {
		t.Fatalf("events %v", k)
	}

	// A change reaches the client through the stream.
	srv.ChangeBeta("free", 4)
	polltest.Eventually(t, time.Minute, func() error {
		if _, ok := ev.last(vexilclient.EventChanged); !ok {
			_ = srv.Publish() // a notice sent before the service subscribed is lost
			return errors.New("no change event yet")
		}
		return nil
	})
	if e, _ := ev.last(vexilclient.EventChanged); !slices.Equal(e.Changed, []string{"beta"}) {
		t.Fatalf("changed %v, want [beta]", e.Changed)
	}
	if r := enabled(free); !r.Enabled || r.Version != 4 || r.Path != vexilclient.PathLocal {
		t.Fatalf("after the change: %+v", r)
	}
	etag := c.Status().ETag

	// The server goes away: the client keeps answering from the last
	// definitions and says how old they are.
	srv.Stop(t)
	polltest.Eventually(t, time.Minute, func() error {
		if c.Status().Connected {
			return errors.New("still connected")
		}
		return nil
	})
	clk.add(42 * time.Second)
	st := c.Status()
	if st.Age != 42*time.Second || st.ETag != etag || !st.Local {
		t.Fatalf("status while disconnected: %+v", st)
	}
	a, err := c.Evaluate(ctx, free)
	if err != nil || len(a.Flags) != 1 || !a.Flags[0].Enabled || a.DefinitionsAge != 42*time.Second {
		t.Fatalf("while disconnected: %v %+v", err, a)
	}
	if _, ok := ev.last(vexilclient.EventStale); !ok {
		t.Fatalf("no stale event: %v", ev.kinds())
	}
	// A flag that needs the server fails with the transport's code.
	a, err = c.Evaluate(ctx, &vexilclient.Request{DistinctID: "u1", FlagKeys: []string{"static-cohort"}})
	if err != nil || a.RemoteErr == nil || len(a.Flags) != 1 || !a.Flags[0].Failed || a.Flags[0].ErrorCode != "unavailable" {
		t.Fatalf("remote flag while disconnected: %v %+v", err, a)
	}

	// Back on the same address: the client reconnects by itself.
	srv.Start(t, srv.Addr)
	polltest.Eventually(t, time.Minute, func() error {
		if !c.Status().Connected {
			return errors.New("not reconnected")
		}
		return nil
	})
	if st := c.Status(); st.Age != 0 {
		t.Fatalf("reconnected, yet age %v", st.Age)
	}
	if _, ok := ev.last(vexilclient.EventReconnected); !ok {
		t.Fatalf("no reconnected event: %v", ev.kinds())
	}
}

func TestEvaluationCountsReported(t *testing.T) {
	srv := vexiltest.New(t)
	c := newClient(t, srv, "phs_team1", nil, nil)
	ctx := context.Background()
	for i := range 5 {
		req := &vexilclient.Request{DistinctID: fmt.Sprint("user-", i), PersonProperties: map[string]any{"plan": "pro"}, FlagKeys: []string{"beta", "mv", "static-cohort"}}
		if _, err := c.Evaluate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, cnt := range <-srv.Counts {
		got[fmt.Sprintf("%s/%s/%v/%s", cnt.Key, cnt.Path, cnt.Enabled, cnt.Variant)] += cnt.Count
	}
	// static-cohort went to the server, which counts it itself.
	want := map[string]int64{"beta/local/true/": 5, "mv/local/true/test": 5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	// Nothing new: nothing sent.
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case extra := <-srv.Counts:
		t.Fatalf("an empty flush sent %v", extra)
	default:
	}
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []vexilclient.Config{{}, {Target: "x"}, {Target: "x", ProjectToken: "phc", Conns: vexilclient.MaxConns + 1}} {
		if _, err := vexilclient.New(cfg); !errors.Is(err, vexilclient.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestServiceConfigIsJSON(t *testing.T) {
	var v map[string]any
	if err := json.Unmarshal([]byte(vexilclient.ServiceConfig()), &v); err != nil {
		t.Fatal(err)
	}
}

var _ = evalsvc.MaxReportCounts
