package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/precompute"
	"github.com/vexil-dev/vexil/projector/ingest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// faultyStore is a store that can be made unreachable: while down, every
// read and write fails as a lost connection to ScyllaDB would.
type faultyStore struct {
	store.Store
	down atomic.Bool
}

var errStoreDown = errors.New("test: the store is unreachable")

func (s *faultyStore) check() error {
	if s.down.Load() {
		return errStoreDown
	}
	return nil
}

func (s *faultyStore) GetRow(ctx context.Context, team int64, distinctID string) (*store.Row, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetRow(ctx, team, distinctID)
}

func (s *faultyStore) GetGroup(ctx context.Context, team int64, typeIndex int, key string) (*store.Group, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetGroup(ctx, team, typeIndex, key)
}

func (s *faultyStore) GetPerson(ctx context.Context, team int64, personID string) (*store.Person, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetPerson(ctx, team, personID)
}

func (s *faultyStore) GetPersons(ctx context.Context, keys []store.PersonKey) (map[store.PersonKey]*store.Person, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetPersons(ctx, keys)
}

func (s *faultyStore) GetMapping(ctx context.Context, team int64, distinctID string) (store.Mapping, error) {
	if err := s.check(); err != nil {
		return store.Mapping{}, err
	}
	return s.Store.GetMapping(ctx, team, distinctID)
}

func (s *faultyStore) GetMappings(ctx context.Context, keys []store.DistinctKey) (map[store.DistinctKey]store.Mapping, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.GetMappings(ctx, keys)
}

func (s *faultyStore) Apply(ctx context.Context, b *store.Batch) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.Apply(ctx, b)
}

