// Package vexiltest runs a real Vexil evaluation service (package evalsvc,
// an in-memory store, NATS in process) on a loopback gRPC port for the
// client's tests: one team (1) with a project token phc_team1 and a secure
// key phs_team1.
package vexiltest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/evalsvc"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/memstore"
)

// fakeCatalog is an in-memory evalsvc.Definitions.
type fakeCatalog struct {
	mu      sync.Mutex
	snaps   map[int64]catalog.TeamSnapshot
	keys    map[string]catalog.APIKey
	members map[string]bool
}

func hashKey(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func (f *fakeCatalog) Snapshot(_ context.Context, team int64) (catalog.TeamSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.snaps[team]
	if !ok {
		return catalog.TeamSnapshot{}, catalog.ErrNotFound
	}
	return s, nil
}

func (f *fakeCatalog) GetKeyByHash(_ context.Context, hash []byte) (catalog.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[string(hash)]
	if !ok {
		return catalog.APIKey{}, catalog.ErrNotFound
	}
	return k, nil
}

func (f *fakeCatalog) IsCohortMember(_ context.Context, team, cohort int64, did string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members[fmt.Sprintf("%d/%d/%s", team, cohort, did)], nil
}

func (f *fakeCatalog) ListTeams(context.Context) ([]catalog.Team, error) { return nil, nil }

func (f *fakeCatalog) addKey(secret string, kind catalog.KeyKind, teams []int64, scopes ...string) {
	f.keys[string(hashKey(secret))] = catalog.APIKey{ID: secret[:6], Kind: kind, Hash: hashKey(secret), Teams: teams, Scopes: scopes}
}

// TeamDefs: flags the engine decides from the request alone (everyone,
// mv, beta when plan is passed, company-flag when the group's plan is
// passed), one on a static cohort (server only), and one the server marks
// server-only (continuity).
const TeamDefs = `{"group_type_mapping":{"0":"company"},
 "flags":[
  {"id":1,"key":"beta","active":true,"version":3,"filters":{"groups":[{"properties":[{"key":"plan","type":"person","value":"pro"}],"rollout_percentage":100}],"payloads":{"true":"\"on\""}}},
  {"id":2,"key":"company-flag","active":true,"version":1,"filters":{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"value":"enterprise"}],"rollout_percentage":100}]}},
  {"id":3,"key":"mv","active":true,"version":1,"filters":{"groups":[{"properties":[],"rollout_percentage":100,"variant":"test"}],"multivariate":{"variants":[{"key":"control","rollout_percentage":50},{"key":"test","rollout_percentage":50}]},"payloads":{"test":"{\"price\": 9}"}}},
  {"id":4,"key":"everyone","active":true,"version":1,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}},
  {"id":5,"key":"static-cohort","active":true,"version":1,"filters":{"groups":[{"properties":[{"key":"id","type":"cohort","value":9}],"rollout_percentage":100}]}},
  {"id":6,"key":"continuity","active":true,"version":1,"ensure_experience_continuity":true,"filters":{"groups":[{"properties":[],"rollout_percentage":100}]}}]}`

// Server is a real evalsvc on a loopback gRPC port, with NATS change
// notices.
type Server struct {
	cat *fakeCatalog
	svc *evalsvc.Service
	// Addr is the gRPC address.
	Addr   string
	grpc   *grpc.Server
	served chan error
	// Counts receives the batches of ReportEvaluations.
	Counts chan []evalsvc.EvaluationCount
	// Publish sends a change notice for team 1.
	Publish func() error
}

// New starts a server; t.Cleanup stops it.
func New(t testing.TB) *Server {
	t.Helper()
	defs, err := flags.ParseDefinitions([]byte(TeamDefs))
	if err != nil {
		t.Fatal(err)
	}
	defs.Cohorts = []flags.Cohort{{ID: 9, Kind: flags.CohortStatic}}
	cat := &fakeCatalog{snaps: map[int64]catalog.TeamSnapshot{1: {Team: catalog.Team{ID: 1, GroupTypes: defs.GroupTypes}, Definitions: defs}},
		keys: map[string]catalog.APIKey{}, members: map[string]bool{"1/9/u1": true}}
	cat.addKey("phc_team1", catalog.KeyProjectToken, []int64{1})
	cat.addKey("phs_team1", catalog.KeySecure, []int64{1})
	st := memstore.New()
	var b store.Batch
	b.PutRow(&store.Row{Team: 1, DistinctID: "u1", PersonID: "p1", PersonVersion: 1, Properties: []byte(`{"plan":"pro"}`)})
	b.PutRow(&store.Row{Team: 1, DistinctID: "u2", PersonID: "p2", PersonVersion: 1, Properties: []byte(`{"plan":"free"}`)})
	b.PutGroup(&store.Group{Team: 1, TypeIndex: 0, Key: "acme", Version: 1, Set: map[string]store.Register{}, Properties: []byte(`{"plan":"enterprise"}`)})
	if err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	srv := &Server{cat: cat, Counts: make(chan []evalsvc.EvaluationCount, 100)}
	nc := natstest.Start(t).Conn
	srv.svc, err = evalsvc.New(evalsvc.Config{Store: st, Catalog: cat, ReloadInterval: time.Hour, StoreTimeout: time.Minute, EvalTimeout: time.Minute,
		EvaluationCounts: func(_ int64, c []evalsvc.EvaluationCount) { srv.Counts <- c }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.svc.Run(ctx, nc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	})
	srv.Publish = func() error { return nc.Publish("vexil.changes.1", []byte(`{"team_id":1,"kind":"flag","key":"beta"}`)) }
	srv.Start(t, "127.0.0.1:0")
	return srv
}

// Start serves gRPC on addr.
func (s *Server) Start(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.grpc = grpc.NewServer()
	s.svc.RegisterGRPC(s.grpc)
	s.served = make(chan error, 1)
	g, served := s.grpc, s.served
	go func() { served <- g.Serve(ln) }()
	t.Cleanup(func() { s.stopServing(t, g, served) })
}

// Stop stops serving gRPC (Start serves again).
func (s *Server) Stop(t testing.TB) { s.stopServing(t, s.grpc, s.served) }

func (s *Server) stopServing(t testing.TB, g *grpc.Server, served chan error) {
	g.Stop()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	default:
	}
}

// ChangeBeta makes beta target another plan at a new version.
func (s *Server) ChangeBeta(plan string, version int64) {
	s.cat.mu.Lock()
	defer s.cat.mu.Unlock()
	snap := s.cat.snaps[1]
	defs := snap.Definitions
	defs.Flags = append([]flags.Flag(nil), defs.Flags...)
	defs.Flags[0].Filters.Groups = []flags.Condition{{Properties: []flags.PropertyFilter{{Key: "plan", Type: "person", Value: json.RawMessage(`"` + plan + `"`)}}}}
	defs.Flags[0].Version = version
	snap.Definitions = defs
	s.cat.snaps[1] = snap
}
