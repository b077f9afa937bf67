package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/schema/schematest"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/streams"
)

// clusterNode starts a serve node of c for a test that runs several, in a
// data dir of its own: NATS.URL names a shared server, or NATS.Listen
// "127.0.0.1:-1" makes this node host one. stop stops it (once; the test's
// cleanup stops it otherwise); stop(true) kills it first: its NATS
// connection closes at once, with what it holds unacknowledged.
func clusterNode(t *testing.T, c config.Config) (n *node, stop func(kill bool)) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c.HTTPAddr, c.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.DataDir = t.TempDir()
	c.Eval.StoreTimeout = 10 * time.Second // answers, not latency (see testNodeWith)
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
	stop = func(kill bool) {
		once.Do(func() {
			if kill {
				n.nc.Close()
			}
			cancel()
			if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) && !kill {
				t.Errorf("node: %v", err)
			}
			if err := n.close(log); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(func() { stop(false) })
	return n, stop
}

// flagsAnswer returns the value /flags on addr gives key for did (the
// variant, or the boolean).
func flagsAnswer(t *testing.T, addr string, tm e2eTeam, did, key string) any {
	t.Helper()
	got := postFlags(t, addr, fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, tm.token, did))
	rec, _ := got["flags"].(map[string]any)[key].(map[string]any)
	if rec == nil {
		t.Fatalf("%s: /flags has no %s: %v", did, key, got)
	}
	if v := rec["variant"]; v != nil {
		return v
	}
	return rec["enabled"]
}