// getStatus GETs an address's path and returns the status and body.
func getStatus(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// healthState reads /healthz: its status code, overall status and the
// state of each dependency.
func healthState(t *testing.T, addr string) (int, string, map[string]string) {
	t.Helper()
	code, body := getStatus(t, addr, "/healthz")
	var rep healthReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	states := map[string]string{}
	for name, d := range rep.Dependencies {
		states[name] = d.State
	}
	return code, rep.Status, states
}

// waitHealth waits until /healthz answers code with the given states.
func waitHealth(t *testing.T, addr string, wantCode int, want map[string]string) {
	t.Helper()
	polltest.Eventually(t, time.Minute, func() error {
		code, status, states := healthState(t, addr)
		if code != wantCode || fmt.Sprint(states) != fmt.Sprint(want) {
			return fmt.Errorf("/healthz %d %s %v, want %d %v", code, status, states, wantCode, want)
		}
		return nil
	})
}

// publishPerson publishes a person update of team through the ingest
// stream, as a producer does.
func publishPerson(t *testing.T, js jetstream.JetStream, team int64, distinctID string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"type": "person_update", "team": team, "person_id": "p-" + distinctID,
		"distinct_ids": []string{distinctID}, "version": 1, "$set": map[string]any{"plan": "pro", "country": "US"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: ingest.Subject(namespace.Default, ingest.Persons, team), Data: body,
		Header: nats.Header{"Content-Type": []string{"application/json"}}}
	polltest.Eventually(t, time.Minute, func() error {
		_, err := js.PublishMsg(context.Background(), msg)
		return err
	})
}

// flagValues are the values of /flags' answer for the keys of keys.
func flagValues(t *testing.T, got map[string]any, keys []string) map[string]any {
	t.Helper()
	fl, _ := got["flags"].(map[string]any)
	out := map[string]any{}
	for _, k := range keys {
		rec, ok := fl[k].(map[string]any)
		if !ok {
			t.Fatalf("/flags has no %s: %v", k, got)
		}
		out[k] = [2]any{rec["enabled"], rec["variant"]}
	}
	return out
}

// outageHold is how long each outage of TestServeRidesOutages lasts while
// a steady /flags load runs against the node: VEXIL_OUTAGE_HOLD (a Go
// duration; scripts/bench-outage.sh sets 30s for the proof), 2 s
// by default so that the suite stays short.
func outageHold(t *testing.T) time.Duration {
	v := os.Getenv("VEXIL_OUTAGE_HOLD")
	if v == "" {
		return 2 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 10*time.Minute {
		t.Fatalf("VEXIL_OUTAGE_HOLD=%q: want a duration in (0, 10m]", v)
	}
	return d
}

// outageLoad is what a steady /flags load saw during an outage.
type outageLoad struct {
	sent, ok, degraded, wrong, failed int
	latencies                         []time.Duration
	firstBad                          string
}

// loadThrough posts body to /flags every 10 ms for hold and checks each
// answer: a 200 whose flags equal want, with errorsWhileComputingFlags as
// degraded says. Anything else (a refusal, a transport error, another
// value) is counted against the node.
func loadThrough(addr, body string, hold time.Duration, keys []string, want map[string]any, degraded bool) outageLoad {
	var l outageLoad
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	bad := func(format string, args ...any) {
		if l.firstBad == "" {
			l.firstBad = fmt.Sprintf(format, args...)
		}
	}
	for end := time.Now().Add(hold); time.Now().Before(end); <-tick.C {
		l.sent++
		start := time.Now()
		res, err := client.Post("http://"+addr+"/flags/?v=2", "application/json", strings.NewReader(body))
		if err != nil {
			l.failed++
			bad("request %d: %v", l.sent, err)
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		l.latencies = append(l.latencies, time.Since(start))
		var got map[string]any
		if res.StatusCode != http.StatusOK || json.Unmarshal(b, &got) != nil {
			l.failed++
			bad("request %d: %d %s", l.sent, res.StatusCode, b)
			continue
		}
		if got["errorsWhileComputingFlags"] != degraded {
			l.wrong++
			bad("request %d: errorsWhileComputingFlags %v, want %v", l.sent, got["errorsWhileComputingFlags"], degraded)
			continue
		}
		if degraded {
			l.degraded++
			continue
		}
		fl, _ := got["flags"].(map[string]any)
		same := true
		for _, k := range keys {
			rec, _ := fl[k].(map[string]any)
			if rec == nil || fmt.Sprint([2]any{rec["enabled"], rec["variant"]}) != fmt.Sprint(want[k]) {
				same = false
			}
		}
		if !same {
			l.wrong++
			bad("request %d: flags %v, want %v", l.sent, fl, want)
			continue
		}
		l.ok++
	}
	return l
}

func (l outageLoad) report(t *testing.T, what string) {
	t.Helper()
	slices.Sort(l.latencies)
	q := func(p float64) time.Duration {
		if len(l.latencies) == 0 {
			return 0
		}
		return l.latencies[min(len(l.latencies)-1, int(p*float64(len(l.latencies))))]
	}
	t.Logf("%s: %d requests, %d answered as before, %d degraded (errorsWhileComputingFlags), %d wrong, %d failed; p50 %v, p99 %v, max %v",
		what, l.sent, l.ok, l.degraded, l.wrong, l.failed, q(0.5), q(0.99), q(1))
	if l.wrong+l.failed > 0 || l.sent == 0 {
		t.Errorf("%s: %d wrong and %d failed of %d requests; first: %s", what, l.wrong, l.failed, l.sent, l.firstBad)
	}
}

// TestServeRidesOutages is the fault drill: NATS stopped and started again
// on the same port and directory, then the store unreachable and back,
// with one node running throughout. /flags keeps answering (flagged with
// errorsWhileComputingFlags when it cannot read the store), liveness never
// fails, readiness follows the store and not NATS, a management write
// answers during the NATS outage and its notice is published after it, and
// ingest resumes with nothing lost.
//
//	go test -count=1 -run TestServeRidesOutages ./cmd/vexil/
func TestServeRidesOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ns := natstest.Start(t)
	c := config.Default()
	c.NATS.URL = ns.ClientURL()
	fs := &faultyStore{}
	n := testNodeWith(t, c, startHooks{wrapStore: func(s store.Store) store.Store { fs.Store = s; return fs }})
	addr := n.adminSrv.HTTPAddr()
	tm := defineTeam(t, n)
	seedE2E(t, n, tm, 20)
	var keys []string
	for _, f := range demoFlags {
		keys = append(keys, f.key)
	}
	body := fmt.Sprintf(`{"token":%q,"distinct_id":"user-3","groups":{"company":"company-3"}}`, tm.token)
	before := postFlags(t, addr, body)
	if before["errorsWhileComputingFlags"] != false {
		t.Fatalf("before the outages: %v", before)
	}
	want := flagValues(t, before, keys)
	all := map[string]string{"nats": stateOK, "store": stateOK, "catalog": stateOK}
	waitHealth(t, addr, http.StatusOK, all)

	// NATS away.
	ns.Stop()
	polltest.Eventually(t, time.Minute, func() error {
		if n.nc.IsConnected() {
			return errors.New("the node has not noticed the outage")
		}
		return nil
	})
	waitHealth(t, addr, http.StatusOK, map[string]string{"nats": stateDegraded, "store": stateOK, "catalog": stateOK})
	for _, p := range []string{"/livez", "/readyz"} {
		if code, b := getStatus(t, addr, p); code != http.StatusOK {
			t.Errorf("%s during the NATS outage: %d %s", p, code, b)
		}
	}
	got := postFlags(t, addr, body)
	if got["errorsWhileComputingFlags"] != false || fmt.Sprint(flagValues(t, got, keys)) != fmt.Sprint(want) {
		t.Errorf("/flags during the NATS outage: %v, want %v", got, want)
	}
	hold := outageHold(t)
	loadThrough(addr, body, hold, keys, want, false).report(t, fmt.Sprintf("/flags through %v of NATS outage", hold))
	// A management write answers; its notice and rollout signal wait in
	// the outbox.
	conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tm.personal)
	filters, err := structOf(`{"groups":[{"properties":[],"rollout_percentage":100}]}`)
	if err != nil {
		t.Fatal(err)
	}
	created, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: tm.id,
		Flag: &adminv1.FlagInput{Key: "made-during-outage", Active: true, Filters: filters}})
	if err != nil {
		t.Fatalf("create a flag during the NATS outage: %v", err)
	}
	if p := n.outbox.Pending(); p != 2 {
		t.Errorf("outbox holds %d messages after the write, want 2 (notice and rollout signal)", p)
	}

	// NATS back on the same port and directory.
	ns.Restart(t)
	polltest.Eventually(t, time.Minute, func() error {
		if p := n.outbox.Pending(); p != 0 {
			return fmt.Errorf("outbox holds %d messages", p)
		}
		return nil
	})
	// The notice is in the change stream (the precompute worker's).
	polltest.Eventually(t, time.Minute, func() error {
		st, err := ns.JetStream.Stream(context.Background(), precompute.NamesOf(n.ns).ChangeStream)
		if err != nil {
			return err
		}
		m, err := st.GetLastMsgForSubject(context.Background(), changes.Subject(n.ns, tm.id))
		if err != nil {
			return err
		}
		nt, err := changes.Parse(n.ns, m.Subject, m.Data)
		if err != nil {
			return err
		}
		if nt.Kind != changes.KindFlag || nt.Key != "made-during-outage" || nt.Op != "created" ||
			nt.ID != fmt.Sprint(created.GetFlag().GetId()) {
			return fmt.Errorf("last notice %+v", nt)
		}
		return nil
	})
	waitHealth(t, addr, http.StatusOK, all)
	polltest.Eventually(t, time.Minute, func() error {
		fl, _ := postFlags(t, addr, body)["flags"].(map[string]any)
		if rec, _ := fl["made-during-outage"].(map[string]any); rec == nil || rec["enabled"] != true {
			return fmt.Errorf("made-during-outage in /flags: %v", fl["made-during-outage"])
		}
		return nil
	})
	// Ingest resumes.
	publishPerson(t, ns.JetStream, tm.id, "after-nats-outage")
	waitRow(t, n, tm.id, "after-nats-outage")

	// The store away.
	fs.down.Store(true)
	got = postFlags(t, addr, body)
	if got["errorsWhileComputingFlags"] != true {
		t.Errorf("/flags with the store away: errorsWhileComputingFlags %v, want true", got["errorsWhileComputingFlags"])
	}
	waitHealth(t, addr, http.StatusServiceUnavailable, map[string]string{"nats": stateOK, "store": stateDown, "catalog": stateOK})
	if code, b := getStatus(t, addr, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store away: %d %s", code, b)
	}
	if code, b := getStatus(t, addr, "/livez"); code != http.StatusOK {
		t.Errorf("/livez with the store away: %d %s", code, b)
	}
	// Ingest published now waits in the stream: the projector retries.
	publishPerson(t, ns.JetStream, tm.id, "during-store-outage")
	loadThrough(addr, body, hold, keys, want, true).report(t, fmt.Sprintf("/flags through %v of store outage", hold))

	// The store back.
	fs.down.Store(false)
	waitRow(t, n, tm.id, "during-store-outage")
	waitHealth(t, addr, http.StatusOK, all)
	if code, b := getStatus(t, addr, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the store back: %d %s", code, b)
	}
	got = postFlags(t, addr, body)
	if got["errorsWhileComputingFlags"] != false || fmt.Sprint(flagValues(t, got, keys)) != fmt.Sprint(want) {
		t.Errorf("/flags after the outages: %v, want %v", got, want)
	}
	for _, did := range []string{"user-0", "user-19", "after-nats-outage"} {
		if _, err := n.store.GetRow(context.Background(), tm.id, did); err != nil {
			t.Errorf("row %s after the outages: %v", did, err)
		}
	}
}

