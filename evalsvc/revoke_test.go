package evalsvc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store/memstore"
)

// TestRevokedKeyLeavesEveryNode revokes keys through the management API
// and checks that two evaluation nodes sharing its catalog refuse them on
// the local-evaluation endpoint. The key cache lives an hour here, so only
// the revocation notice can make them refuse.
func TestRevokedKeyLeavesEveryNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cat := memcatalog.New(memcatalog.Config{})
	t.Cleanup(func() { _ = cat.Close() })
	ns := natstest.Start(t)

	team, err := cat.CreateTeam(ctx, catalog.Team{Name: "t"}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	tok, token, err := admin.NewKey(catalog.KeyProjectToken, []int64{team.ID}, nil, "token", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.PutKey(ctx, tok, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	_, root, err := admin.CreatePersonalKey(ctx, cat, nil, []string{admin.ScopeAll}, "root", "test")
	if err != nil {
		t.Fatal(err)
	}
	wide, wideSecret, err := admin.CreatePersonalKey(ctx, cat, nil, []string{admin.ScopeFlagRead}, "instance-wide", "test")
	if err != nil {
		t.Fatal(err)
	}
	scoped, scopedSecret, err := admin.CreatePersonalKey(ctx, cat, []int64{team.ID}, []string{admin.ScopeFlagRead}, "one team", "test")
	if err != nil {
		t.Fatal(err)
	}

	api := startAdminAPI(t, ctx, cat, ns.Conn)
	var nodes []http.Handler
	for range 2 {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		s := newService(t, Config{Store: memstore.New(), Catalog: cat, KeyCacheTTL: time.Hour, ReloadInterval: time.Hour})
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, nc) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		<-s.subscribed
		nodes = append(nodes, s.Handler())
	}
	localEval := func(h http.Handler, secret string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/feature_flag/local_evaluation?token="+token, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for i, h := range nodes {
		for _, secret := range []string{wideSecret, scopedSecret} {
			if code := localEval(h, secret); code != http.StatusOK {
				t.Fatalf("node %d: status %d before the revocation, want 200", i, code)
			}
		}
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+root)
	for _, k := range []struct {
		id, secret string
	}{{wide.ID, wideSecret}, {scoped.ID, scopedSecret}} {
		if _, err := api.RevokeKey(actx, &adminv1.RevokeKeyRequest{KeyId: k.id}); err != nil {
			t.Fatal(err)
		}
		for i, h := range nodes {
			polltest.Eventually(t, time.Minute, func() error {
				if code := localEval(h, k.secret); code != http.StatusUnauthorized {
					return fmt.Errorf("node %d: key %s answers %d after its revocation, want 401", i, k.id, code)
				}
				return nil
			})
		}
	}
	// The root key stays cached and valid.
	for i, h := range nodes {
		if code := localEval(h, root); code != http.StatusOK {
			t.Errorf("node %d: root key answers %d, want 200", i, code)
		}
	}
}

// startAdminAPI runs the management API on cat, publishing its notices on
// nc, and returns a gRPC client of it.
func startAdminAPI(t *testing.T, ctx context.Context, cat catalog.Catalog, nc *nats.Conn) adminv1.AdminServiceClient {
	t.Helper()
	svc, err := admin.New(admin.Config{Catalog: cat, Persons: memstore.New(), Publisher: admin.NATSPublisher{Conn: nc}})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, GRPCListener: gl, HTTPListener: hl})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("admin server: %v", err)
		}
	})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return adminv1.NewAdminServiceClient(conn)
}