// TestTwoNamespacesOnOneNATS runs production (namespace.Default) and
// staging side by side on one NATS, each with its own store and catalog,
// the same team id in both: writes, notices and consumers stay apart. A
// node with staging's namespace and another store is refused.
func TestTwoNamespacesOnOneNATS(t *testing.T) {
	pc := config.Default()
	pc.NATS.Listen = "127.0.0.1:-1"
	prod, _ := clusterNode(t, pc)
	url := prod.nc.ConnectedUrl()
	sc := config.Default()
	sc.NATS.URL, sc.NATS.Namespace = url, "staging"
	staging, _ := clusterNode(t, sc)
	ctx := context.Background()

	// Notices: one subscriber per namespace, counted until a sentinel.
	type seen struct {
		mu  sync.Mutex
		got []changes.Notice
	}
	watch := func(ns namespace.Name) *seen {
		s := &seen{}
		sub, err := prod.nc.Subscribe(changes.Wildcard(ns), func(m *nats.Msg) {
			n, _ := changes.Parse(ns, m.Subject, m.Data)
			s.mu.Lock()
			s.got = append(s.got, n)
			s.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		return s
	}
	prodSeen, stagingSeen := watch(namespace.Default), watch("staging")
	if err := prod.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	pt, st := defineTeam(t, prod), defineTeam(t, staging)
	if pt.id != st.id {
		t.Fatalf("team ids %d and %d: the test wants the same id in both environments", pt.id, st.id)
	}
	const persons = 20
	seedE2E(t, prod, pt, persons) // production's persons, through production's stream
	// Staging's own persons, through staging's stream: other distinct ids.
	var lines bytes.Buffer
	for i := range persons {
		fmt.Fprintf(&lines, `{"type":"person_update","team":%d,"person_id":"sp-%d","distinct_ids":["staging-%d"],"version":1,"$set":{"email":"s%d@example.com"}}`+"\n", st.id, i, i, i)
	}
	js, err := jetstream.New(prod.nc)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := (&publisher{js: js, ns: "staging", enc: ingest.JSON, timeout: 10 * time.Second}).publishLines(ctx, &lines); err != nil || n != persons {
		t.Fatalf("publish to staging: %d, %v", n, err)
	}
	waitRow(t, staging, st.id, fmt.Sprintf("staging-%d", persons-1))

	// Nothing crossed: each store has its own rows only, and nothing was
	// dead-lettered (a crossing message would be: unknown team, or rows).
	for i := range persons {
		did, _ := demoPerson(i)
		if _, err := staging.store.GetRow(ctx, st.id, did); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("staging's store has production's %s: %v", did, err)
		}
		if _, err := prod.store.GetRow(ctx, pt.id, fmt.Sprintf("staging-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("production's store has staging's staging-%d: %v", i, err)
		}
	}
	if _, err := staging.store.GetGroup(ctx, st.id, 0, "company-0"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("staging's store has production's company-0: %v", err)
	}
	// The counters follow the rows (a batch is counted once acknowledged).
	for _, c := range []struct {
		name string
		n    *node
		want float64
	}{{"production", prod, persons + 201}, {"staging", staging, persons}} {
		polltest.Eventually(t, 30*time.Second, func() error {
			if got := counterValue(t, c.n, "vexil_projector_applied_total"); got < c.want {
				return fmt.Errorf("%s applied %v messages, want %v", c.name, got, c.want)
			}
			return nil
		})
	}

	// Distinct streams and consumers, each on its own subjects.
	for _, c := range []struct {
		ns     namespace.Name
		stream string
	}{{namespace.Default, "VEXIL_INGEST"}, {"staging", "STAGING_INGEST"}} {
		s, err := js.Stream(ctx, c.stream)
		if err != nil {
			t.Fatal(err)
		}
		if subj := s.CachedInfo().Config.Subjects; subj[0] != c.ns.Subject("persons", "*") {
			t.Errorf("%s captures %q", c.stream, subj)
		}
		if _, err := s.Consumer(ctx, projector.DurableName(c.ns)); err != nil {
			t.Errorf("%s: consumer %s: %v", c.stream, projector.DurableName(c.ns), err)
		}
		if _, err := js.KeyValue(ctx, precompute.NamesOf(c.ns).RunBucket); err != nil {
			t.Errorf("run bucket of %s: %v", c.ns, err)
		}
	}

	// Notices: defining each team announced it in its own namespace only.
	// A sentinel in each namespace, published after, marks the end.
	for _, ns := range []namespace.Name{namespace.Default, "staging"} {
		data, _ := changes.Notice{Team: 999, Kind: changes.KindFlag, Op: "sentinel"}.Encode()
		if err := prod.nc.Publish(changes.Subject(ns, 999), data); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*seen{"production": prodSeen, "staging": stagingSeen} {
		polltest.Eventually(t, 30*time.Second, func() error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.got) == 0 || s.got[len(s.got)-1].Op != "sentinel" {
				return fmt.Errorf("%s: no sentinel yet (%d notices)", name, len(s.got))
			}
			return nil
		})
		s.mu.Lock()
		flagNotices := 0
		for _, n := range s.got {
			if n.Team == pt.id && n.Kind == changes.KindFlag {
				flagNotices++
			}
		}
		s.mu.Unlock()
		// Each environment created len(demoFlags) flags in team 1.
		if flagNotices != len(demoFlags) {
			t.Errorf("%s saw %d flag notices of team %d, want its own %d", name, flagNotices, pt.id, len(demoFlags))
		}
	}

	// Nothing of production's reached staging's projector, and neither
	// dead-lettered anything (a crossing message would be: unknown team).
	if got := counterValue(t, staging, "vexil_projector_applied_total"); got != persons {
		t.Errorf("staging applied %v messages, want %d (its own, nothing of production's)", got, persons)
	}
	for name, n := range map[string]*node{"production": prod, "staging": staging} {
		if got := counterValue(t, n, "vexil_projector_dead_lettered_total"); got != 0 {
			t.Errorf("%s dead-lettered %v messages", name, got)
		}
	}

	// A node with staging's namespace and a store of its own is refused,
	// and so is one with production's namespace.
	for _, ns := range []string{"staging", "vexil"} {
		c := config.Default()
		c.NATS.URL, c.NATS.Namespace, c.DataDir = url, ns, t.TempDir()
		c.HTTPAddr, c.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		n, err := startNode(c, slog.New(slog.DiscardHandler))
		if err == nil {
			_ = n.close(slog.New(slog.DiscardHandler))
			t.Fatalf("namespace %s with another store started", ns)
		}
		if !errors.Is(err, streams.ErrClaimed) || !strings.Contains(err.Error(), fmt.Sprintf("namespace %q", ns)) || !strings.Contains(err.Error(), "-namespace") {
			t.Errorf("namespace %s with another store: %v", ns, err)
		}
	}
}

// TestMultiNodeOnScylla runs two serve nodes and a precompute worker on one
// NATS and one keyspace of the test Cassandra: both answer the same, a
// flag change on one is visible on the other, the projectors share the
// ingest stream with nothing lost, and a node stopped while batches are in
// flight loses nothing.
func TestMultiNodeOnScylla(t *testing.T) {
	addr := schematest.Addr(t) // skips locally without Cassandra; fails under CI=true
	ks := schematest.Keyspace(t, schematest.Session(t))
	ac := config.Default()
	ac.Scylla.Hosts, ac.Scylla.Keyspace = strings.Split(addr, ","), ks
	ac.NATS.Listen = "127.0.0.1:-1"
	a, _ := clusterNode(t, ac)
	url := a.nc.ConnectedUrl()
	bc := ac
	bc.NATS.URL = url
	b, stopB := clusterNode(t, bc)

	// A standalone precompute worker on the same NATS and keyspace.
	wctx, stopWorker := context.WithCancel(context.Background())
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		werr = runPrecompute(wctx, []string{"-nats-url", url, "-scylla-hosts", addr, "-scylla-keyspace", ks, "-metrics-addr", "", "-log-level", "error"},
			io.Discard, io.Discard)
	})
	t.Cleanup(func() {
		stopWorker()
		wg.Wait()
		if werr != nil {
			t.Errorf("precompute worker: %v", werr)
		}
	})

	tm := defineTeam(t, a)
	const persons = 30
	seedE2E(t, a, tm, persons)
	// Two projectors apply in no common order: the last row is no sign
	// that every other one is there.
	waitAll(t, a, tm, persons)
	// Same answers on both nodes, equal to the engine's on the stored
	// properties; both serve stored results, whichever worker made them.
	checkFlagsMatchEngine(t, a, tm, persons)
	checkFlagsMatchEngine(t, b, tm, persons)
	for _, n := range []*node{a, b} {
		checkStored(t, n, tm, persons)
	}
	applied := func() float64 {
		return counterValue(t, a, "vexil_projector_applied_total") + counterValue(t, b, "vexil_projector_applied_total")
	}
	polltest.Eventually(t, 30*time.Second, func() error { // counted once acknowledged
		if got := applied(); got < persons+201 {
			return fmt.Errorf("the projectors applied %v messages together, want at least %d", got, persons+201)
		}
		return nil
	})
	t.Logf("applied: node a %v, node b %v", counterValue(t, a, "vexil_projector_applied_total"), counterValue(t, b, "vexil_projector_applied_total"))

	// A flag change on a is visible on b.
	set, err := flags.Compile(tm.defs)
	if err != nil {
		t.Fatal(err)
	}
	on := ""
	for i := range persons {
		did, props := demoPerson(i)
		for _, r := range set.Evaluate(&flags.Context{DistinctID: did, PersonProperties: props, Now: time.Now()}) {
			if r.Key == "beta-dashboard" && r.Enabled {
				on = did
			}
		}
	}
	if on == "" {
		t.Fatal("beta-dashboard is on for none of the persons: the check below would prove nothing")
	}
	if got := flagsAnswer(t, b.adminSrv.HTTPAddr(), tm, on, "beta-dashboard"); got != true {
		t.Fatalf("%s: beta-dashboard on node b is %v before the change", on, got)
	}
	// Management calls are the first admission refuses on a busy host:
	// they are sent again after a pause, as the demo's seeding does.
	conn, err := grpc.NewClient(a.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(retryOverloaded(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tm.personal)
	f, err := api.GetFlagByKey(actx, &adminv1.GetFlagByKeyRequest{TeamId: tm.id, Key: "beta-dashboard"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.DisableFlag(actx, &adminv1.DisableFlagRequest{TeamId: tm.id, FlagId: f.GetFlag().GetId(), Version: f.GetFlag().GetVersion()}); err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, 30*time.Second, func() error {
		if got := flagsAnswer(t, b.adminSrv.HTTPAddr(), tm, on, "beta-dashboard"); got != false {
			return fmt.Errorf("%s: beta-dashboard on node b is %v after it was disabled on node a", on, got)
		}
		return nil
	})
	snap, err := a.catalog.Snapshot(context.Background(), tm.id)
	if err != nil {
		t.Fatal(err)
	}
	tm.defs = snap.Definitions // beta-dashboard disabled

	// b is killed while it applies a second load: a takes over what b held
	// (redelivered after the ack wait) and no row is missing.
	const more = 400
	before := counterValue(t, b, "vexil_projector_applied_total")
	done := make(chan error, 1)
	go func() { done <- publishDemoPersons(context.Background(), a.nc, a.ns, tm.id, more) }()
	polltest.Eventually(t, time.Minute, func() error {
		if got := counterValue(t, b, "vexil_projector_applied_total"); got <= before {
			return fmt.Errorf("node b applied no message of the second load yet (%v)", got)
		}
		return nil
	})
	stopB(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitAll(t, a, tm, more)
	checkFlagsMatchEngine(t, a, tm, more)
}

// waitAll waits until n's store has the rows of the first persons demo
// persons and the 200 demo companies.
func waitAll(t *testing.T, n *node, tm e2eTeam, persons int) {
	t.Helper()
	ctx := context.Background()
	rows, groups := 0, 0
	polltest.Eventually(t, time.Minute, func() error {
		for ; rows < persons; rows++ {
			did, _ := demoPerson(rows)
			if _, err := n.store.GetRow(ctx, tm.id, did); err != nil {
				return fmt.Errorf("row %s: %w", did, err)
			}
		}
		for ; groups < 200; groups++ {
			key, _ := demoCompany(groups)
			if _, err := n.store.GetGroup(ctx, tm.id, 0, key); err != nil {
				return fmt.Errorf("group %s: %w", key, err)
			}
		}
		return nil
	})
}

// checkStored waits until n answers every person's precomputable flags
// from stored results.
func checkStored(t *testing.T, n *node, tm e2eTeam, persons int) {
	t.Helper()
	addr := n.adminSrv.HTTPAddr()
	i := 0
	polltest.Eventually(t, 2*time.Minute, func() error {
		for ; i < persons; i++ {
			did, _ := demoPerson(i)
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/flags?v=2",
				strings.NewReader(fmt.Sprintf(`{"token":%q,"distinct_id":%q}`, tm.token, did)))
			req.Header.Set(evalsvc.DebugHeader, "1")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if src := res.Header.Get(evalsvc.SourcesHeader); !strings.Contains(src, "beta-dashboard=stored") {
				return fmt.Errorf("%s: sources %s", did, src)
			}
		}
		return nil
	})
}