// TestServeStartsWithoutNATS: a node whose NATS is down when it starts
// serves /flags from the store and the catalog, is ready, and catches up
// (ingest, change notices) once NATS is there.
//
//	go test -count=1 -run TestServeStartsWithoutNATS ./cmd/vexil/
func TestServeStartsWithoutNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ns := natstest.Start(t)
	ns.Stop()
	c := config.Default()
	c.NATS.URL = ns.ClientURL()
	n := testNodeWith(t, c)
	addr := n.adminSrv.HTTPAddr()
	if n.nc.IsConnected() {
		t.Fatal("connected to a stopped NATS")
	}
	waitHealth(t, addr, http.StatusOK, map[string]string{"nats": stateDegraded, "store": stateOK, "catalog": stateOK})
	tm := defineTeam(t, n) // writes answer; their notices wait in the outbox
	if p := n.outbox.Pending(); p == 0 {
		t.Error("outbox empty after defining a team with NATS down")
	}
	body := fmt.Sprintf(`{"token":%q,"distinct_id":"user-3","groups":{"company":"company-3"}}`, tm.token)
	got := postFlags(t, addr, body)
	fl, _ := got["flags"].(map[string]any)
	if len(fl) != len(demoFlags) {
		t.Errorf("/flags with NATS down answers %d flags, want %d: %v", len(fl), len(demoFlags), got)
	}

	ns.Restart(t)
	waitHealth(t, addr, http.StatusOK, map[string]string{"nats": stateOK, "store": stateOK, "catalog": stateOK})
	polltest.Eventually(t, time.Minute, func() error {
		if p := n.outbox.Pending(); p != 0 {
			return fmt.Errorf("outbox holds %d messages", p)
		}
		return nil
	})
	// The projector started once NATS was there: ingest is applied.
	seedE2E(t, n, tm, 20)
	checkFlagsMatchEngine(t, n, tm, 20)
}

// TestServeStartErrors: a start error is printed as it is and exits with
// status 1 (no panic in the cleanup of what was started); a taken NATS
// port is reported without waiting for nats-server.
func TestServeStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nats port taken", []string{"--nats-listen", taken}, "vexil serve: nats: listen on " + taken + ": the address is in use by another process: choose another with -nats-listen "},
		{"http port taken", []string{"--http-addr", taken}, "vexil serve: HTTP: listen on " + taken + ": the address is in use by another process: choose another with -http-addr "},
		{"grpc port taken", []string{"--grpc-addr", taken}, "vexil serve: gRPC: listen on " + taken + ": the address is in use by another process: choose another with -grpc-addr "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
				"--nats-listen", "127.0.0.1:-1", "--precompute=false"}, c.args...)
			code, _, stderr := runCmd(t, args...)
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "panic") {
				t.Errorf("exit %d, stderr:\n%s\nwant status 1 and %q", code, stderr, c.want)
			}
			// What was opened is closed: the data directory opens again.
			st, err := openPebbleStore(config.Config{DataDir: dir}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if err != nil {
				t.Fatalf("store left open: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
